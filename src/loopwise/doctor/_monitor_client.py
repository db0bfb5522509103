"""The client side of ``ps``, ``pstree`` and ``top``: ask a watched process's monitor."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any

from loopwise.doctor._monitor_paths import candidate_paths

__all__ = ["ENABLE_HINT", "MonitorUnavailable", "request"]

MAX_ANSWER = 64 * 1024 * 1024
ENABLE_HINT = "start it with 'loopwise run --monitor ...' or loopwise.doctor.watch(monitor=True)"


class MonitorUnavailable(Exception):
    """The process cannot be asked: the message is one line saying why and what to do."""


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def request(pid: int, op: str, *, limit: int = 1000, timeout: float = 10.0) -> dict[str, Any]:
    """Send ``op`` to the monitor of process ``pid`` and return its answer.

    Raises :class:`MonitorUnavailable` (one line, what to do) when there is no such process,
    no monitor in it, the monitor belongs to another user, does not answer within
    ``timeout`` seconds, or answers with an error.
    """
    if pid <= 0:
        raise MonitorUnavailable(f"{pid} is not a process id")
    if not _process_exists(pid):
        raise MonitorUnavailable(f"no process {pid}")
    path = next((p for p in candidate_paths(pid) if os.path.exists(p)), None)
    if path is None:
        raise MonitorUnavailable(f"process {pid} has no loopwise monitor: {ENABLE_HINT}")
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                raise MonitorUnavailable(
                    f"process {pid} has no loopwise monitor (only a stale socket): {ENABLE_HINT}"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise MonitorUnavailable(
                    f"not allowed to read the monitor of process {pid}: it belongs to another "
                    "user (run as that user)"
                ) from None
            raise MonitorUnavailable(f"cannot reach the monitor of process {pid}: {exc}") from None
        sock.sendall(json.dumps({"op": op, "limit": limit}).encode() + b"\n")
        chunks: list[bytes] = []
        size = 0
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER:
                raise MonitorUnavailable(f"the monitor of process {pid} answered too much")
    except TimeoutError:
        raise MonitorUnavailable(
            f"the monitor of process {pid} did not answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise MonitorUnavailable(f"lost the monitor of process {pid}: {exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise MonitorUnavailable(f"the monitor of process {pid} sent a broken answer") from None
    if not isinstance(answer, dict):
        raise MonitorUnavailable(f"the monitor of process {pid} sent a broken answer")
    if not answer.get("ok"):
        raise MonitorUnavailable(f"the monitor of process {pid} said: {answer.get('error')}")
    return answer
