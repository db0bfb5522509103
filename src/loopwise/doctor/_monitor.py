"""The monitor: a Unix socket in the watched process that answers ``loopwise ps/pstree/top``.

It is served by a thread of the doctor's own (``loopwise-doctor-monitor``), never by the loop,
so it answers while the loop is blocked; it adds no task, callback or timer to any loop.

Protocol: a client connects, sends one line of JSON (``{"op": "ps"}``, ``{"op": "top"}`` or
``{"op": "hello"}``, at most 4 KiB) and receives one line of JSON, then the connection is closed.
A bad request gets ``{"ok": false, "error": "..."}``. Safety:

- the socket is created with mode 0600 in a private directory (see :mod:`._monitor_paths`), and
  a peer whose user id is not ours (nor root's) is refused;
- reads are bounded (4 KiB, 5 s to send the request), writes are bounded (10 s to read the
  answer, at most 16 MiB), at most 8 clients at once; a client breaking a rule is dropped and
  one line is logged on the ``loopwise.doctor.monitor`` logger (at most one every 10 s);
- nothing a client sends reaches the watched program: the thread catches every error.

The socket is removed when the doctor is uninstalled, at interpreter exit and on SIGTERM (when
the program had not set a handler of its own: the process then ends by SIGTERM as before). A
forked child closes its copy of the parent's socket; if it runs a loop under the doctor it opens
its own, named by its own PID.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import secrets
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopwise._version import __version__
from loopwise.doctor._frames import frames_from_frame, user_location
from loopwise.doctor._loopwatch import LAG_EDGES, LoopWatch
from loopwise.doctor._model import Event, EventKind
from loopwise.doctor._monitor_paths import runtime_dir, socket_path
from loopwise.doctor._snapshot import (
    Stepper,
    Summary,
    SuspensionTracker,
    describe_tasks,
    live_tasks,
    python_version,
)

if TYPE_CHECKING:
    from loopwise.doctor._watchdog import Watchdog

__all__ = ["MAX_TASKS", "Monitor"]

log = logging.getLogger("loopwise.doctor.monitor")

MAX_REQUEST = 4096
MAX_RESPONSE = 16 * 1024 * 1024
MAX_CLIENTS = 8
MAX_TASKS = 10_000
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
_LAG_WINDOW = 60  # seconds of lag history kept (one histogram per second)
_BLOCKED_KEPT = 50


class _Client:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox: memoryview | None = None
        self.deadline = now + READ_TIMEOUT


def _peer_uid(sock: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return int(uid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _percentile_edge(counts: list[int], share: float) -> float | None:
    total = sum(counts)
    if not total:
        return None
    wanted = share * total
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= wanted:
            return LAG_EDGES[min(index, len(LAG_EDGES) - 1)]
    return LAG_EDGES[-1]


class Monitor:
    """Serves snapshots of the doctor's loops on a Unix socket named by the process's PID.

    :meth:`start` binds the socket (raising :class:`~loopwise.ConfigError` when that is not
    possible) and starts the thread; :meth:`close` stops both and removes the socket.
    """

    def __init__(self, watchdog: Watchdog, threshold: Callable[[], float]) -> None:
        self._watchdog = watchdog
        self._threshold = threshold
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.path: str | None = None
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lags: weakref.WeakKeyDictionary[LoopWatch, collections.deque[list[int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._blocked: collections.deque[tuple[float, Event]] = collections.deque(
            maxlen=_BLOCKED_KEPT
        )
        self._tracker = SuspensionTracker()
        self._started_at = time.time()
        self._last_log = 0.0
        self._sigterm_installed = False
        self.requests = 0
        self.refused = 0
        self.longest_step = 0.0
        self._atexit_registered = False

    def __repr__(self) -> str:
        state = "serving" if self.serving else "closed"
        return (
            f"<Monitor {state} path={self.path!r} requests={self.requests} refused={self.refused}>"
        )

    @property
    def serving(self) -> bool:
        """True while this process's socket is open and its thread runs."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind ``<runtime dir>/<pid>.sock`` and start serving; a no-op if already serving."""
        with self._lock:
            if self._pid == os.getpid():
                return
            pid = os.getpid()
            path = socket_path(pid, create=True)
            self._remove_stale(os.path.dirname(path), pid)
            listener = self._bind(path)
            self._wake = socket.socketpair()
            for end in self._wake:
                end.setblocking(False)
            self._listener, self.path, self._pid = listener, path, pid
            self._stopping = threading.Event()
            self._started_at = time.time()
            self._thread = threading.Thread(
                target=self._serve, name="loopwise-doctor-monitor", daemon=True
            )
            self._thread.start()
        if not self._atexit_registered:
            atexit.register(self._remove_socket)
            self._atexit_registered = True
        self._install_sigterm()

    @staticmethod
    def _bind(path: str) -> socket.socket:
        directory = os.path.dirname(path)
        temporary = os.path.join(directory, f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(temporary)
            # Bound under a temporary name, made private, then renamed: at no time can another
            # user connect to it, whatever the umask.
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
            listener.listen(MAX_CLIENTS)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            from loopwise._exceptions import ConfigError

            raise ConfigError(f"cannot open the monitor socket {path!r}: {exc}") from None
        return listener

    @staticmethod
    def _remove_stale(directory: str, own: int) -> None:
        """Remove sockets left by processes of ours that died without removing theirs."""
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                stem = name.removesuffix(".sock")
                if (
                    stem != name
                    and stem.isdigit()
                    and int(stem) != own
                    and not _pid_alive(int(stem))
                ):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(directory, name))

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self._sigterm_installed = True

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._remove_socket()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # end as the program would have without us

    def _remove_socket(self) -> None:
        if self.path is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def close(self) -> None:
        """Stop serving, wait for the thread (at most 2 s) and remove the socket."""
        with self._lock:
            if self._pid != os.getpid():
                return
            self._stopping.set()
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    self._wake[1].send(b"x")
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        with self._lock:
            self._remove_socket()
            self._close_sockets()
            self._pid = None
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._sigterm_installed = False
        with self._watchdog._lock:
            for watch in self._watchdog._watches:
                watch.lag_counts = None

    def _close_sockets(self) -> None:
        for sock in (self._listener, *(self._wake or ())):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._listener, self._wake = None, None

    def after_fork_in_child(self) -> None:
        """Drop the parent's socket (without removing its file) and thread; start afresh later."""
        self._lock = threading.Lock()
        self._close_sockets()
        self._thread = None
        self._pid = None
        self.path = None
        self._lags = weakref.WeakKeyDictionary()
        self._blocked.clear()
        self._tracker = SuspensionTracker()
        self._sigterm_installed = False

    def note(self, event: Event) -> None:
        """Keep ``event`` for ``top`` if it is a blocked loop (called from any thread)."""
        if event.kind is EventKind.BLOCKED:
            self._blocked.append((time.time(), event))

    # -- the serving thread --------------------------------------------------------------------

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        listener, wake = self._listener, self._wake
        if listener is None or wake is None:
            return
        clients: dict[socket.socket, _Client] = {}
        try:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            next_rotation = time.monotonic()
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_rotation:
                    with contextlib.suppress(Exception):
                        self._rotate_lags()
                    next_rotation = now + 1.0
                deadline = min([next_rotation, *(c.deadline for c in clients.values())])
                for key, mask in selector.select(max(0.0, deadline - now)):
                    sock: Any = key.fileobj
                    try:
                        if sock is listener:
                            self._accept(listener, selector, clients)
                        elif sock is wake[0]:
                            with contextlib.suppress(OSError):
                                wake[0].recv(64)
                        elif mask & selectors.EVENT_READ:
                            self._read(clients[sock], selector, clients)
                        else:
                            self._write(clients[sock], selector, clients)
                    except Exception as exc:  # never let a client end the thread
                        client = clients.get(sock)
                        if client is not None:
                            self._drop(client, selector, clients, f"error: {exc!r}")
                now = time.monotonic()
                for client in [c for c in clients.values() if c.deadline <= now]:
                    self._drop(client, selector, clients, "too slow (timed out)")
        finally:
            for client in list(clients.values()):
                with contextlib.suppress(OSError):
                    client.sock.close()
            selector.close()

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            with contextlib.suppress(Exception):
                log.warning("loopwise monitor: %s", message)

    def _accept(
        self, listener: socket.socket, selector: selectors.BaseSelector, clients: dict[Any, Any]
    ) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        uid = _peer_uid(sock)
        if uid is not None and uid not in (os.getuid(), 0):
            self.refused += 1
            self._log(f"refused a client of user id {uid}")
            sock.close()
            return
        if len(clients) >= MAX_CLIENTS:
            self.refused += 1
            with contextlib.suppress(OSError):
                sock.send(_error("too many clients at once: try again"))
            sock.close()
            return
        client = _Client(sock, time.monotonic())
        clients[sock] = client
        selector.register(sock, selectors.EVENT_READ)

    def _drop(
        self,
        client: _Client,
        selector: selectors.BaseSelector,
        clients: dict[Any, Any],
        why: str | None,
    ) -> None:
        clients.pop(client.sock, None)
        with contextlib.suppress(Exception):
            selector.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()
        if why is not None:
            self.refused += 1
            self._log(f"dropped a client: {why}")

    def _read(
        self, client: _Client, selector: selectors.BaseSelector, clients: dict[Any, Any]
    ) -> None:
        try:
            data = client.sock.recv(MAX_REQUEST + 1 - len(client.inbox))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(client, selector, clients, f"read failed: {exc}")
            return
        if not data:
            self._drop(client, selector, clients, None)  # went away without asking
            return
        client.inbox += data
        line, newline, _ = client.inbox.partition(b"\n")
        if not newline:
            if len(client.inbox) > MAX_REQUEST:
                self._respond(client, selector, _error("request longer than 4096 bytes"))
                self._log("dropped a client: request too long")
            return
        self.requests += 1
        self._respond(client, selector, self.answer(line))

    def _respond(self, client: _Client, selector: selectors.BaseSelector, data: bytes) -> None:
        client.outbox = memoryview(data)
        client.deadline = time.monotonic() + WRITE_TIMEOUT
        selector.modify(client.sock, selectors.EVENT_WRITE)

    def _write(
        self, client: _Client, selector: selectors.BaseSelector, clients: dict[Any, Any]
    ) -> None:
        if client.outbox is None:
            return
        try:
            sent = client.sock.send(client.outbox[:65536])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client, selector, clients, None)  # the client left before reading all
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_WR)
            self._drop(client, selector, clients, None)

    # -- answers --------------------------------------------------------------------------------

    def answer(self, line: bytes) -> bytes:
        """The one-line reply to one request line (never raises)."""
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error('the request is not a line of JSON: send e.g. {"op": "ps"}')
        if not isinstance(request, dict):
            return _error('the request must be a JSON object such as {"op": "ps"}')
        op = request.get("op")
        limit = request.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_TASKS:
            return _error(f"limit must be an integer from 1 to {MAX_TASKS}")
        try:
            if op == "hello":
                return _line(self._head("hello"))
            if op in ("ps", "top"):
                return self._snapshot(op, limit)
        except Exception as exc:
            return _error(f"the monitor failed to take a snapshot: {exc!r}")
        return _error(f"unknown op {op!r}: use 'ps', 'top' or 'hello'")

    def _head(self, op: str) -> dict[str, Any]:
        return {
            "ok": True,
            "op": op,
            "pid": os.getpid(),
            "python": python_version(),
            "loopwise": __version__,
            "argv": [str(a)[:200] for a in sys.argv[:8]],
            "uptime_s": round(time.time() - self._started_at, 1),
            "threshold_ms": self._threshold() * 1000,
        }

    def _watches(self) -> list[LoopWatch]:
        with self._watchdog._lock:
            watches = [w for w in self._watchdog._watches if w.active]
        for watch in watches:
            if watch.lag_counts is None:
                watch.lag_counts = [0] * (len(LAG_EDGES) + 1)
        return watches

    def _rotate_lags(self) -> None:
        for watch in self._watches():
            history = self._lags.get(watch)
            if history is None:
                history = self._lags[watch] = collections.deque(maxlen=_LAG_WINDOW)
            counts, watch.lag_counts = watch.lag_counts, [0] * (len(LAG_EDGES) + 1)
            if counts is not None:
                history.append(counts)

    def _loop_info(self, index: int, watch: LoopWatch, now: float) -> dict[str, Any]:
        counts = [0] * (len(LAG_EDGES) + 1)
        for second in [*self._lags.get(watch, ()), watch.lag_counts or []]:
            for bucket, count in enumerate(second):
                counts[bucket] += count
        away = now - watch.away_since if watch.away_since != float("inf") else 0.0
        away = max(0.0, away)
        if away > 0:
            counts[min(len(LAG_EDGES), sum(1 for e in LAG_EDGES if e < away))] += 1
        p99 = _percentile_edge(counts, 0.99)
        worst = max((i for i, c in enumerate(counts) if c), default=None)
        thread = threading._active.get(watch.thread_id or -1)  # type: ignore[attr-defined]
        info: dict[str, Any] = {
            "index": index,
            "thread": thread.name if thread is not None else None,
            "watch": watch.kind,
            "running": watch.loop.is_running(),
            "lag_ms": round(away * 1000, 1),
            "p99_ms": None if p99 is None else p99 * 1000,
            "max_ms": None if worst is None else LAG_EDGES[min(worst, len(LAG_EDGES) - 1)] * 1000,
            "iterations": sum(counts),
            "blocked_at": None,
        }
        if away > self._threshold() and watch.thread_id is not None:
            frame = sys._current_frames().get(watch.thread_id)
            if frame is not None:
                where = user_location(frames_from_frame(frame))
                info["blocked_at"] = None if where is None else where.to_json()
            del frame
        return info

    def _blocked_events(self) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {
                "ago_s": round(now - when, 1),
                "duration_ms": None if e.duration_ms is None else round(e.duration_ms, 1),
                "location": None if e.location is None else e.location.to_json(),
                "message": e.message[:500],
            }
            for when, e in reversed(self._blocked)
        ][:20]

    def _snapshot(self, op: str, limit: int) -> bytes:
        began = time.perf_counter()
        stepper = Stepper()
        watches = self._watches()
        now = time.monotonic()
        loops = [self._loop_info(i, w, now) for i, w in enumerate(watches)]
        index = {w.loop: i for i, w in enumerate(watches)}
        tasks = live_tasks(index, stepper)
        summary = Summary() if op == "top" else None
        parts: list[bytes] = []
        size = total = 0
        for record in describe_tasks(tasks, index, self._tracker, stepper, detail=op == "ps"):
            total += 1
            if summary is not None:
                summary.add(record)
            elif len(parts) < limit and size < MAX_RESPONSE:
                part = json.dumps(record, separators=(",", ":")).encode()
                size += len(part) + 1
                parts.append(part)
        del tasks
        head = self._head(op)
        head["loops"] = loops
        head["blocked"] = self._blocked_events()
        head["tasks_total"] = total
        if summary is not None:
            head["summary"] = summary.to_json()
        stepper.finish()
        self.longest_step = max(self.longest_step, stepper.longest)
        head["truncated"] = summary is None and len(parts) < total
        head["snapshot"] = {
            "took_ms": round((time.perf_counter() - began) * 1000, 1),
            "steps": stepper.steps,
            "longest_step_ms": round(stepper.longest * 1000, 3),
        }
        text = json.dumps(head, separators=(",", ":")).encode()
        return text[:-1] + b',"tasks":[' + b",".join(parts) + b"]}\n"


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _error(message: str) -> bytes:
    return _line({"ok": False, "error": message})


def monitor_directory() -> str:
    """The directory the monitor sockets of this user's processes are in."""
    return runtime_dir(create=False)


def lock_holder_patches() -> list[tuple[Any, str, Any]]:
    """``(owner, name, replacement)`` making ``asyncio.Lock`` remember the task holding it.

    The holder is kept as a weak reference on the lock (``_loopwise_holder``), set when
    ``acquire()`` returns and cleared by ``release()``; nothing else about the lock changes.
    """
    import asyncio.locks
    import functools

    lock_cls: Any = asyncio.locks.Lock
    acquire, release = lock_cls.acquire, lock_cls.release
    current_task, ref = asyncio.current_task, weakref.ref

    @functools.wraps(acquire)
    async def acquire_noting_holder(self: Any) -> bool:
        acquired: bool = await acquire(self)
        task = current_task()
        self._loopwise_holder = None if task is None else ref(task)
        return acquired

    @functools.wraps(release)
    def release_forgetting_holder(self: Any) -> None:
        self._loopwise_holder = None
        release(self)

    return [
        (lock_cls, "acquire", acquire_noting_holder),
        (lock_cls, "release", release_forgetting_holder),
    ]
