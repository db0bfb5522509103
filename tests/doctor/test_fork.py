"""Fork safety: a child process is either watched by a fresh doctor or not at all, never half-on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

POOL = """\
import asyncio
import multiprocessing
import sys


def work(x):
    async def twice():
        await asyncio.sleep(0.01)
        return 2 * x

    return asyncio.run(twice())


async def warm_up():
    await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(warm_up())  # the parent ran a loop under the doctor before forking
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        print(pool.map(work, range(4)))
"""

EXECUTOR = """\
import asyncio
import concurrent.futures


def work(x):
    async def twice():
        await asyncio.sleep(0.01)
        return 2 * x

    return asyncio.run(twice())


async def main():
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, work, i) for i in range(4)))
    print(results)


if __name__ == "__main__":
    asyncio.run(main())
"""


def _run(
    tmp_path: Path, source: str, *args: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "prog.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "loopwise.doctor", *options, str(script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=45,
        check=False,
    )


# With --gil-fallback, faulthandler's timer is armed in the parent: the case that hung.
OPTIONS = [(), ("--gil-fallback",)]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "gil-fallback"])
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_children_running_asyncio_finish(
    tmp_path: Path, method: str, options: tuple[str, ...]
) -> None:
    done = _run(tmp_path, POOL, method, options=options)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[0, 2, 4, 6]\n"


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "gil-fallback"])
def test_process_pool_executor_children_finish(tmp_path: Path, options: tuple[str, ...]) -> None:
    done = _run(tmp_path, EXECUTOR, options=options)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[0, 2, 4, 6]\n"


CHILD_WATCHED = """\
import asyncio
import faulthandler
import os
import time

from loopwise import doctor


async def block():
    await asyncio.sleep(0.01)
    time.sleep(0.3)  # <- child-block
    await asyncio.sleep(0.01)


doc = doctor.install(threshold_ms=100, gil_fallback=True)
asyncio.run(asyncio.sleep(0.05))
pid = os.fork()
if pid == 0:
    # faulthandler is usable in the child: nothing armed by the parent is left behind.
    faulthandler.dump_traceback_later(30)
    faulthandler.cancel_dump_traceback_later()
    before = doc.event_count()
    asyncio.run(block())
    doc.sync()
    found = [e for e in doc.events_since(before) if e.kind == "blocked"]
    lines = [e.location.line for e in found if e.location is not None]
    os._exit(0 if lines == [LINE] else 3)
_, status = os.waitpid(pid, 0)
doctor.uninstall()
print("child", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_is_watched_by_a_fresh_doctor(tmp_path: Path) -> None:
    source = textwrap.dedent(CHILD_WATCHED)
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "# <- child-block" in text)
    script = tmp_path / "child.py"
    script.write_text(source.replace("LINE", str(line)))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "child 0\n", done.stderr
