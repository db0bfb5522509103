"""``pytest --loopwise``: tested with pytester, with pytest-asyncio running the async tests."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

PLUGIN = "loopwise.doctor._pytest_plugin"

# The suites these tests run in-process block and leak on purpose; when this suite itself runs
# under `pytest --loopwise`, that is not this test's fault.
pytestmark = pytest.mark.loopwise(
    allow=["blocked", "task-leak", "exception-not-retrieved", "never-awaited"]
)


def _plugin_args() -> list[str]:
    """Load the plugin with -p unless its pytest11 entry point already does."""
    registered = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", PLUGIN]


def _run(
    pytester: pytest.Pytester, source: str, *args: str, subprocess: bool = False
) -> pytest.RunResult:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_app=source)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return run(*_plugin_args(), "-p", "no:cacheprovider", *args)


TESTS = """
import asyncio
import time

import pytest


async def test_clean():
    await asyncio.sleep(0.01)


async def test_blocks():
    time.sleep(0.3)  # line 12


@pytest.mark.loopwise(allow=["blocked"])
async def test_known_block():
    time.sleep(0.3)


@pytest.mark.loopwise(threshold_ms=2000)
async def test_generous_threshold():
    time.sleep(0.3)


async def test_leaks_a_task():
    asyncio.create_task(asyncio.sleep(10))  # line 26


async def _fail():
    raise ValueError("lost")


async def test_drops_an_exception():
    asyncio.create_task(_fail())  # line 34
    await asyncio.sleep(0.01)
"""


def test_plugin_fails_blocking_and_leaking_tests_with_their_location(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, TESTS, "--loopwise", "-v")
    result.assert_outcomes(passed=5, failed=1, errors=2)
    outcomes = {
        line.split(" ")[0].split("::")[1]: line.split(" ")[1]
        for line in result.outlines
        if line.startswith("test_app.py::")
    }
    assert outcomes["test_clean"] == "PASSED"
    assert outcomes["test_known_block"] == "PASSED"
    assert outcomes["test_generous_threshold"] == "PASSED"
    assert outcomes["test_blocks"] == "FAILED"
    text = result.stdout.str()
    assert "test_app.py:12" in text  # the blocking line
    assert "test_app.py:26" in text  # where the leaked task was created
    assert "test_app.py:34" in text  # where the task with the lost exception was created
    assert "ERROR at teardown of test_leaks_a_task" in text
    assert "ERROR at teardown of test_drops_an_exception" in text


def test_plugin_is_off_unless_asked(pytester: pytest.Pytester) -> None:
    result = _run(pytester, TESTS)
    result.assert_outcomes(passed=6)


def test_a_clean_suite_passes_and_reports_what_was_watched(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        "import asyncio\n\nasync def test_ok():\n    await asyncio.sleep(0.01)\n",
        "--loopwise",
        "--loopwise-threshold-ms",
        "50",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*watched 1 event loop(s): no events (threshold 50 ms)*"])


def test_a_bad_marker_is_a_clear_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        "import pytest\n\n@pytest.mark.loopwise(allow=['slow'])\nasync def test_x():\n    pass\n",
        "--loopwise",
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown event kind 'slow'*"])


VIRTUAL_CLOCK = """
import asyncio
import selectors


class VirtualSelector(selectors.DefaultSelector):
    clock = 0.0

    def select(self, timeout=None):
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            return super().select(None)
        self.clock += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        self.virtual = VirtualSelector()
        super().__init__(self.virtual)
        self.timers = 0

    def time(self):
        return self.virtual.clock

    def call_at(self, when, callback, *args, context=None):
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


def test_the_clock_moves_only_by_the_tests_own_timers():
    async def main():
        loop = asyncio.get_running_loop()
        steps = []
        for _ in range(3):
            await asyncio.sleep(10)
            steps.append(loop.time())
        return steps, loop.timers

    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        assert runner.run(main()) == ([10.0, 20.0, 30.0], 3)
"""


def test_a_virtual_clock_suite_sees_nothing_of_the_doctor(pytester: pytest.Pytester) -> None:
    result = _run(pytester, VIRTUAL_CLOCK, "--loopwise")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*watched 1 event loop(s)*"])


NESTED = """
import asyncio
import time

from loopwise import doctor


def test_own_doctor_inside_the_plugin():
    assert doctor.active() is None
    with doctor.watch(threshold_ms=50) as mine:
        assert doctor.active() is mine
        async def main():
            time.sleep(0.2)
        asyncio.run(main())
    assert [e.kind for e in mine.events] == ["blocked"]
    assert doctor.uninstall() is None


async def test_the_plugin_watches_again_afterwards():
    time.sleep(0.3)
"""


def test_watch_and_install_nest_inside_the_plugin(pytester: pytest.Pytester) -> None:
    result = _run(pytester, NESTED, "--loopwise", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_own_doctor_inside_the_plugin PASSED*",
            "*test_the_plugin_watches_again_afterwards FAILED*",
        ]
    )


UNITTEST = """
import asyncio
import time
import unittest


class Case(unittest.IsolatedAsyncioTestCase):
    async def test_blocks(self):
        time.sleep(0.3)  # line 8

    async def test_fine(self):
        await asyncio.sleep(0.01)
"""


def test_isolated_asyncio_test_cases_are_watched(pytester: pytest.Pytester) -> None:
    result = _run(pytester, UNITTEST, "--loopwise")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_app.py:8*"])


UNAWAITED = """
import asyncio
import gc


async def fetch():
    return 1


class Holder:
    pass


async def test_drops_a_coroutine_in_a_cycle():
    holder = Holder()
    holder.me = holder
    holder.coro = fetch()  # line 16
    del holder


async def test_clean_afterwards():
    await asyncio.sleep(0)


async def agen():
    for i in range(10):
        yield i
        await asyncio.sleep(0)


async def test_an_async_generator_left_open():
    async for i in agen():
        if i == 2:
            break
"""


def test_a_coroutine_never_awaited_fails_the_test_that_created_it(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, UNAWAITED, "--loopwise", "-v", "-W", "ignore::RuntimeWarning")
    result.assert_outcomes(passed=3, errors=1)
    text = result.stdout.str()
    assert "ERROR at teardown of test_drops_a_coroutine_in_a_cycle" in text
    assert "test_app.py:16" in text
    assert "task-leak" not in text


def test_reports_show_the_tests_frames_first_and_fold_pytest(pytester: pytest.Pytester) -> None:
    source = "import time\n\n\nasync def test_blocks():\n    time.sleep(0.3)\n"
    # In a subprocess: in-process, this very test's frames would be outside the inner one's.
    result = _run(pytester, source, "--loopwise", subprocess=True)
    result.assert_outcomes(failed=1)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("[blocked]"))
    assert lines[start + 2].strip() == "> test_app.py:5 in test_blocks"
    assert "library frames outside" in lines[start + 3]
    assert "pytest" in lines[start + 3] and "pluggy" in lines[start + 3]
    full = _run(pytester, source, "--loopwise", "--loopwise-full-stacks", subprocess=True)
    assert "_pytest" in full.stdout.str()


GC_COUNTING = """
import asyncio
import gc

gc.disable()  # from here on, every full collection is someone's explicit gc.collect()
FULL = []


def count(phase, info):
    if phase == "start" and info["generation"] == 2:
        FULL.append(1)


gc.callbacks.append(count)


async def test_one():
    await asyncio.sleep(0)


async def test_two():
    await asyncio.sleep(0)


async def test_three():
    await asyncio.sleep(0)


def test_no_full_collection_so_far():
    assert FULL == []


async def _fail():
    raise ValueError("lost")


async def test_loses_an_exception():
    task = asyncio.create_task(_fail())
    await asyncio.sleep(0.01)
    task.me = task  # a cycle: only a collection finds it
    del task


def test_that_one_needed_a_full_collection():
    assert len(FULL) == 1
"""


def test_a_full_gc_runs_only_when_a_lost_exception_awaits_it(pytester: pytest.Pytester) -> None:
    result = _run(pytester, GC_COUNTING, "--loopwise", subprocess=True)
    result.assert_outcomes(passed=6, errors=1)
    assert "ERROR at teardown of test_loses_an_exception" in result.stdout.str()


HARNESS_HEAP = """
import asyncio
import gc

# A suite's own heap: modules, fixtures, hypothesis' caches. Many objects in cycles, alive.
HEAP = [[i, [], {}] for i in range(400_000)]
for entry in HEAP:
    entry[1].append(entry)


async def test_a_full_collection_during_the_test():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: (gc.collect(), done.set_result(None)))  # as an automatic one would
    await done
"""


def test_collections_during_a_test_do_not_scan_the_suites_own_heap(
    pytester: pytest.Pytester,
) -> None:
    # A full collection while the heap above exists takes ~100 ms of CPU; during a test only the
    # test's own objects are scanned, so the collection is no block.
    result = _run(
        pytester, HARNESS_HEAP, "--loopwise", "--loopwise-threshold-ms", "40", subprocess=True
    )
    result.assert_outcomes(passed=1)
