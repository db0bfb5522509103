from __future__ import annotations

from dataclasses import dataclass, field

from loopwise.lint._fix import Fix

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One problem found in one file.

    Lines and columns are 1-based; ``end_line``/``end_column`` point just past the flagged node.
    ``code`` is a rule code such as ``LW001``, or ``syntax-error``/``io-error``/``internal-error``
    for a file that could not be checked (``is_error`` is then true). ``fix`` is the rule's fix,
    present only when fixes were asked for and the rule has one for this finding.
    """

    path: str
    line: int
    column: int
    code: str
    message: str
    end_line: int
    end_column: int
    fix: Fix | None = field(default=None, compare=False)

    @property
    def is_error(self) -> bool:
        """True when this is not a rule finding but a file that could not be checked."""
        return not self.code.startswith("LW")

    def to_dict(self) -> dict[str, str | int]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "code": self.code,
            "message": self.message,
        }
