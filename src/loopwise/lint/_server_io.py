"""The editor's stream as the server reads it: bounded, and quiet about the editor's mistakes.

Guarantees: one message never takes more than ``MAX_MESSAGE_BYTES`` of memory (a longer one is
skipped, with one log line, and the session goes on), and a message pygls cannot read is one
log line, not a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["MAX_MESSAGE_BYTES", "BoundedInput", "one_line"]

logger = logging.getLogger("loopwise.server")

# One message may hold a whole buffer (files over 8 MiB are not checked) with room for JSON's
# escapes; a larger length is a broken or hostile client, not a file.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
_MAX_HEADER_BYTES = 64 * 1024
_DISCARD_CHUNK = 1024 * 1024


class BoundedInput:
    """The editor's stream as pygls reads it, with a bound on the memory one message takes.

    A message longer than ``MAX_MESSAGE_BYTES`` is read and thrown away in chunks (one log
    line; the session goes on), and a header line is cut at ``_MAX_HEADER_BYTES``.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def readline(self) -> bytes:
        line: bytes = self.stream.readline(_MAX_HEADER_BYTES)
        return line

    def read(self, size: int) -> bytes:
        if size <= MAX_MESSAGE_BYTES:
            data: bytes = self.stream.read(size)
            return data
        logger.error(
            "a message of %d bytes from the editor is over the limit of %d bytes; skipping it",
            size,
            MAX_MESSAGE_BYTES,
        )
        left = size
        while left > 0:
            chunk = self.stream.read(min(left, _DISCARD_CHUNK))
            if not chunk:
                return b""  # the editor went away: the session ends
            left -= len(chunk)
        return b"{}"  # what pygls gets instead: an invalid message, logged to the editor


def one_line(record: logging.LogRecord) -> bool:
    """A message pygls could not read is the editor's fault: its error, not a traceback."""
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True
