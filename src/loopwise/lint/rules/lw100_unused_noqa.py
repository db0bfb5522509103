"""LW100: a `# noqa` code that suppresses nothing."""

from __future__ import annotations

import ast

from loopwise.lint._rule import Rule


class UnusedNoqa(Rule[ast.AST]):
    """## What it does
    Checks for `LW` codes in `# noqa:` comments that suppress no finding on their line (the
    engine reports it while applying the comments; like ruff's RUF100). Codes of other tools
    (`# noqa: E501`) and a bare `# noqa` are left alone: loopwise cannot know what they hide.

    ## Why is this bad?
    A suppression outlives the problem it hid: once the code is fixed the comment stays, and the
    next real finding on that line is hidden without anyone deciding it should be.

    Not in the default set: a `# noqa: LW004` for an opt-in rule that is not selected still
    counts as used only when that rule reports something there, so it is meant to be run on
    purpose (`--select LW100 --fix`), not on every check.

    ## Example
    ```python
    async def main():
        await save()  # noqa: LW001
    ```

    ## Use instead
    ```python
    async def main():
        await save()
    ```

    ## Fix safety
    Safe: the fix removes the unused codes from the comment, or the `# noqa` comment itself when
    no code is left; text after it in the comment is kept.
    """

    code = "LW100"
    name = "unused-noqa"
    summary = "`# noqa` code that suppresses nothing"
    default = False
    fix_safety = "safe"
