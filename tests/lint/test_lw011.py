"""LW011 beyond its fixture: messages, where findings point, scoping, and its re-raise fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopwise.lint import RULES, Finding
from loopwise.lint._engine import check_files
from loopwise.lint._files import discover
from tests.lint.snippets import check_rule
from tests.lint.test_workflow import _fix

LOOP = "async def a(q):\n    while True:\n        try:\n            await q.get()\n"


@pytest.mark.parametrize(
    ("clause", "start"),
    [
        ("except asyncio.CancelledError:", "`except asyncio.CancelledError` swallows"),
        ("except BaseException:", "`except BaseException` catches `asyncio.CancelledError`"),
        ("except:", "bare `except:` catches `asyncio.CancelledError`"),
        ("except* asyncio.CancelledError:", "`except* asyncio.CancelledError` swallows"),
    ],
)
def test_lw011_message_says_what_to_do(clause: str, start: str) -> None:
    source = f"""
        import asyncio

        async def main(work):
            try:
                await work()
            {clause}
                pass
    """
    [finding] = check_rule(source, "LW011")
    assert finding.line == 7
    assert finding.message.startswith(start)
    assert "`raise`" in finding.message
    assert "`asyncio.timeout()`" in finding.message
    assert "`task.uncancel()`" in finding.message


def test_lw011_suppress_points_at_the_suppress_call() -> None:
    source = """
        import asyncio
        from contextlib import suppress

        async def main(work):
            with suppress(asyncio.CancelledError):
                await work()
    """
    [finding] = check_rule(source, "LW011")
    assert (finding.line, finding.column) == (6, 10)
    assert finding.message.startswith("`suppress(asyncio.CancelledError)` swallows")


def test_lw011_idiom_needs_the_cancel_before_the_await() -> None:
    cancelled_first = """
        import asyncio

        async def stop(task):
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    """
    cancelled_after = """
        import asyncio

        async def stop(task):
            try:
                await task
            except asyncio.CancelledError:
                pass
            task.cancel()
    """
    assert check_rule(cancelled_first, "LW011") == []
    assert [f.line for f in check_rule(cancelled_after, "LW011")] == [7]


def test_lw011_message_says_what_goes_on() -> None:
    source = """
        import asyncio

        class Client:
            async def run(self):
                while True:
                    try:
                        await self.connect()
                    except asyncio.CancelledError:
                        if self.closing:
                            raise
                        print("reconnecting")

            async def connect(self):
                try:
                    await self.open()
                except asyncio.CancelledError:
                    return None
    """
    looping, returning = check_rule(source, "LW011")
    assert looping.message.startswith(
        "`except asyncio.CancelledError` swallows the task's cancellation on a path that does"
        " not re-raise it, and the loop goes on: "
    )
    assert "; `connect()` then returns normally, so whatever awaits it carries on" in (
        returning.message
    )


@pytest.mark.parametrize("runtime", ["trio", "anyio"])
def test_lw011_broad_handlers_in_trio_or_anyio_code_are_left_alone(runtime: str) -> None:
    source = f"""
        import asyncio
        import contextlib
        import {runtime}

        async def close_stream(stream):
            try:
                await stream.send_eof()
            except BaseException:
                await stream.aclose()
            try:
                await stream.send_eof()
            except:
                pass
            with contextlib.suppress(BaseException):
                await stream.send_eof()
            try:
                await stream.send_eof()
            except asyncio.CancelledError:
                pass
    """
    [finding] = check_rule(source, "LW011")
    assert finding.line == 19
    assert finding.message.startswith("`except asyncio.CancelledError` swallows")


def test_lw011_a_task_started_in_another_module_may_end_quietly(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "reader.py").write_text(
        textwrap.dedent("""
            import asyncio

            class Reader:
                async def read_loop(self):
                    try:
                        while True:
                            await self.read_frame()
                    except asyncio.CancelledError:
                        pass
        """)
    )
    client = package / "client.py"
    client.write_text(
        textwrap.dedent("""
            import asyncio

            class Client:
                def start(self, reader):
                    self.task = asyncio.create_task(reader.read_loop())
        """)
    )
    assert _check_tree(tmp_path) == []
    with client.open("a") as file:
        file.write("\n    async def read_once(self, reader):\n        await reader.read_loop()\n")
    [finding] = _check_tree(tmp_path)
    assert (Path(finding.path).name, finding.line) == ("reader.py", 9)
    assert "`read_loop()` then returns normally" in finding.message


@pytest.mark.parametrize(
    ("helper", "flagged"),
    [
        ("async def with_retries(fn, *args):\n    return await fn(*args)\n", True),
        ("def with_retries(fn, *args):\n    return asyncio.create_task(fn(*args))\n", False),
    ],
)
def test_lw011_a_coroutine_handed_to_a_helper_is_detached_unless_the_helper_awaits_it(
    tmp_path: Path, helper: str, flagged: bool
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "retry.py").write_text("import asyncio\n\n\n" + helper)
    (package / "pages.py").write_text(
        textwrap.dedent("""
            import asyncio

            from pkg.retry import with_retries

            async def fetch_page(session, url):
                try:
                    return await session.get(url)
                except asyncio.CancelledError:
                    return None

            async def crawl(session, url):
                return await with_retries(fetch_page, session, url)
        """)
    )
    lines = [(Path(f.path).name, f.line) for f in _check_tree(tmp_path)]
    assert lines == ([("pages.py", 9)] if flagged else [])


def _check_tree(root: Path) -> list[Finding]:
    files = discover([str(root)], excludes=[], respect_gitignore=False)
    return [f for f in check_files(files, [rule() for rule in RULES]) if f.code == "LW011"]


def test_a_tuple_handler_reraises_only_the_cancellation() -> None:
    # `raise` at the end of `except (CancelledError, ValueError)` would re-raise the ValueError
    # the handler used to handle.
    source = (
        "import asyncio\n\n"
        + LOOP
        + "        except (asyncio.CancelledError, ValueError):\n            print('x')\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed == source.replace(
        "        except (asyncio",
        "        except asyncio.CancelledError:\n            raise\n        except (asyncio",
    )


def test_broad_handler_fix_uses_the_name_the_module_imports() -> None:
    for imports, name in (
        ("import asyncio as aio\n", "aio.CancelledError"),
        ("from asyncio import CancelledError\n", "CancelledError"),
        ("from asyncio import CancelledError as Stop\n", "Stop"),
    ):
        source = f"{imports}\n" + LOOP + "        except BaseException:\n            print('x')\n"
        fixed = _fix(source, unsafe=True)
        assert fixed == source.replace(
            "        except BaseException:",
            f"        except {name}:\n            raise\n        except BaseException:",
        ), imports


def test_broad_handler_fix_needs_asyncio_imported_where_the_handler_runs() -> None:
    source = (
        "def setup():\n    import asyncio\n    return asyncio\n\n"
        + LOOP
        + "        except BaseException:\n            print('x')\n"
    )
    assert _fix(source, unsafe=True) == source
