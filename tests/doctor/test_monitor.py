"""The monitor end to end: real programs under ``loopwise run --monitor``, read by the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from loopwise import doctor
from loopwise.doctor._monitor_client import request

from .monitor_helpers import cli, cli_json, runtime_env, start, stop

__all__ = ["runtime_env"]  # the fixture, used by name

TASKS = """\
import asyncio

chasers = {}


async def hold(lock, started):
    async with lock:
        started.set()
        await asyncio.sleep(3600)  # <- holder


async def want(lock):
    async with lock:  # <- waiter
        pass


async def child(n):
    await asyncio.sleep(3600)  # <- child


async def chase(other):
    await asyncio.sleep(0)
    await chasers[other]  # <- chase


async def main():
    lock = asyncio.Lock()
    started = asyncio.Event()
    asyncio.create_task(hold(lock, started), name="holder")
    await started.wait()
    asyncio.create_task(want(lock), name="waiter")
    chasers["a"] = asyncio.create_task(chase("b"), name="chase-a")
    chasers["b"] = asyncio.create_task(chase("a"), name="chase-b")
    async with asyncio.TaskGroup() as tg:
        for n in range(2):
            tg.create_task(child(n), name=f"child-{n}")
        await asyncio.sleep(0.05)
        print("ready", flush=True)


asyncio.run(main())
"""


def _by_name(answer: dict[str, object]) -> dict[str, dict[str, object]]:
    return {t["name"]: t for t in answer["tasks"]}  # type: ignore[attr-defined,index]


def test_ps_shows_each_task_where_it_waits_and_on_what(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(TASKS, runtime_env, tmp_path)
    try:
        mode = os.stat(watched.socket).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(os.stat(watched.socket.parent).st_mode) == 0o700
        answer = cli_json("ps", str(watched.pid), "--json", env=runtime_env)
        tasks = _by_name(answer)
        assert answer["pid"] == watched.pid
        assert {"holder", "waiter", "chase-a", "chase-b", "child-0", "child-1"} <= set(tasks)
        waiter, holder = tasks["waiter"], tasks["holder"]
        assert waiter["coroutine"] == "want" and waiter["state"] == "waiting"
        assert waiter["at"]["line"] == watched.line("waiter")
        assert waiter["awaits"]["kind"] == "lock"
        assert waiter["awaits"]["tasks"] == [holder["id"]]  # held by the holder
        assert holder["awaits"]["kind"] == "sleep"
        assert holder["at"] == {
            "file": "prog.py",
            "line": watched.line("holder"),
            "function": "hold",
        }
        assert tasks["chase-a"]["awaits"] == {
            "kind": "task",
            "what": "task 'chase-b'",
            "tasks": [tasks["chase-b"]["id"]],
        }
        assert tasks["child-0"]["created_at"]["file"] == "prog.py"
        assert tasks["child-0"]["age_s"] >= 0
        main = next(t for t in answer["tasks"] if t["coroutine"] == "main")
        assert tasks["child-0"]["group_parent"] == main["id"]
        assert main["awaits"]["kind"] == "taskgroup"

        text = cli("ps", str(watched.pid), env=runtime_env)
        assert text.returncode == 0, text.stderr
        assert f"prog.py:{watched.line('waiter')}" in text.stdout
        assert "held by task 'holder'" in text.stdout
    finally:
        stop(watched)


def test_pstree_shows_the_lock_chain_task_groups_and_cycles(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(TASKS, runtime_env, tmp_path)
    try:
        tree = cli_json("pstree", str(watched.pid), "--json", env=runtime_env)["tree"]
        roots = {node["task"]["name"]: node for node in tree}
        waiter = roots["waiter"]
        assert [(c["task"]["name"], c["relation"]) for c in waiter["children"]] == [
            ("holder", "holds the lock")
        ]
        main = next(n for n in tree if n["task"]["coroutine"] == "main")
        assert {c["task"]["name"] for c in main["children"]} == {"child-0", "child-1"}
        # chase-a awaits chase-b, which awaits chase-a: shown once, not followed.
        chase = roots["chase-a"]
        (b,) = chase["children"]
        assert b["task"]["name"] == "chase-b"
        (back,) = b["children"]
        assert back["task"]["name"] == "chase-a" and back["repeat"] == "cycle"
        assert back["children"] == []

        text = cli("pstree", str(watched.pid), env=runtime_env)
        assert text.returncode == 0, text.stderr
        assert "CYCLE" in text.stdout and "[holds the lock] holder" in text.stdout
    finally:
        stop(watched)


BLOCKING = """\
import asyncio
import time


def crunch():
    time.sleep(0.4)  # <- short-block


def stall():
    time.sleep(60)  # <- long-block


async def main():
    await asyncio.sleep(0.05)
    crunch()
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.sleep(0.1)
    stall()


asyncio.run(main())
"""


def test_top_shows_the_lag_and_line_of_a_blocked_loop_and_past_blocks(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(BLOCKING, runtime_env, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:  # the monitor answers while the loop is blocked in stall()
            frame = cli_json("top", str(watched.pid), "--once", "--json", env=runtime_env)
            (loop,) = frame["loops"]
            if loop["blocked_at"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert loop["blocked_at"]["line"] == watched.line("long-block")
        assert loop["lag_ms"] > 100
        assert loop["p99_ms"] >= 100
        (event, *_) = frame["blocked"]
        assert event["location"]["line"] == watched.line("short-block")
        assert event["duration_ms"] >= 300
        assert frame["summary"]["by_coroutine"] == {"main": 1}

        text = cli("top", str(watched.pid), "--once", env=runtime_env)
        assert text.returncode == 0, text.stderr
        assert f"prog.py:{watched.line('long-block')}" in text.stdout
        assert f"prog.py:{watched.line('short-block')}" in text.stdout
    finally:
        stop(watched)


def test_a_process_without_monitor_gets_one_clear_line(runtime_env: dict[str, str]) -> None:
    for command in ("ps", "pstree", "top"):
        done = cli(command, str(os.getpid()), "--once" if command == "top" else "--json",
                   env=runtime_env)  # fmt: skip
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1, done.stderr
        assert "no loopwise monitor" in done.stderr and "--monitor" in done.stderr
    gone = cli("ps", "4194304", env=runtime_env)  # above the kernel's highest pid
    assert gone.returncode == 1 and gone.stderr.strip() == "loopwise: no process 4194304"
    web = cli("top", str(os.getpid()), "--web", "--port", "0", env=runtime_env)
    assert web.returncode == 1 and "no loopwise monitor" in web.stderr
    bad = cli("ps", "abc", env=runtime_env)
    assert bad.returncode == 2 and "not a process id" in bad.stderr


SLEEPER = """\
import asyncio
import sys


async def main():
    task = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
    print("ready", flush=True)
    await asyncio.sleep(float(sys.argv[1]))
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")


asyncio.run(main())
"""


@pytest.mark.parametrize("ending", ["return", "raise", "sigterm"])
def test_the_socket_is_removed_at_exit(
    runtime_env: dict[str, str], tmp_path: Path, ending: str
) -> None:
    delay = "3600" if ending == "sigterm" else "0.5"
    source = SLEEPER.replace("sys.argv[1]", delay).replace("sys.argv[2]", repr(ending))
    watched = start(source, runtime_env, tmp_path)
    assert watched.socket.exists()
    if ending == "sigterm":
        watched.process.send_signal(signal.SIGTERM)
    code = watched.process.wait(timeout=60)
    stop(watched)
    assert code == {"return": 0, "raise": 1, "sigterm": -signal.SIGTERM}[ending]
    assert not watched.socket.exists()


def _raw(path: Path, data: bytes, *, timeout: float = 10.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_clients_get_an_error_line_and_the_program_runs_on(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(SLEEPER.replace("sys.argv[1]", "3600"), runtime_env, tmp_path)
    try:
        silent = []
        for _ in range(3):  # connected, never asking: they must not hold up others
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(watched.socket))
            silent.append(sock)
        for data, error in [
            (b"garbage\n", "not a line of JSON"),
            (b"\xff\xfe\n", "not a line of JSON"),
            (b"[1, 2]\n", "must be a JSON object"),
            (b'{"op": "rm -rf"}\n', "unknown op"),
            (b'{"op": "ps", "limit": 10000000}\n', "limit must be"),
            (b'{"op": "ps", "limit": true}\n', "limit must be"),
            (b"x" * 5000, "longer than 4096"),
        ]:
            answer = json.loads(_raw(watched.socket, data))
            assert answer["ok"] is False and error in answer["error"], answer
        # A client that leaves without reading its answer.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(watched.socket))
            sock.sendall(b'{"op": "ps"}\n')
        answer = cli_json("ps", str(watched.pid), "--json", env=runtime_env)
        assert "sleeper" in _by_name(answer)
        for sock in silent:
            sock.close()
        assert watched.process.poll() is None
    finally:
        _, err = stop(watched)
    logged = [line for line in err.splitlines() if "loopwise monitor:" in line]
    assert 1 <= len(logged) <= 2, err  # one line, not one per client


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_is_refused_by_the_socket_permissions(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(SLEEPER.replace("sys.argv[1]", "3600"), runtime_env, tmp_path)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                _raw(watched.socket, b'{"op": "ps"}\n')
                code = 0
            except PermissionError:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 1
        assert cli_json("ps", str(watched.pid), "--json", env=runtime_env)["ok"]
    finally:
        stop(watched)


FORKING = """\
import asyncio
import os
import sys


async def work(name):
    task = asyncio.create_task(asyncio.sleep(3600), name=name)
    os.write(1, f"{name} {os.getpid()}\\n".encode())  # one write: the two processes share stdout
    await asyncio.sleep(float(sys.argv[1]) if name == "in-child" else 3600)
    task.cancel()


child = os.fork()
if child == 0:
    asyncio.run(work("in-child"))
else:
    asyncio.run(work("in-parent"))
"""


def test_a_forked_child_serves_its_own_socket_and_leaves_the_parents(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(FORKING.replace("sys.argv[1]", "3"), runtime_env, tmp_path, ready=None)
    try:
        assert watched.process.stdout is not None
        pids = {}
        for _ in range(2):
            name, pid = watched.process.stdout.readline().split()
            pids[name] = int(pid)
        assert pids["in-parent"] == watched.pid and pids["in-child"] != watched.pid
        parent = cli_json("ps", str(watched.pid), "--json", env=runtime_env)
        child = cli_json("ps", str(pids["in-child"]), "--json", env=runtime_env)
        assert parent["pid"] == watched.pid and "in-parent" in _by_name(parent)
        assert "in-child" not in _by_name(parent)
        assert child["pid"] == pids["in-child"] and "in-child" in _by_name(child)
        child_socket = watched.socket.parent / f"{pids['in-child']}.sock"
        deadline = time.monotonic() + 60
        while child_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not child_socket.exists()  # the child removed its own socket at exit...
        assert watched.socket.exists()  # ...and not the parent's
        assert "in-parent" in _by_name(cli_json("ps", str(watched.pid), "--json", env=runtime_env))
    finally:
        stop(watched)


def test_watch_with_monitor_in_process_adds_no_task(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_env["XDG_RUNTIME_DIR"])

    async def main() -> str:
        with doctor.watch(monitor=True) as watching:
            path = watching.monitor_path
            assert path is not None
            assert f"monitor={path!r}" in repr(watching)
            assert "loopwise-doctor-monitor" in {t.name for t in threading.enumerate()}
            task = asyncio.create_task(asyncio.sleep(10), name="in-process")
            before = asyncio.all_tasks()
            answer = await asyncio.to_thread(request, os.getpid(), "ps")
            assert asyncio.all_tasks() == before
            assert "in-process" in _by_name(answer)
            top = await asyncio.to_thread(request, os.getpid(), "top")
            assert top["summary"]["by_coroutine"]["sleep"] == 1
            task.cancel()
        return path

    path = asyncio.run(main())
    assert not os.path.exists(path)
    assert "loopwise-doctor-monitor" not in {t.name for t in threading.enumerate()}


def test_top_refreshes_in_a_terminal_and_q_quits(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    import pty
    import select
    import subprocess
    import sys

    from .monitor_helpers import CLI

    watched = start(SLEEPER.replace("sys.argv[1]", "3600"), runtime_env, tmp_path)
    controller, terminal = pty.openpty()
    try:
        top = subprocess.Popen(
            [sys.executable, "-c", CLI, "top", str(watched.pid)],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**runtime_env, "COLUMNS": "100", "LINES": "40"},
        )
        output = b""
        deadline = time.monotonic() + 30
        while output.count(b"Event loops") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                output += os.read(controller, 65536)
        assert output.count(b"Event loops") >= 2, output  # refreshed at least once
        assert b"main" in output  # the coroutine of the program's one running task
        os.write(controller, b"q")
        assert top.wait(timeout=10) == 0
    finally:
        os.close(controller)
        os.close(terminal)
        stop(watched)


def test_an_unsafe_runtime_directory_is_refused_with_one_line(
    runtime_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopwise import ConfigError

    runtime = Path(runtime_env["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    (runtime / "loopwise").mkdir(mode=0o755)
    os.chmod(runtime / "loopwise", 0o755)  # whatever the umask: open to others
    with pytest.raises(ConfigError, match="open to other users"):
        doctor.install(monitor=True)
    assert doctor.active() is None
    (runtime / "loopwise").rmdir()
    (runtime / "loopwise").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="not a directory of yours"):
        doctor.install(monitor=True)
    assert doctor.active() is None

    script = tmp_path / "prog.py"
    script.write_text("print('ran')\n")
    done = cli("run", "--monitor", str(script), env=runtime_env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "not a directory of yours" in done.stderr


def test_a_runtime_directory_too_long_for_a_socket_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from loopwise import ConfigError

    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    with pytest.raises(ConfigError, match="too long for a Unix socket"):
        doctor.install(monitor=True)
    assert doctor.active() is None


MANY = """\
import asyncio


async def main():
    tasks = [asyncio.create_task(asyncio.sleep(3600), name=f"idle-{n}") for n in range(3000)]
    print("ready", flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
"""


def test_a_client_that_never_reads_its_answer_does_not_hold_up_others(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    watched = start(MANY, runtime_env, tmp_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.connect(str(watched.socket))
            stuck.sendall(b'{"op": "ps", "limit": 10000}\n')  # about 2 MB, never read
            time.sleep(0.5)
            answer = cli_json("ps", str(watched.pid), "--json", "--limit", "10", env=runtime_env)
            assert answer["tasks_total"] == 3001 and answer["truncated"] is True
            assert len(answer["tasks"]) == 10
        assert watched.process.poll() is None
    finally:
        stop(watched)


def test_ps_finds_a_program_started_with_another_runtime_directory(
    runtime_env: dict[str, str], tmp_path: Path
) -> None:
    import shutil
    import tempfile

    watched = start(SLEEPER.replace("sys.argv[1]", "3600"), runtime_env, tmp_path)
    elsewhere = tempfile.mkdtemp(prefix="lw")
    try:  # e.g. a service started without a login session, read from an SSH shell
        answer = cli_json(
            "ps", str(watched.pid), "--json", env={**runtime_env, "XDG_RUNTIME_DIR": elsewhere}
        )
        assert "sleeper" in _by_name(answer)
    finally:
        stop(watched)
        shutil.rmtree(elsewhere)
