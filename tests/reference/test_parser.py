"""The block collector: markers, ids and malformed blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reference._blocks import BlockSyntaxError, parse

DOC = Path("doc.md")


def test_blocks_markers_and_lines() -> None:
    text = (
        "# Title\n"
        "```python\n"
        "# expect-check: LW001, LW004\n"
        "# expect-stderr: never awaited\n"
        "# expect-stderr: second\n"
        "print(1)\n"
        "```\n"
        "```console\n$ not python\n```\n"
        "```python\n"
        "# requires-python: 3.13\n"
        "# a plain comment ends the markers\n"
        "# expect-error: RuntimeError\n"
        "```\n"
    )
    first, second = parse(text, DOC)
    assert first.id == "doc.md:2"
    assert (first.first_line, first.last_line) == (3, 6)
    assert first.check_codes == {"LW001", "LW004"}
    assert first.marker("expect-stderr") == ["never awaited", "second"]
    assert first.runs  # expect-stderr makes a checked block run too
    assert second.required_python == (3, 13)
    assert second.marker("expect-error") == []  # after a plain comment: not a marker


def test_a_check_only_block_is_not_run() -> None:
    (block,) = parse("```python\n# expect-check: LW005\nimport time\n```\n", DOC)
    assert not block.runs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```python\nprint(1)\n", "never closed"),
        ("```python\n# expect-eror: X\n```\n", "unknown marker"),
        ("```python\n# expect-doctor: leaked\n```\n", "unknown doctor event"),
    ],
)
def test_malformed_blocks_are_errors(text: str, message: str) -> None:
    with pytest.raises(BlockSyntaxError, match=message):
        parse(text, DOC)


def test_the_comment_before_a_fence_says_how_a_doc_block_is_tested() -> None:
    text = (
        "<!-- fragment -->\n```python\nawait x\n```\n"
        "<!-- client: https://api.example.com -->\n```python\nprint(1)\n```\n"
        "<!-- server -->\n```python\nprint(2)\n```\n"
        "text\n```python\nprint(3)\n```\n"
    )
    blocks = parse(text, DOC)
    assert [(b.directive, b.directive_value) for b in blocks] == [
        ("fragment", None),
        ("client", "https://api.example.com"),
        ("server", None),
        (None, None),
    ]
    assert [b.fragment for b in blocks] == [True, False, False, False]


def test_a_misspelt_fragment_comment_is_an_error() -> None:
    with pytest.raises(BlockSyntaxError, match="malformed"):
        parse("<!-- fragments -->\n```python\nx\n```\n", DOC)
