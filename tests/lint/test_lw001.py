"""LW001 beyond its fixture: when awaiting the call is not offered as a safe fix."""

from __future__ import annotations

from tests.lint.test_workflow import _fix


def test_awaiting_a_bare_gather_needs_unsafe_fixes() -> None:
    # gather() schedules its children at once: they already run. `await` makes the caller wait
    # for them (forever, for servers), which is more than the lost failures flagged.
    source = (
        "import asyncio\n\nasync def serve():\n    pass\n\n"
        "async def main():\n    asyncio.gather(serve(), serve())\n    return 1\n"
    )
    assert _fix(source, unsafe=False) == source
    assert "    await asyncio.gather(" in _fix(source, unsafe=True)


def test_no_await_inside_a_generator_expression() -> None:
    # `await` there parses but turns it into an async generator: `list()` of it then fails.
    source = (
        "import asyncio\n\nasync def ready(x):\n    return x\n\n"
        "async def main(items):\n    return list(1 if ready(x) else 2 for x in items)\n"
    )
    assert _fix(source, unsafe=True) == source
