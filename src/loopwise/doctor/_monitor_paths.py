"""Where a watched process's monitor socket lives: the user's runtime directory, named by PID.

Both sides compute the same path: the monitor binds it, ``loopwise ps/pstree/top`` connect to
it. The directory is ``$XDG_RUNTIME_DIR/loopwise`` when that is set, else ``loopwise-<uid>`` in
the temporary directory; either way it is created with mode 0700 and must belong to the user
(a directory someone else made, or a symlink, is refused rather than used).
"""

from __future__ import annotations

import os
import stat
import tempfile

from loopwise._exceptions import ConfigError

__all__ = ["MAX_PATH_BYTES", "candidate_paths", "runtime_dir", "socket_path"]

#: A Unix socket path longer than this cannot be bound (the kernel's ``sun_path`` limit).
MAX_PATH_BYTES = 107


def _base(runtime: str | None = None) -> str:
    if runtime is None:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "loopwise")
    return _fallback()


def _fallback() -> str:
    return os.path.join(tempfile.gettempdir(), f"loopwise-{os.getuid()}")


def runtime_dir(*, create: bool) -> str:
    """The monitor directory of the current user; with ``create``, made (mode 0700) if missing.

    Raises :class:`~loopwise.ConfigError` when the directory exists but is not a private
    directory of this user (another owner, a symlink, or open to others).
    """
    path = _base()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot create the monitor directory {path!r}: {exc}") from None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ConfigError(f"cannot use the monitor directory {path!r}: {exc}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(
            f"the monitor directory {path!r} is not a directory of yours: remove it, or set "
            "XDG_RUNTIME_DIR to a private directory"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"the monitor directory {path!r} is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}): run 'chmod 700' on it"
        )
    return path


def socket_path(pid: int, *, create: bool = False) -> str:
    """The socket path of process ``pid`` for the current user."""
    path = os.path.join(runtime_dir(create=create), f"{pid}.sock")
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ConfigError(
            f"the monitor socket path {path!r} is too long for a Unix socket: set "
            "XDG_RUNTIME_DIR (or TMPDIR) to a shorter directory"
        )
    return path


def _their_runtime_dir(pid: int) -> str | None:
    """``XDG_RUNTIME_DIR`` as process ``pid`` has it (Linux, same user), else None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read(1 << 20)
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"XDG_RUNTIME_DIR="):
            return os.fsdecode(entry.partition(b"=")[2])
    return ""


def candidate_paths(pid: int) -> list[str]:
    """Where the socket of process ``pid`` may be, most likely first.

    The watched process may not share the client's ``XDG_RUNTIME_DIR`` (a service started
    without a login session, a shell over SSH): its own environment is read when possible, and
    both the runtime directory and the fallback in the temporary directory are tried.
    """
    bases = [_base(_their_runtime_dir(pid)), _base(), _fallback()]
    return [os.path.join(base, f"{pid}.sock") for base in dict.fromkeys(bases)]
