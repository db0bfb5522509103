"""The JSON codec reads exactly what ``json.loads`` reads, the same way, on any bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise.redis import JSON

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])


def _outcome(decode: Any, data: bytes) -> tuple[str, str]:
    try:
        return "value", repr(decode(data))
    except Exception as exc:  # the same error, same message
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(value=_VALUES, encoding=_ENCODINGS, pad=st.sampled_from(["", " ", "\n", " \t"]))
def test_a_value_written_any_way_json_allows_reads_back_as_json_loads_reads_it(
    value: Any, encoding: str, pad: str
) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        data = (pad + text + pad).encode(encoding)
        assert _outcome(JSON.decode, data) == _outcome(json.loads, data)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=24) | st.text(max_size=12).map(str.encode))
def test_any_bytes_decode_or_fail_as_json_loads_does(data: bytes) -> None:
    assert _outcome(JSON.decode, data) == _outcome(json.loads, data)


def test_the_items_it_writes_read_back() -> None:
    for item in [0, -1.5, "é", [1, {"a": None}], {"nested": [[], {}]}, True]:
        assert JSON.decode(JSON.encode(item)) == item


def test_the_json_codec_takes_and_refuses_what_json_loads_does() -> None:
    """The codec is public: code that decodes a str with it (json.loads takes str, bytes and
    bytearray) keeps working, and anything else fails with json.loads' own TypeError."""
    import json

    from loopwise.redis import JSON

    assert JSON.decode('{"a": [1, "é"]}') == {"a": [1, "é"]}
    assert JSON.decode(bytearray(b"[1]")) == [1]
    for wrong in (memoryview(b"[1]"), 5, None):
        with pytest.raises(TypeError) as ours:
            JSON.decode(wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError) as theirs:
            json.loads(wrong)  # type: ignore[arg-type]
        assert str(ours.value) == str(theirs.value)
