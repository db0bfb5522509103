"""LW004 beyond its fixture: messages, scoping, and its keep-a-reference fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.lint import check
from tests.lint.snippets import check_rule
from tests.lint.test_workflow import _fix


def test_dangling_task_message_names_every_fix() -> None:
    [finding] = check_rule(
        """
        import asyncio
        async def main(coro):
            asyncio.create_task(coro)
        """,
        "LW004",
    )
    assert (finding.line, finding.column) == (4, 5)
    assert "`asyncio.create_task()`" in finding.message
    for fix in ("add_done_callback(tasks.discard)", "asyncio.TaskGroup", "loopwise.Supervisor"):
        assert fix in finding.message


def test_dangling_task_names_the_unread_variable() -> None:
    [finding] = check_rule(
        """
        import asyncio
        async def main(coro):
            job = asyncio.ensure_future(coro)
        """,
        "LW004",
    )
    assert "`job`" in finding.message
    assert finding.column == 11  # at the call, not at the name


def test_dangling_task_reads_are_per_function() -> None:
    findings = check_rule(
        """
        import asyncio
        async def outer(coro):
            task = asyncio.create_task(coro)

            async def inner(other):
                task = asyncio.create_task(other)  # its own local: never read

            await task
            return inner

        async def keeps(coro):
            task = asyncio.create_task(coro)

            def later():
                def much_later():
                    return task
                return much_later

            return later
        """,
        "LW004",
    )
    assert [f.line for f in findings] == [7]


def test_dangling_task_is_quiet_in_test_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "import asyncio\n\n\nasync def start(coro):\n    asyncio.create_task(coro)\n"
    for relative in ("app/service.py", "tests/helpers.py", "app/test_service.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    monkeypatch.chdir(tmp_path)
    found = check(["."], select=["LW004"]).findings
    assert [finding.path for finding in found] == ["app/service.py"]


def test_dangling_task_loop_attribute_needs_every_assignment_to_agree() -> None:
    findings = check_rule(
        """
        import asyncio
        class Worker:
            def __init__(self, loop: asyncio.AbstractEventLoop, other):
                self._loop = None
                self._loop = loop
                self._maybe = loop
            def rebind(self, other):
                self._maybe = other
            def start(self, coro):
                self._loop.create_task(coro)
                self._maybe.create_task(coro)
        """,
        "LW004",
    )
    assert [f.line for f in findings] == [11]


def test_keep_reference_fix_leaves_a_trailing_comment_on_the_create_task_line() -> None:
    # A type-ignore or noqa comment moved to another line stops applying to the call.
    source = (
        "import asyncio\n\n_background_tasks: set[object] = set()\n\n\nasync def work():\n"
        "    pass\n\n\nasync def main():\n"
        "    asyncio.create_task(work())  # type: ignore[arg-type]\n    return 1\n"
    )
    assert _fix(source, unsafe=True) == source.replace(
        "    asyncio.create_task(work())  # type: ignore[arg-type]\n",
        "    _task = asyncio.create_task(work())  # type: ignore[arg-type]\n"
        "    _background_tasks.add(_task)\n"
        "    _task.add_done_callback(_background_tasks.discard)\n",
    )


def test_keep_reference_set_goes_below_a_shebang_and_coding_line() -> None:
    source = (
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nasync def work():\n    pass\n\n\n"
        "async def main():\n    import asyncio\n    asyncio.create_task(work())\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed.startswith(
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n\n"
        "_background_tasks: set[object] = set()  # running tasks, kept until done\n\n"
        "async def work():\n"
    )
