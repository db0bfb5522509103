"""LW014 names the function that ends the wait, not one that only clears the flag."""

from __future__ import annotations

from loopwise.lint import check_source

CONNECTION = """\
import asyncio


class Connection:
    def __init__(self):
        self.connected = False

    async def close(self):
        self.connected = False

    async def _reader(self):
        self.connected = True

    async def send(self, message):
        while not self.connected:
            await asyncio.sleep(0)
"""


def test_the_named_writer_is_the_one_that_sets_the_flag() -> None:
    (finding,) = check_source(CONNECTION, select=["LW014"])
    assert "`Connection._reader()` sets it" in finding.message


def test_a_flag_only_ever_cleared_elsewhere_still_names_that_writer() -> None:
    only_cleared = CONNECTION.replace("self.connected = True", "pass")
    (finding,) = check_source(only_cleared, select=["LW014"])
    assert "`Connection.close()` sets it" in finding.message
