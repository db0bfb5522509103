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
import logging
import os
import secrets
import selectors
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopwise.doctor._model import Event
from loopwise.doctor._monitor_answers import Answers, error_line
from loopwise.doctor._monitor_paths import socket_path

if TYPE_CHECKING:
    from loopwise.doctor._watchdog import Watchdog

__all__ = ["Monitor"]

log = logging.getLogger("loopwise.doctor.monitor")

MAX_REQUEST = 4096
MAX_CLIENTS = 8
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0


class _Client:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox: collections.deque[memoryview] = collections.deque()
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
        self.answers = Answers(watchdog, threshold)
        self._last_log = 0.0
        self._sigterm_installed = False
        self.requests = 0
        self.refused = 0
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
            self.answers = Answers(self._watchdog, self._threshold)
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
        self.answers.stop_counting()

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
        self.answers = Answers(self._watchdog, self._threshold)
        self._sigterm_installed = False

    def note(self, event: Event) -> None:
        """Keep ``event`` for ``top`` if it is a blocked loop (called from any thread)."""
        self.answers.note(event)

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
                        self.answers.rotate_lags()
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
                sock.send(error_line("too many clients at once: try again"))
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
                self._respond(client, selector, [error_line("request longer than 4096 bytes")])
                self._log("dropped a client: request too long")
            return
        self.requests += 1
        began = time.monotonic()
        answer = self.answers.answer(line)
        # The others waited for this answer (a snapshot of many tasks takes a while): that time
        # is not theirs to be blamed for.
        spent = time.monotonic() - began
        for other in clients.values():
            if other is not client:
                other.deadline += spent
        self._respond(client, selector, answer)

    def _respond(
        self, client: _Client, selector: selectors.BaseSelector, pieces: list[bytes]
    ) -> None:
        client.outbox.extend(memoryview(piece) for piece in pieces if piece)
        client.deadline = time.monotonic() + WRITE_TIMEOUT
        selector.modify(client.sock, selectors.EVENT_WRITE)

    def _write(
        self, client: _Client, selector: selectors.BaseSelector, clients: dict[Any, Any]
    ) -> None:
        if not client.outbox:
            return
        try:
            sent = client.sock.send(client.outbox[0][:65536])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client, selector, clients, None)  # the client left before reading all
            return
        piece = client.outbox[0]
        if sent < len(piece):
            client.outbox[0] = piece[sent:]
        else:
            client.outbox.popleft()
        if not client.outbox:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_WR)
                _discard_unread(client.sock)
            self._drop(client, selector, clients, None)

    # -- answers --------------------------------------------------------------------------------


def _discard_unread(sock: socket.socket, limit: int = 1 << 20) -> None:
    """Read and drop what the client sent beyond its request (at most ``limit`` bytes).

    Closing a socket with unread input resets the connection, and the client may then lose the
    answer it has not read yet (a request that was too long is answered before it is all read).
    """
    while limit > 0:
        try:
            data = sock.recv(min(limit, 65536), socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            return
        limit -= len(data)
