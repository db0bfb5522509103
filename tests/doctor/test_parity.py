"""``loopwise run`` is ``python`` plus a report: a table of programs run both ways, compared.

Each case lays out a few files, runs one command line under ``python`` and under ``loopwise
run`` in the same directory, and compares exit status, stdout and stderr. They must be
byte-identical when the doctor has nothing to report; when it reports, the program's own
output (everything before the report) must be.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.doctor.test_fork import POOL

REPORT = "\nloopwise doctor: "


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, str]
    argv: tuple[str, ...]
    reports: bool = False  # the doctor is expected to report something
    zipped: tuple[str, ...] = ()  # directories to turn into <name>.zip
    env: dict[str, str] = field(default_factory=dict)


SHOW_WORLD = """\
import os, sys
import __main__
print(sorted(k for k in vars(__main__) if k.startswith("__")))
print(__name__, __file__, os.path.isabs(__file__), __package__)
print(__spec__ and (__spec__.name, __spec__.origin))
print(type(__loader__).__name__, __cached__)
print(sys.argv)
print(sys.path[0])
"""

CASES = [
    Case("hello", {"p.py": "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"}, ("p.py",)),
    Case("world-of-a-script", {"sub/p.py": SHOW_WORLD}, ("sub/p.py", "a", "--json", "-m")),
    Case(
        "world-of-dash-m",
        {"pkg/__init__.py": "", "pkg/mod.py": SHOW_WORLD},
        ("-m", "pkg.mod", "x"),
    ),
    Case(
        "world-of-a-package-main",
        {"pkg/__init__.py": "", "pkg/__main__.py": SHOW_WORLD},
        ("-m", "pkg", "y"),
    ),
    Case("world-of-a-directory", {"app/__main__.py": SHOW_WORLD}, ("app", "z")),
    Case("world-of-a-zip", {"app/__main__.py": SHOW_WORLD}, ("app.zip",), zipped=("app",)),
    Case("exit-status", {"p.py": "import sys\nprint('bye')\nsys.exit(3)\n"}, ("p.py",)),
    Case("exit-message", {"p.py": "import sys\nsys.exit('fatal: no config')\n"}, ("p.py",)),
    Case("exit-none", {"p.py": "raise SystemExit\n"}, ("p.py",)),
    Case(
        "uncaught-exception",
        {"p.py": "def f():\n    raise ValueError('boom')\n\nf()\n"},
        ("p.py",),
    ),
    Case(
        "uncaught-in-dash-m",
        {"pkg/__init__.py": "", "pkg/mod.py": "raise KeyError('k')\n"},
        ("-m", "pkg.mod"),
    ),
    Case(
        "excepthook-honoured",
        {
            "p.py": "import sys\n"
            "sys.excepthook = lambda t, v, tb: print('hook:', t.__name__, v, tb.tb_lineno)\n"
            "raise RuntimeError('x')\n"
        },
        ("p.py",),
    ),
    Case(
        "excepthook-exits",
        {
            "p.py": "import sys\n"
            "def hook(t, v, tb):\n"
            "    print('hook:', t.__name__, file=sys.stderr)\n"
            "    sys.exit('hook gave up')\n"
            "sys.excepthook = hook\n"
            "raise RuntimeError('x')\n"
        },
        ("p.py",),
    ),
    Case(
        "traceback-through-asyncio-run",
        {
            "p.py": "import asyncio\n"
            "async def main():\n"
            "    raise LookupError('inside the loop')\n"
            "try:\n"
            "    with asyncio.Runner() as runner:\n"
            "        runner.run(main())\n"
            "except LookupError as exc:\n"
            "    raise RuntimeError('chained') from exc\n"
        },
        ("p.py",),
    ),
    Case(
        "excepthook-raises",
        {
            "p.py": "import sys\n"
            "def hook(t, v, tb):\n"
            "    raise LookupError('in the hook')\n"
            "sys.excepthook = hook\n"
            "raise RuntimeError('x')\n"
        },
        ("p.py",),
    ),
    Case(
        "excepthook-missing",
        {"p.py": "import sys\ndel sys.excepthook\nraise RuntimeError('x')\n"},
        ("p.py",),
    ),
    Case(
        "report-after-closing-sys-stderr",
        {
            "p.py": "import asyncio, sys, time\n"
            "async def main():\n"
            "    time.sleep(0.3)\n"
            "asyncio.run(main())\n"
            "sys.stderr.close()\n"
        },
        ("p.py",),
        reports=True,
    ),
    Case(
        # The report has nowhere to go: it is dropped, the program's status stands.
        "report-after-closing-fd-2",
        {
            "p.py": "import asyncio, os, time\n"
            "async def main():\n"
            "    time.sleep(0.3)\n"
            "asyncio.run(main())\n"
            "os.close(2)\n"
        },
        ("p.py",),
    ),
    Case(
        "file-after-chdir",
        {"sub/p.py": "import os\nos.chdir('/')\nprint(open(__file__).readline().strip())\n"},
        ("sub/p.py",),
    ),
    Case("syntax-error", {"p.py": "x = (\n"}, ("p.py",)),
    Case("missing-script", {}, ("nope.py",)),
    Case("missing-module", {}, ("-m", "no_such_module_here")),
    Case("directory-without-main", {"empty/x.txt": ""}, ("empty",)),
    Case("package-without-main", {"pkg/__init__.py": ""}, ("-m", "pkg")),
    Case(
        "atexit-and-threads",
        {
            "p.py": "import atexit, asyncio, threading, time\n"
            "atexit.register(print, 'atexit ran')\n"
            "def later():\n"
            "    time.sleep(0.2)\n"
            "    print('thread done', asyncio.run(asyncio.sleep(0.01, 'loop in thread')))\n"
            "threading.Thread(target=later).start()\n"
            "print('main done')\n"
        },
        ("p.py",),
    ),
    Case(
        "clean-asyncio",
        {
            "p.py": "import asyncio\n"
            "async def one(i):\n"
            "    await asyncio.sleep(0.01)\n"
            "    return i\n"
            "async def main():\n"
            "    print(await asyncio.gather(*(one(i) for i in range(5))))\n"
            "asyncio.run(main())\n"
        },
        ("p.py",),
    ),
    Case(
        "keyboard-interrupt",
        {"p.py": "print('before', flush=True)\nraise KeyboardInterrupt\n"},
        ("p.py",),
    ),
    Case(
        "a-block-is-reported",
        {
            "p.py": "import asyncio, time\n"
            "async def main():\n"
            "    print('start')\n"
            "    time.sleep(0.3)\n"
            "asyncio.run(main())\n"
        },
        ("p.py",),
        reports=True,
    ),
    Case(
        "never-awaited-warning",
        {
            "p.py": "import asyncio\n"
            "async def fetch():\n"
            "    pass\n"
            "async def main():\n"
            "    fetch()\n"
            "asyncio.run(main())\n"
        },
        ("p.py",),
        reports=True,
    ),
    Case("pool-fork", {"p.py": POOL}, ("p.py", "fork")),
    Case("pool-forkserver", {"p.py": POOL}, ("p.py", "forkserver")),
    Case("pool-spawn", {"p.py": POOL}, ("p.py", "spawn")),
    Case(
        "process-pool-executor",
        {
            "p.py": "import asyncio, concurrent.futures\n"
            "def work(x):\n"
            "    return asyncio.run(asyncio.sleep(0.01, x * 3))\n"
            "async def main():\n"
            "    loop = asyncio.get_running_loop()\n"
            "    with concurrent.futures.ProcessPoolExecutor(2) as pool:\n"
            "        print(await asyncio.gather(\n"
            "            *(loop.run_in_executor(pool, work, i) for i in range(4))))\n"
            "if __name__ == '__main__':\n"
            "    asyncio.run(main())\n"
        },
        ("p.py",),
    ),
]


def loopwise_command() -> list[str]:
    """``loopwise run`` as a user types it (the console script of this interpreter)."""
    script = Path(sys.executable).with_name("loopwise")
    if script.exists():
        return [str(script), "run"]
    found = shutil.which("loopwise")
    return [found, "run"] if found else [sys.executable, "-m", "loopwise.doctor"]


def python_command(loopwise: list[str]) -> str:
    """The interpreter the ``loopwise`` script runs on (its ``#!`` line), or this one.

    python names itself in its one-line errors (``python3.11: can't open file``): the plain run
    must use the same interpreter file as the console script for the outputs to compare.
    """
    first = Path(loopwise[0]).read_bytes().split(b"\n", 1)[0] if loopwise[1:] == ["run"] else b""
    interpreter = first[2:].decode(errors="replace").strip() if first.startswith(b"#!") else ""
    return interpreter if interpreter and Path(interpreter).exists() else sys.executable


def _lay_out(root: Path, case: Case) -> None:
    for name, text in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for directory in case.zipped:
        with zipfile.ZipFile(root / f"{directory}.zip", "w") as archive:
            for path in sorted((root / directory).rglob("*")):
                archive.write(path, path.relative_to(root / directory))


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        command,
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **env, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_loopwise_run_is_python_plus_a_report(tmp_path: Path, case: Case) -> None:
    _lay_out(tmp_path, case)
    loopwise = loopwise_command()
    plain = _run([python_command(loopwise), *case.argv], tmp_path, case.env)
    watched = _run([*loopwise, *case.argv], tmp_path, case.env)
    assert watched.returncode == plain.returncode, watched.stderr.decode()
    assert watched.stdout == plain.stdout
    if case.reports:
        own, report, _ = watched.stderr.decode().partition(REPORT)
        assert report, watched.stderr.decode()
        assert own.encode() == plain.stderr
    else:
        assert watched.stderr == plain.stderr


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 15
    assert {"pool-fork", "pool-forkserver", "pool-spawn"} <= {c.name for c in CASES}


def test_ctrl_c_kills_the_program_by_sigint_like_python(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(
        "import asyncio\n"
        "async def main():\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    results = []
    for command in ([sys.executable, "p.py"], [*loopwise_command(), "p.py"]):
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
        results.append((process.returncode, err.decode().splitlines()[-1:]))
    assert results[0] == (-signal.SIGINT, ["KeyboardInterrupt"])
    assert results[1] == results[0]
