"""Messages, positions and scoping of LW004, LW006, LW009 and LW010 (the fixtures cover recall)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopwise.lint import Finding, check, check_source


def _check(source: str, code: str) -> list[Finding]:
    return check_source(textwrap.dedent(source), select=[code])


def test_dangling_task_message_names_every_fix() -> None:
    [finding] = _check(
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
    [finding] = _check(
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
    findings = _check(
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
    findings = _check(
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


def test_gather_message_names_the_variable_and_the_fix() -> None:
    [finding] = _check(
        """
        import asyncio
        async def main(a, b):
            outcome = await asyncio.gather(a, b, return_exceptions=True)
        """,
        "LW006",
    )
    assert "`outcome`" in finding.message
    assert "isinstance(r, BaseException)" in finding.message
    assert finding.column == 21  # at the gather call


def test_gather_through_wait_for_is_reported_at_the_gather() -> None:
    [finding] = _check(
        """
        import asyncio
        async def main(a):
            await asyncio.wait_for(asyncio.gather(a, return_exceptions=True), timeout=1)
        """,
        "LW006",
    )
    assert finding.column == 28


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("close", False),
        ("_aclose", False),
        ("force_close", False),
        ("stopAll", False),
        ("tear_down", False),
        ("asyncTearDown", False),
        ("__aexit__", False),
        ("close_issue", True),
        ("stop_loss_orders", True),
        ("on_stop_command", True),
        ("reclose", True),
    ],
)
def test_gather_in_a_teardown_is_known_by_the_last_word_of_its_name(
    name: str, flagged: bool
) -> None:
    findings = _check(
        f"""
        import asyncio
        async def {name}(jobs):
            await asyncio.gather(*jobs, return_exceptions=True)
        """,
        "LW006",
    )
    assert bool(findings) == flagged


def test_gather_partial_of_a_logging_done_callback_accounts_for_the_task() -> None:
    findings = _check(
        """
        import asyncio, functools, logging
        def report(name, task):
            if task.exception():
                logging.error("%s failed", name)
        async def main(job, other):
            task = asyncio.create_task(job())
            task.add_done_callback(functools.partial(report, "job"))
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.gather(task, other, return_exceptions=True)
        """,
        "LW006",
    )
    assert [f.line for f in findings] == [10]


def test_sleep_zero_message_says_what_to_await() -> None:
    [finding] = _check(
        """
        import asyncio
        async def main(task):
            await asyncio.sleep(0)
            print(task.done())
        """,
        "LW009",
    )
    assert (finding.line, finding.column) == (4, 5)
    assert "asyncio.Event" in finding.message


def test_sleep_zero_delay_forms() -> None:
    findings = _check(
        """
        import asyncio
        from asyncio import sleep as pause
        async def main(task):
            await asyncio.sleep(0.0)
            await pause(delay=0)
            await asyncio.sleep(0.001)
            await asyncio.sleep(delay)
            print(task.done())
        """,
        "LW009",
    )
    assert [f.line for f in findings] == [5, 6]


def test_sleep_zero_is_quiet_in_test_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (
        "import asyncio\n\n\nasync def step(task):\n    await asyncio.sleep(0)\n    task.done()\n"
    )
    for relative in ("app/service.py", "tests/helpers.py", "app/test_service.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    monkeypatch.chdir(tmp_path)
    found = check(["."], select=["LW009"]).findings
    assert [finding.path for finding in found] == ["app/service.py"]


def test_mutable_default_is_reported_at_the_default_with_the_parameter() -> None:
    [first, second] = _check(
        """
        def f(a, b=None, *, cache={"key": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}, seen=set()):
            cache["other"] = b
            seen.add(a)
        """,
        "LW010",
    )
    assert (first.line, first.column) == (2, 27)
    assert "`cache`" in first.message
    assert "..." in first.message  # a long default is shortened
    assert "`seen`" in second.message
    assert "`set()`" in second.message
    assert "None" in second.message


def test_mutable_default_positional_defaults_align_with_the_last_parameters() -> None:
    [finding] = _check("def f(a, b, c=[], d=()):\n    c.append(a)\n", "LW010")
    assert "`c`" in finding.message


def test_mutable_default_message_mentions_concurrency_for_coroutines() -> None:
    [sync, coroutine] = _check(
        """
        def f(a=[]):
            a.append(1)
        async def g(a=[]):
            a.append(1)
        """,
        "LW010",
    )
    assert "concurrent" not in sync.message
    assert "every call shares one list, concurrent calls too" in coroutine.message


def test_mutable_default_message_says_what_the_function_does_with_it() -> None:
    findings = _check(
        """
        def appends(items=[]):
            items.append(1)
        def stores(self, items=[]):
            self.items = items
        def returns(items={}):
            return items
        def _fill(target):
            target.add(1)
        def hands_on(items=set()):
            _fill(items)
        """,
        "LW010",
    )
    messages = [f.message for f in findings]
    assert messages[0].startswith("default `[]` of `items` is appended to (line 3): ")
    assert "every call shares one list" in messages[0]
    assert "is stored in `self.items` (line 5)" in messages[1]
    assert "is returned (line 7)" in messages[2]
    assert "is passed to `_fill()`, where it is added to (line 9)" in messages[3]


def test_mutable_default_only_read_is_not_reported() -> None:
    source = """
        def f(items=[], options={}):
            for item in items:
                print(item, options.get(item), len(items), **options)
            return sorted(items)
        """
    assert _check(source, "LW010") == []
