"""Applying fixes: whatever the edits, the result parses, and no two applied fixes overlap."""

from __future__ import annotations

import ast
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise.lint._fix import Edit, Fix, apply_fixes, line_starts

SOURCE = (
    "import asyncio\n"
    "\n"
    "async def main(items=[]):  # a comment\n"
    "    x = 'é'\n"
    "    items.append(x)\n"
    "    return items\n"
)
LINES = SOURCE.encode().splitlines()


@st.composite
def edits(draw: st.DrawFn) -> Edit:
    line = draw(st.integers(1, len(LINES)))
    column = draw(st.integers(0, len(LINES[line - 1])))
    end_line = draw(st.integers(line, len(LINES)))
    low = column if end_line == line else 0
    end_column = draw(st.integers(low, len(LINES[end_line - 1])))
    text = draw(st.sampled_from(["", "await ", "None", "(", "\n    raise\n", "# x", "pass"]))
    return Edit(line, column, end_line, end_column, text)


fixes = st.lists(
    st.builds(
        Fix, st.just("f"), st.lists(edits(), min_size=1, max_size=2).map(tuple), st.booleans()
    ),
    max_size=6,
)


def _span(edit: Edit) -> tuple[int, int]:
    starts = line_starts(SOURCE.encode())
    return starts[edit.line - 1] + edit.column, starts[edit.end_line - 1] + edit.end_column


@settings(max_examples=300, deadline=None)
@given(fixes)
def test_result_parses_and_applied_fixes_never_touch(candidates: list[Fix]) -> None:
    result, applied = apply_fixes(SOURCE.encode(), candidates)
    ast.parse(result)
    spans = sorted(_span(edit) for fix in applied for edit in fix.edits)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start, spans
    if not applied:
        assert result == SOURCE.encode()
    assert all(any(fix is candidate for candidate in candidates) for fix in applied)
    again, _ = apply_fixes(result, [])
    assert again == result
