"""LW005, LW012 and LW011 beyond their fixtures: what the messages say, where findings point."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopwise.lint import RULES, Finding, check_source
from loopwise.lint._engine import check_files
from loopwise.lint._files import discover


def _check(source: str, code: str) -> list[Finding]:
    return check_source(textwrap.dedent(source), path="mod.py", select=[code])


@pytest.mark.parametrize(
    ("call", "culprit", "advice"),
    [
        ("time.sleep(1)", "`time.sleep()`", "`await asyncio.sleep()`"),
        ("sleep(1)", "`sleep()` (`time.sleep`)", "`await asyncio.sleep()`"),
        ("rq.request('GET', 'u')", "`rq.request()` (`requests.request`)", "aiohttp"),
        ("rq.get('u')", "(`requests.get`)", "`loopwise.http.Client`"),
        ("sh(['ls'])", "`sh()` (`subprocess.run`)", "asyncio.create_subprocess_exec("),
        ("socket.getaddrinfo('h', 80)", "`socket.getaddrinfo()`", "loop.getaddrinfo("),
        ("socket.create_connection(('h', 80))", "", "asyncio.open_connection("),
        ("sqlite3.connect('db')", "`sqlite3.connect()`", "aiosqlite"),
        ("httpx.stream('GET', 'u')", "`httpx.stream()`", "`httpx.AsyncClient"),
    ],
)
def test_lw005_message_names_the_culprit_and_the_async_replacement(
    call: str, culprit: str, advice: str
) -> None:
    source = f"""
        import socket, sqlite3, time
        import httpx
        import requests as rq
        from subprocess import run as sh
        from time import sleep

        async def handler():
            {call}
    """
    [finding] = _check(source, "LW005")
    assert finding.line == 9
    assert finding.message.startswith("blocking call ")
    assert culprit in finding.message
    assert advice in finding.message


@pytest.mark.parametrize(
    ("call", "culprit", "advice"),
    [
        ("open('f')", "`open()`", "`await asyncio.to_thread(...)` (or aiofiles)"),
        ("io.open('f')", "`io.open()`", "aiofiles"),
        ("Path('f').read_bytes()", "(`pathlib.Path.read_bytes`)", "asyncio.to_thread("),
    ],
)
def test_lw012_message_names_the_culprit_and_the_async_replacement(
    call: str, culprit: str, advice: str
) -> None:
    source = f"""
        import io
        from pathlib import Path

        async def handler():
            {call}
    """
    [finding] = _check(source, "LW012")
    assert finding.line == 6
    assert finding.message.startswith("blocking call ")
    assert culprit in finding.message
    assert advice in finding.message


def test_file_io_is_lw012_only_and_lw012_is_opt_in() -> None:
    source = """
        import time

        async def handler(path):
            time.sleep(1)
            return open(path).read()
    """
    everything = check_source(textwrap.dedent(source), select=["LW005", "LW012"])
    assert [(f.line, f.code) for f in everything] == [(5, "LW005"), (6, "LW012")]
    assert [f.code for f in check_source(textwrap.dedent(source))] == ["LW005"]


def test_lw012_points_at_the_call_inside_with_and_at_the_read() -> None:
    source = """
        async def read(path):
            with open(path) as file:
                return file.read()
    """
    opening, reading = _check(source, "LW012")
    assert (opening.line, opening.column, opening.end_column) == (3, 10, 20)
    assert reading.line == 4
    assert "`file.read()` on a file object" in reading.message


def test_lw005_method_on_known_type_names_the_type() -> None:
    source = """
        import requests

        class Client:
            def __init__(self):
                self.http = requests.Session()

            async def fetch(self, url):
                return self.http.send(url)
    """
    [finding] = _check(source, "LW005")
    assert "`self.http.send()` (`requests.Session.send`)" in finding.message


def test_lw005_main_coroutine_is_quiet_only_before_its_first_await() -> None:
    source = """
        import asyncio, time

        async def main():
            time.sleep(1)
            async with asyncio.timeout(5):
                time.sleep(2)
            time.sleep(3)

        async def helper():
            time.sleep(4)

        if __name__ == "__main__":
            asyncio.run(main())
    """
    assert [f.line for f in _check(source, "LW005")] == [7, 8, 11]


def test_lw005_honours_noqa() -> None:
    source = """
        import time

        async def main():
            time.sleep(1)  # noqa: LW005
            time.sleep(2)  # noqa: LW001
    """
    assert [f.line for f in _check(source, "LW005")] == [6]


def test_lw012_module_level_shadowing_of_open() -> None:
    source = """
        import aiofiles

        open = aiofiles.open

        async def main(path):
            async with open(path) as file:
                return await file.read()
    """
    assert _check(source, "LW012") == []


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
    [finding] = _check(source, "LW011")
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
    [finding] = _check(source, "LW011")
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
    assert _check(cancelled_first, "LW011") == []
    assert [f.line for f in _check(cancelled_after, "LW011")] == [7]


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
    looping, returning = _check(source, "LW011")
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
    [finding] = _check(source, "LW011")
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
