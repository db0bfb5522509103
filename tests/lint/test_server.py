"""``loopwise server`` driven over stdio by a real LSP client (pygls'): what an editor sees."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from tests.lint.server_client import CLEAN, HERE, SERVER, TIMEOUT, UNAWAITED, Session, apply_edit

SYNC_FETCH = "def fetch():\n    return 1\n"
ASYNC_FETCH = "async def fetch():\n    return 1\n"
CALLER = "from a import fetch\n\n\nasync def main():\n    fetch()\n"


async def test_a_bad_file_gets_a_diagnostic_with_code_range_and_docs_link(
    session: Session,
) -> None:
    session.open("bad.py")
    [found] = await session.wait_codes("bad.py", ["LW001"])
    assert found.source == "loopwise"
    assert found.range == types.Range(
        start=types.Position(line=4, character=4), end=types.Position(line=4, character=20)
    )
    assert "never awaited" in found.message or "await" in found.message
    assert found.code_description is not None
    assert found.code_description.href.endswith("docs/rules/LW001.md")


async def test_diagnostics_follow_the_buffer_as_it_is_edited(session: Session) -> None:
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    session.change("bad.py", CLEAN)
    await session.wait_codes("bad.py", [])
    session.change("bad.py", UNAWAITED)
    await session.wait_codes("bad.py", ["LW001"])


async def test_making_a_function_async_in_one_file_flags_its_caller_in_another(
    session: Session,
) -> None:
    (session.root / "a.py").write_text(SYNC_FETCH)
    (session.root / "b.py").write_text(CALLER)
    session.open("a.py")
    session.open("b.py")
    await session.wait_codes("b.py", [])
    session.change("a.py", ASYNC_FETCH)
    [found] = await session.wait_codes("b.py", ["LW001"])
    assert found.range.start.line == 4
    session.change("a.py", SYNC_FETCH)
    await session.wait_codes("b.py", [])


async def test_a_closed_file_counts_through_the_index_and_its_deletion(session: Session) -> None:
    (session.root / "a.py").write_text(ASYNC_FETCH)
    (session.root / "b.py").write_text(CALLER)
    session.open("b.py")
    # a.py is not open: the background index knows it is async
    await session.wait_codes("b.py", ["LW001"])
    (session.root / "a.py").unlink()
    session.files_changed(("a.py", types.FileChangeType.Deleted))
    await session.wait_codes("b.py", [])
    (session.root / "a.py").write_text(ASYNC_FETCH)
    session.files_changed(("a.py", types.FileChangeType.Created))
    await session.wait_codes("b.py", ["LW001"])


async def test_indexing_reports_progress_from_begin_to_end(session: Session) -> None:
    def kinds() -> list[str]:
        return [v["kind"] if isinstance(v, dict) else v.kind for v in session.progress]

    await session.wait_for(lambda: "end" in kinds(), "the end of indexing")
    assert kinds()[0] == "begin" and kinds()[-1] == "end"
    end = session.progress[-1]
    message = end["message"] if isinstance(end, dict) else end.message
    assert message == "1 file indexed"


async def test_indexing_with_worker_processes_ends_and_feeds_the_checks(tmp_path: Path) -> None:
    # enough files and bytes for the engine to use worker processes (forking the server,
    # whose stdin thread holds a lock, used to hang the first worker for good)
    padding = "# " + "x" * 97 + "\n"
    for number in range(70):
        (tmp_path / f"m{number}.py").write_text(
            f"async def job{number}():\n    pass\n" + padding * 80
        )
    (tmp_path / "b.py").write_text("from m69 import job69\n\n\nasync def main():\n    job69()\n")
    running = Session(tmp_path)
    await running.start()
    try:
        await running.wait_for(
            lambda: any(
                (v["kind"] if isinstance(v, dict) else v.kind) == "end" for v in running.progress
            ),
            "the end of indexing",
        )
        running.open("b.py")
        await running.wait_codes("b.py", ["LW001"])
    finally:
        await running.stop()


async def test_a_code_action_applies_the_rules_fix(session: Session) -> None:
    session.open("bad.py")
    [found] = await session.wait_codes("bad.py", ["LW001"])
    actions = await session.code_actions("bad.py", range=found.range, diagnostics=[found])
    titles = [action.title for action in actions]
    fix = next(action for action in actions if action.title.startswith("Fix LW001"))
    [edit] = fix.edit.changes[session.uri("bad.py")]
    assert apply_edit(UNAWAITED, edit) == CLEAN
    noqa = next(action for action in actions if action.title == "Add `# noqa: LW001`")
    [edit] = noqa.edit.changes[session.uri("bad.py")]
    assert apply_edit(UNAWAITED, edit).splitlines()[4] == "    asyncio.sleep(1)  # noqa: LW001"
    assert "Fix all safe loopwise fixes in this file" in titles


async def test_fix_all_fixes_every_safe_finding_in_the_file(session: Session) -> None:
    text = UNAWAITED + "    asyncio.sleep(2)\n"
    session.open("bad.py", text)
    await session.wait_codes("bad.py", ["LW001", "LW001"])
    actions = await session.code_actions("bad.py", only=["source.fixAll"])
    [fix_all] = actions
    assert fix_all.kind == "source.fixAll.loopwise"
    [edit] = fix_all.edit.changes[session.uri("bad.py")]
    assert apply_edit(text, edit) == CLEAN + "    await asyncio.sleep(2)\n"


async def test_hover_over_a_finding_shows_the_rules_docs(session: Session) -> None:
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    hover = await session.hover("bad.py", 4, 8)
    assert hover is not None and hover.contents.value.startswith("# LW001")
    elsewhere = await session.hover("bad.py", 0, 1)
    assert elsewhere is None


async def test_a_syntax_error_keeps_the_last_findings_and_is_reported_once(
    session: Session,
) -> None:
    (session.root / "a.py").write_text(ASYNC_FETCH)
    (session.root / "b.py").write_text(CALLER)
    session.open("a.py")
    session.open("b.py")
    await session.wait_codes("b.py", ["LW001"])
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    session.change("bad.py", UNAWAITED + "    if (\n")
    await session.wait_codes("bad.py", ["LW001", "syntax-error"])
    # a broken a.py keeps its last good summary: b.py's finding stays
    session.change("a.py", "async def fetch(:\n")
    await session.wait_codes("a.py", ["syntax-error"])
    assert session.codes("b.py") == ["LW001"]
    session.change("bad.py", CLEAN)
    await session.wait_codes("bad.py", [])


async def test_config_is_honoured_and_reloaded_when_it_changes(session: Session) -> None:
    session.open("bad.py")
    await session.wait_codes("bad.py", ["LW001"])
    pyproject = session.root / "pyproject.toml"
    pyproject.write_text('[tool.loopwise]\nper-file-ignores = { "bad.py" = ["LW001"] }\n')
    session.files_changed(("pyproject.toml", types.FileChangeType.Created))
    await session.wait_codes("bad.py", [])
    pyproject.write_text('[tool.loopwise]\nignore = ["LW001"\n')  # broken: old settings stay
    session.files_changed(("pyproject.toml", types.FileChangeType.Changed))
    await session.wait_for(lambda: any("invalid TOML" in m for m in session.shown), "an error")
    pyproject.write_text("[tool.loopwise]\n")
    session.files_changed(("pyproject.toml", types.FileChangeType.Changed))
    await session.wait_codes("bad.py", ["LW001"])


@pytest.fixture
def baselined(tmp_path: Path) -> Path:
    """A project whose config names a baseline that records bad.py's finding."""
    (tmp_path / "bad.py").write_text(UNAWAITED)
    (tmp_path / "pyproject.toml").write_text('[tool.loopwise]\nbaseline = "baseline.json"\n')
    recorded = subprocess.run(
        [*SERVER, "check", "--no-cache", "--write-baseline", "baseline.json", "."],
        cwd=tmp_path,
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert recorded.returncode == 0, recorded.stderr
    return tmp_path


async def test_a_configured_baseline_hides_the_findings_it_records(baselined: Path) -> None:
    tmp_path = baselined
    running = Session(tmp_path)
    await running.start()
    try:
        running.open("bad.py")
        await running.wait_codes("bad.py", [])
        running.change("bad.py", UNAWAITED + "    asyncio.sleep(2)\n")
        [found] = await running.wait_codes("bad.py", ["LW001"])
        assert found.range.start.line == 5
    finally:
        await running.stop()


async def test_excluded_files_and_files_outside_the_workspace(
    session: Session, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (session.root / "pyproject.toml").write_text('[tool.loopwise]\nexclude = ["vendored"]\n')
    session.files_changed(("pyproject.toml", types.FileChangeType.Created))
    (session.root / "vendored").mkdir()
    (session.root / "vendored" / "x.py").write_text(UNAWAITED)
    session.open("vendored/x.py")
    outside = tmp_path_factory.mktemp("elsewhere") / "y.py"
    outside.write_text(UNAWAITED)
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=outside.as_uri(), language_id="python", version=1, text=UNAWAITED
            )
        )
    )
    await session.wait_for(
        lambda: [str(d.code) for d in session.diagnostics.get(outside.as_uri(), [])] == ["LW001"],
        "the outside file's finding",
    )
    assert session.codes("vendored/x.py") == []


async def test_a_rule_that_raises_loses_only_its_own_findings(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start(
        options={"extraRules": ["server_rules:Exploding"]}, env={"PYTHONPATH": HERE}
    )
    try:
        running.open("bad.py")
        await running.wait_codes("bad.py", ["LW001"])
        assert any("LW900" in message and "boom" in message for message in running.logs)
        running.change("bad.py", CLEAN)
        await running.wait_codes("bad.py", [])
    finally:
        await running.stop()


async def test_a_rule_the_settings_do_not_select_is_not_run(tmp_path: Path) -> None:
    # an opt-in rule ran on every keystroke and its findings were thrown away afterwards: on a
    # large project one of them cost more than every selected rule together
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start(
        options={"extraRules": ["server_rules:Exploding", "server_rules:ExplodingOptIn"]},
        env={"PYTHONPATH": HERE},
    )
    try:
        running.open("bad.py")
        await running.wait_codes("bad.py", ["LW001"])
        assert any("LW900" in message for message in running.logs)  # the selected one ran
        assert not any("LW016" in message for message in running.logs), running.logs
    finally:
        await running.stop()


async def test_a_client_that_goes_away_ends_the_server(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *SERVER,
        "server",
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_without_pygls_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    program = (
        "import sys; sys.modules['pygls'] = None; from loopwise.cli import main;"
        " sys.exit(main(['server']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "loopwise[lsp]" in done.stderr
