"""Every fix together in one file, in any mix: the result parses, a second pass changes
nothing, line breaks are the file's, and each comment stays on the line of the code it
followed."""

from __future__ import annotations

import ast
import io
import tokenize
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lint.test_workflow import _fix

HEADERS = [
    "import asyncio\n",
    '"""Doc."""\nfrom __future__ import annotations\n\nimport asyncio\n',
    "#!/usr/bin/env python\n# a header\nimport asyncio\nfrom asyncio import CancelledError\n",
    "from asyncio import CancelledError, create_task\nimport asyncio as aio\nimport asyncio\n",
]
SNIPPETS = [
    "async def a1():\n    work()  # go\n",
    "async def a2():\n    x = 1; work()\n",
    "async def a3():\n    if work():  # always true\n        pass\n",
    "async def a4():\n    asyncio.create_task(work())  # background\n",
    "async def a5():\n    asyncio.create_task(\n        work()  # inner\n    )\n",
    "async def a6():\n    create_task(work())\n",
    'def s1(items=[]):\n    """Doc."""\n    items.append(1)\n    return items\n',
    "def s2(*, items={}, other=[]):  # two\n    items[1] = 2\n    other.append(1)\n"
    "    return items, other\n",
    "def s3(items: list[int] = []):  # annotated\n    @staticmethod\n    def inner():\n"
    "        pass\n    items.append(inner)\n    return items\n",
    "class K:\n    def m(self, seen=set()):\n        seen.add(1)\n        return seen\n",
    "async def h1(q):\n    while True:\n        try:\n            await q.get()\n"
    "        except BaseException:  # broad\n            print('x')\n",
    "async def h2(q):\n    while True:\n        try:\n            await q.get()\n"
    "        except (CancelledError, ValueError) as e:\n            print(e)  # keep\n",
    "async def h3(q):\n    while True:\n        try:\n            await q.get()\n"
    "        except asyncio.CancelledError:\n            pass\n",
    "def outer():\n    async def inner(q):\n        while True:\n            try:\n"
    "                await q.get()\n            except asyncio.CancelledError:\n"
    "                print('c')  # note\n    return inner\n",
    "x = 1  # noqa: LW001\n",
]
TAILS = [
    "",
    "asyncio.get_event_loop().run_until_complete(a1())  # run\n",
    'if __name__ == "__main__":\n    asyncio.get_event_loop().run_until_complete(\n'
    "        a1()  # start\n    )\n",
]
# Names a fix may take off a line (the rest of the line's names stay with its comment).
REWRITTEN = {"get_event_loop", "run_until_complete", "pass"}


def _comment_lines(source: str) -> dict[str, set[str]]:
    """Each comment (not a noqa, which LW100 may remove) and the names on its line."""
    found: dict[str, set[str]] = {}
    names: Counter[tuple[int, str]] = Counter()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for token in tokens:
        if token.type == tokenize.NAME:
            names[(token.start[0], token.string)] += 1
    for token in tokens:
        if token.type == tokenize.COMMENT and "noqa" not in token.string:
            row = token.start[0]
            found[token.string] = {name for (line, name) in names if line == row}
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(HEADERS),
    snippets=st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=6, unique=True),
    tail=st.sampled_from(TAILS),
    crlf=st.booleans(),
)
def test_any_mix_of_fixes(header: str, snippets: list[str], tail: str, crlf: bool) -> None:
    source = "\n\n".join([header, "async def work():\n    pass\n", *snippets, tail])
    if crlf:
        source = source.replace("\n", "\r\n")
    fixed = _fix(source, unsafe=True)
    ast.parse(fixed)
    assert _fix(fixed, unsafe=True) == fixed
    if crlf:
        assert "\n" not in fixed.replace("\r\n", "")
    before = _comment_lines(source.replace("\r\n", "\n"))
    after = _comment_lines(fixed.replace("\r\n", "\n"))
    assert before.keys() <= after.keys()  # the fixes may add one of their own
    for comment, names in before.items():
        assert names - REWRITTEN <= after[comment], comment
