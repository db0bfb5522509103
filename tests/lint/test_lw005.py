"""LW005 beyond its fixture: what the messages say, where findings point."""

from __future__ import annotations

import pytest

from tests.lint.snippets import check_rule


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
    [finding] = check_rule(source, "LW005")
    assert finding.line == 9
    assert finding.message.startswith("blocking call ")
    assert culprit in finding.message
    assert advice in finding.message


def test_lw005_method_on_known_type_names_the_type() -> None:
    source = """
        import requests

        class Client:
            def __init__(self):
                self.http = requests.Session()

            async def fetch(self, url):
                return self.http.send(url)
    """
    [finding] = check_rule(source, "LW005")
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
    assert [f.line for f in check_rule(source, "LW005")] == [7, 8, 11]


def test_lw005_honours_noqa() -> None:
    source = """
        import time

        async def main():
            time.sleep(1)  # noqa: LW005
            time.sleep(2)  # noqa: LW001
    """
    assert [f.line for f in check_rule(source, "LW005")] == [6]
