"""LW002's fix to ``asyncio.run``: comments kept, offered only where it is right."""

from __future__ import annotations

from tests.lint.test_workflow import _fix


def test_run_fix_keeps_a_comment_in_the_call() -> None:
    source = (
        "import asyncio\n\nasync def main():\n    pass\n\n"
        "asyncio.get_event_loop().run_until_complete(\n    main()  # the entry point\n)\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed == source.replace("asyncio.get_event_loop().run_until_complete(", "asyncio.run(")


def test_run_fix_only_for_the_asyncio_module_itself() -> None:
    # `asyncio.events.run` does not exist.
    source = (
        "import asyncio.events\n\nasync def main():\n    pass\n\n"
        "asyncio.events.get_event_loop().run_until_complete(main())\n"
    )
    fixed = _fix(source, unsafe=True)
    assert "asyncio.events.run(" not in fixed


def test_run_fix_not_offered_for_a_future() -> None:
    # asyncio.run() takes a coroutine: `asyncio.run(asyncio.gather(...))` raises ValueError.
    source = (
        "import asyncio\n\nasync def a():\n    pass\n\n"
        "asyncio.get_event_loop().run_until_complete(asyncio.gather(a(), a()))\n"
    )
    assert _fix(source, unsafe=True) == source
