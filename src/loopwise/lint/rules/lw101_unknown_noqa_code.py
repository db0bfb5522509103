"""LW101: a `# noqa` comment naming a code that is no loopwise rule."""

from __future__ import annotations

import ast

from loopwise.lint._rule import Rule


class UnknownNoqaCode(Rule[ast.AST]):
    """## What it does
    Checks for `LW` codes in `# noqa:` comments that no loopwise rule has (the engine reports
    it while applying the comments). Codes of other tools (`# noqa: E501`) are left alone.

    ## Why is this bad?
    A typo such as `# noqa: LW01` suppresses nothing, so the finding it was meant to hide is
    still reported, or, worse, the reader believes a line is covered when it is not.

    ## Example
    ```python
    async def main():
        save()  # noqa: LW01
    ```

    ## Use instead
    ```python
    async def main():
        save()  # noqa: LW001
    ```

    ## Fix safety
    No fix: which code was meant is for a person to decide.
    """

    code = "LW101"
    name = "unknown-noqa-code"
    summary = "`# noqa` names a code that is no loopwise rule"
