"""The ```python blocks of the reference files, with the markers that say how to test them.

A block's first lines may be marker comments:

- ``# expect-error: Name`` or ``# expect-error: Name: text``: running it must raise exception
  ``Name`` (the class or one of its bases), whose message contains ``text``.
- ``# expect-stderr: text``: its standard error must contain ``text`` (repeatable): the warning
  or log line the reference quotes as the symptom.
- ``# expect-stdout: text``: run it; its standard output must contain ``text`` (repeatable): the
  wrong result a silent pitfall gives.
- ``# expect-doctor: kind``: the runtime doctor must report an event of that kind located in
  the block (repeatable).
- ``# expect-check: LW005`` (or ``LW001, LW004``): ``loopwise.lint.check_source`` must report
  exactly these codes. A block with only this marker is a fragment that is checked, not run.
- ``# run-with: pytest``: the block is a test module; it is run with pytest in a fresh directory.
- ``# requires-python: 3.13``: run only on that Python or later; compiled (not run) before.

Every other block must run with exit status 0, be clean under ``loopwise check``, and leave the
doctor nothing to report (no leaked task, lost exception, never-awaited coroutine or unclosed
resource).

In README.md and docs/*.md, an HTML comment on the line right before the fence (invisible on the
rendered page) says how a block that is not a plain program is tested:

- ``<!-- fragment -->``: a piece of a program (it uses names the text introduces, or ``await``
  at the top level): it is compiled and checked, not run.
- ``<!-- client: https://api.example.com -->``: a client program; it runs with that origin
  replaced by a local aiohttp server's (tests/docs/_api.py says what it answers).
- ``<!-- server -->``: a server program; it runs with its port 8080 replaced by 0, is asked for
  ``/`` at the address it prints, then stopped with SIGTERM, and must exit 0.
- ``<!-- redis -->``: a program that needs a Redis server; tests/redis runs it against the
  session's redis-server (``REDIS_URL``), the docs tests only compile and check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCES = ROOT / "docs" / "references"
FILES = ("SKILL.md", "asyncio.md", "aiohttp.md", "pitfalls.md")

_OPEN = re.compile(r"^```python\s*$")
_CLOSE = re.compile(r"^```\s*$")
_MARKER = re.compile(
    r"^#\s*(expect-error|expect-stderr|expect-stdout|expect-doctor|expect-check|run-with|"
    r"requires-python)"
    r":\s*(.+?)\s*$"
)
RUN_MARKERS = ("expect-error", "expect-stderr", "expect-stdout", "expect-doctor")
DOCTOR_KINDS = (
    "blocked",
    "task-leak",
    "exception-not-retrieved",
    "never-awaited",
    "unclosed-resource",
)


_DIRECTIVE = re.compile(r"^<!--\s*(fragment|client|server|redis)(?::\s*(\S+))?\s*-->\s*$")


class BlockSyntaxError(ValueError):
    """A reference file has an unclosed block or a malformed marker."""


@dataclass(frozen=True)
class Block:
    """One ```python block: ``first_line`` is the 1-based line of its first code line."""

    path: Path
    fence_line: int
    code: str
    markers: dict[str, list[str]] = field(default_factory=dict)
    directive: str | None = None  # fragment, client, server or redis (README.md and docs/*.md)
    directive_value: str | None = None

    @property
    def first_line(self) -> int:
        return self.fence_line + 1

    @property
    def last_line(self) -> int:
        return self.fence_line + self.code.count("\n")

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.fence_line}"

    @property
    def fragment(self) -> bool:
        return self.directive == "fragment"

    def marker(self, name: str) -> list[str]:
        return self.markers.get(name, [])

    @property
    def check_codes(self) -> set[str]:
        return {c.strip() for value in self.marker("expect-check") for c in value.split(",")}

    @property
    def runs(self) -> bool:
        """False for a fragment that is only checked statically."""
        return not self.check_codes or any(self.marker(name) for name in RUN_MARKERS)

    @property
    def required_python(self) -> tuple[int, ...]:
        values = self.marker("requires-python")
        return tuple(int(part) for part in values[0].split(".")) if values else (3,)


def parse(text: str, path: Path) -> list[Block]:
    """Every ```python block of ``text`` (fences at column 0, as the reference files write them)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not _OPEN.match(lines[index]):
            index += 1
            continue
        fence = index + 1
        end = next((j for j in range(index + 1, len(lines)) if _CLOSE.match(lines[j])), None)
        if end is None:
            raise BlockSyntaxError(f"{path.name}:{fence}: ```python block is never closed")
        body = lines[index + 1 : end]
        markers: dict[str, list[str]] = {}
        for line in body:
            match = _MARKER.match(line)
            if not match:
                if line.startswith("# expect") or line.startswith("#expect"):
                    raise BlockSyntaxError(f"{path.name}:{fence}: unknown marker {line!r}")
                break
            markers.setdefault(match.group(1), []).append(match.group(2))
        for kind in markers.get("expect-doctor", []):
            if kind not in DOCTOR_KINDS:
                raise BlockSyntaxError(f"{path.name}:{fence}: unknown doctor event {kind!r}")
        directive = _DIRECTIVE.match(lines[index - 1]) if index else None
        if directive is None and index and lines[index - 1].startswith("<!-- fragment"):
            raise BlockSyntaxError(f"{path.name}:{fence}: malformed {lines[index - 1]!r}")
        blocks.append(
            Block(
                path,
                fence,
                "\n".join(body) + "\n",
                markers,
                directive.group(1) if directive else None,
                directive.group(2) if directive else None,
            )
        )
        index = end + 1
    return blocks


def doc_files() -> list[Path]:
    """README.md and the guides in docs/ (the rule pages are generated; see tests/docs)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def all_blocks() -> list[Block]:
    blocks: list[Block] = []
    for name in FILES:
        path = REFERENCES / name
        blocks.extend(parse(path.read_text(encoding="utf-8"), path))
    return blocks
