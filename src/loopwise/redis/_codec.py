"""Codecs: how a work queue turns items into the bytes of a stream entry, and back."""

from __future__ import annotations

import json
import json.scanner
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["BYTES", "JSON", "TEXT", "Codec"]


class Codec(Protocol):
    """Turns an item into bytes and back. ``decode`` raises (any ``Exception``) on bytes it cannot
    read: the worker then moves the entry to the dead-letter stream with that reason."""

    def encode(self, item: Any, /) -> bytes: ...

    def decode(self, data: bytes, /) -> Any: ...


# typeshed types the scanner's context as a scanner; it is the decoder whose settings it uses.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Json:
    def encode(self, item: Any, /) -> bytes:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, data: bytes, /) -> Any:
        # What json.loads(data) returns, ~5x faster for the usual UTF-8 entry: its scanner run
        # on the decoded text. Anything it does not consume whole (other encodings, a BOM,
        # whitespace around, bad JSON) or not bytes goes to json.loads, for its result or error.
        try:
            text = data.decode()
            value, end = _scan(text, 0)
        except (StopIteration, ValueError, AttributeError):
            return json.loads(data)
        if end != len(text):
            return json.loads(data)
        return value

    def __repr__(self) -> str:
        return "JSON"


@dataclass(frozen=True, slots=True)
class _Text:
    def encode(self, item: Any, /) -> bytes:
        if not isinstance(item, str):
            raise TypeError(f"the TEXT codec encodes str items, got {type(item).__name__}")
        return item.encode()

    def decode(self, data: bytes, /) -> Any:
        return data.decode()

    def __repr__(self) -> str:
        return "TEXT"


@dataclass(frozen=True, slots=True)
class _Bytes:
    def encode(self, item: Any, /) -> bytes:
        if not isinstance(item, bytes | bytearray | memoryview):
            raise TypeError(f"the BYTES codec encodes bytes items, got {type(item).__name__}")
        return bytes(item)

    def decode(self, data: bytes, /) -> Any:
        return data

    def __repr__(self) -> str:
        return "BYTES"


JSON: Codec = _Json()
"""Items are JSON values (the default): ``encode`` raises ``TypeError`` on anything else."""
TEXT: Codec = _Text()
"""Items are ``str``, stored as UTF-8."""
BYTES: Codec = _Bytes()
"""Items are ``bytes``, stored as they are."""
