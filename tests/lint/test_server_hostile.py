"""``loopwise server`` against a hostile or sloppy editor, over the real stdio protocol."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.lint.server_client import CLEAN, HERE, SERVER, TIMEOUT, UNAWAITED, Session, apply_edit


def _incremental(session: Session, name: str, change: types.TextDocumentContentChangeEvent) -> None:
    session.versions[name] += 1
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=session.uri(name), version=session.versions[name]
            ),
            content_changes=[change],
        )
    )


async def test_ranges_count_utf16_units_after_astral_characters(session: Session) -> None:
    # "😀" is 4 UTF-8 bytes, 1 code point, 2 UTF-16 units; "é" is 2 bytes, 1 unit
    text = 'import asyncio\n\n\nasync def main():\n    x = "😀é"; asyncio.sleep(1)\n'
    session.open("bad.py", text)
    [found] = await session.wait_codes("bad.py", ["LW001"])
    start = len('    x = "') + 2 + 1 + len('"; ')
    assert found.range == types.Range(
        start=types.Position(line=4, character=start),
        end=types.Position(line=4, character=start + len("asyncio.sleep(1)")),
    )


async def test_a_lone_surrogate_in_the_buffer_still_gets_diagnostics(session: Session) -> None:
    text = 'import asyncio\n\n\nasync def main():\n    asyncio.sleep(1); x = "\ud800"\n'
    session.open("bad.py", text)
    await session.wait_for(
        lambda: session.uri("bad.py") in session.diagnostics, "diagnostics for bad.py"
    )
    [broken] = session.diagnostics[session.uri("bad.py")]
    assert broken.code == "syntax-error" and broken.range.start.line == 4, broken
    assert not any("UnicodeEncodeError" in message for message in session.logs)


async def test_a_change_with_a_range_past_the_end_appends(session: Session) -> None:
    session.open("bad.py", "import asyncio\n\n\nasync def main():\n    pass\n")
    await session.wait_codes("bad.py", [])
    end = types.Position(line=500, character=80)
    _incremental(
        session,
        "bad.py",
        types.TextDocumentContentChangePartial(
            range=types.Range(start=end, end=end), text="    asyncio.sleep(1)\n"
        ),
    )
    await session.wait_codes("bad.py", ["LW001"])


async def test_a_burst_of_edits_publishes_the_last_version_last(session: Session) -> None:
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    for number in range(100):
        session.change("bad.py", UNAWAITED + f"    asyncio.sleep({number})\n" * (number % 2))
    session.change("bad.py", "async def main():\n    pass\n")
    await session.wait_codes("bad.py", [])
    await asyncio.sleep(0.5)
    assert session.codes("bad.py") == []
    versions = [version for uri, version in session.history if uri == session.uri("bad.py")]
    assert versions == sorted(versions) and versions[-1] == session.versions["bad.py"]


async def test_a_module_that_imports_itself_and_an_import_cycle(session: Session) -> None:
    (session.root / "a.py").write_text("import a\nfrom b import g\n\n\nasync def f():\n    g()\n")
    (session.root / "b.py").write_text("from a import f\n\n\nasync def g():\n    f()\n")
    session.open("a.py")
    session.open("b.py")
    await session.wait_codes("a.py", ["LW001"])
    await session.wait_codes("b.py", ["LW001"])
    session.change("b.py", "from a import f\n\n\ndef g():\n    f()\n")
    await session.wait_codes("a.py", [])


async def test_deleting_the_config_file_restores_the_defaults(session: Session) -> None:
    pyproject = session.root / "pyproject.toml"
    pyproject.write_text('[tool.loopwise]\nignore = ["LW001"]\n')
    session.files_changed(("pyproject.toml", types.FileChangeType.Created))
    session.open("bad.py")
    await session.wait_codes("bad.py", [])
    pyproject.unlink()
    session.files_changed(("pyproject.toml", types.FileChangeType.Deleted))
    await session.wait_codes("bad.py", ["LW001"])


async def test_a_workspace_folder_that_does_not_exist(tmp_path: Path) -> None:
    running = Session(tmp_path)
    await running.start(folder=tmp_path / "gone")
    try:
        running.open("bad.py", UNAWAITED)
        await running.wait_codes("bad.py", ["LW001"])
    finally:
        await running.stop()


async def test_a_code_action_right_after_an_edit_sees_the_edit(tmp_path: Path) -> None:
    # a long debounce: the edit is still waiting to be checked when the action is asked for
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start(options={"debounce": 10_000})
    try:
        running.open("bad.py")
        await running.wait_codes("bad.py", ["LW001"])
        edited = "# edited\n" + UNAWAITED + "    asyncio.sleep(2)\n"
        running.change("bad.py", edited)
        actions = await running.code_actions("bad.py", only=["source.fixAll"])
        [fix_all] = actions
        [edit] = fix_all.edit.changes[running.uri("bad.py")]
        fixed = apply_edit(edited, edit)
        assert fixed == edited.replace("    asyncio", "    await asyncio")
        hover = await running.hover("bad.py", 6, 8)
        assert hover is not None and hover.contents.value.startswith("# LW001")
    finally:
        await running.stop()


async def test_malformed_frames_and_a_change_to_a_never_opened_document_are_logged(
    session: Session,
) -> None:
    server = session.client._server
    assert server is not None and server.stdin is not None
    for body in (b"{bad}", b"[]", b"null"):
        server.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    session.versions["ghost.py"] = 1
    session.change("ghost.py", UNAWAITED)
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    await session.wait_for(
        lambda: any("ghost.py" in message for message in session.logs), "the ghost's log line"
    )
    assert session.uri("ghost.py") not in session.diagnostics
    assert session.shown == []  # bad input is a log line, not a pop-up in the editor
    assert sum("could not handle" in message for message in session.logs) == 4


async def test_a_config_broken_at_start_up_then_mended_brings_the_index_back(
    tmp_path: Path,
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.loopwise]\nignore = ["LW001"\n')
    (tmp_path / "a.py").write_text("async def fetch():\n    return 1\n")
    (tmp_path / "b.py").write_text("from a import fetch\n\n\nasync def main():\n    fetch()\n")
    running = Session(tmp_path)
    await running.start()
    try:
        await running.wait_for(
            lambda: any("invalid TOML" in message for message in running.shown), "the error"
        )
        await running.wait_for(
            lambda: any(_kind(value) == "end" for value in running.progress), "the index's end"
        )
        running.open("b.py")
        await running.wait_codes("b.py", ["config-error"])
        pyproject.write_text("[tool.loopwise]\n")
        running.files_changed(("pyproject.toml", types.FileChangeType.Changed))
        # a.py is closed: only the workspace index knows that fetch is async
        await running.wait_codes("b.py", ["LW001"])
    finally:
        await running.stop()


def _kind(progress: object) -> str:
    return str(progress["kind"] if isinstance(progress, dict) else getattr(progress, "kind", ""))


async def test_a_malformed_frame_and_one_claiming_a_terabyte_are_one_line_each(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *SERVER,
        "server",
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(b"Content-Length: 5\r\n\r\n{bad}")  # one line, not a traceback
    process.stdin.write(b"Content-Length: 1000000000000\r\n\r\n{}")
    await process.stdin.drain()
    process.stdin.close()
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    lines = stderr.decode().splitlines()
    assert len(lines) == 2 and "over the limit" in lines[1], lines


async def test_hover_and_code_actions_on_an_unchanged_buffer_do_not_check_it_again(
    tmp_path: Path,
) -> None:
    # on a 50,000-line buffer one check takes most of a second and fixing all several:
    # editors ask on every cursor move, so each answer re-checking queued them up for minutes
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start(options={"extraRules": ["server_rules:Counting"]}, env={"PYTHONPATH": HERE})
    try:
        # The index ending gives the buffer a new project to be checked against: wait for it.
        await running.wait_for(
            lambda: any(
                (v["kind"] if isinstance(v, dict) else v.kind) == "end" for v in running.progress
            ),
            "the end of indexing",
        )
        running.open("bad.py")
        found = await running.wait_codes("bad.py", ["LW001", "LW001"])
        [counted] = [d for d in found if d.message.startswith("check #")]
        everything = types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=5, character=0)
        )
        messages = set()
        for _ in range(3):
            await running.hover("bad.py", 4, 8)
            actions = await running.code_actions("bad.py", range=everything)
            messages |= {
                d.message
                for a in actions
                for d in a.diagnostics or []
                if d.message.startswith("check #")
            }
        assert len(messages) == 1, messages
        running.change("bad.py", UNAWAITED + "\n")
        await running.wait_for(
            lambda: any(
                d.message.startswith("check #") and d.message != counted.message
                for d in running.diagnostics.get(running.uri("bad.py"), [])
            ),
            "a new check of the changed buffer",
        )
    finally:
        await running.stop()


async def test_fix_all_on_a_50000_line_buffer_with_many_fixes_answers(session: Session) -> None:
    # fixes were applied one by one, the whole file parsed again after each: minutes here
    body = "".join(
        f"async def f{n}():\n    asyncio.sleep({n})\n\n"
        if n % 100 == 0
        else f"def g{n}():\n    pass\n\n"
        for n in range(16_666)
    )
    text = "import asyncio\n\n" + body
    session.open("bad.py", text)
    await session.wait_for(
        lambda: len(session.diagnostics.get(session.uri("bad.py"), [])) == 167, "167 findings"
    )
    actions = await session.code_actions("bad.py", only=["source.fixAll"])
    [fix_all] = actions
    [edit] = fix_all.edit.changes[session.uri("bad.py")]
    assert apply_edit(text, edit) == text.replace("    asyncio.sleep", "    await asyncio.sleep")


async def test_findings_of_an_older_text_are_never_published_under_a_newer_version(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start(options={"debounce": 10_000})  # the edit waits while settings reload
    try:
        running.open("bad.py")
        await running.wait_codes("bad.py", ["LW001"])
        running.change("bad.py", CLEAN)  # version 2, not checked yet
        (tmp_path / "pyproject.toml").write_text("[tool.loopwise]\n")
        running.files_changed(("pyproject.toml", types.FileChangeType.Created))
        running.files_changed(("bad.py", types.FileChangeType.Changed))
        await asyncio.sleep(1)
        uri = running.uri("bad.py")
        assert all(version == 1 for published, version in running.history if published == uri)
    finally:
        await running.stop()


async def test_documents_that_are_not_python_get_no_diagnostics(session: Session) -> None:
    # a client that sends every open document: TOML or text is not Python with syntax errors
    for name, language, text in (
        ("pyproject.toml", "toml", "[tool.loopwise\n"),
        ("notes.txt", "plaintext", "hello ( world\n"),
    ):
        session.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=session.uri(name), language_id=language, version=1, text=text
                )
            )
        )
    session.versions["notes.txt"] = 1
    session.change("notes.txt", "still ( not python\n")
    session.open("bad.py")  # after them: its findings mean they were handled
    await session.wait_codes("bad.py", ["LW001"])
    await asyncio.sleep(0.3)
    assert session.codes("pyproject.toml") == [] and session.codes("notes.txt") == []


async def test_a_deleted_folder_takes_its_modules_out_of_the_index(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("async def fetch():\n    return 1\n")
    (tmp_path / "b.py").write_text("from pkg.a import fetch\n\n\nasync def main():\n    fetch()\n")
    running = Session(tmp_path)
    await running.start()
    try:
        running.open("b.py")
        await running.wait_codes("b.py", ["LW001"])  # pkg/a.py is closed: known from the index
        for module in ("a.py", "__init__.py"):
            (tmp_path / "pkg" / module).unlink()
        (tmp_path / "pkg").rmdir()
        running.files_changed(("pkg", types.FileChangeType.Deleted))  # one event for the folder
        await running.wait_codes("b.py", [])
    finally:
        await running.stop()
