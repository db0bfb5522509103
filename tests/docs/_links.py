"""Relative links and anchors in Markdown files on disk, resolved as GitHub renders them.

The Markdown reading (code blocks skipped, link syntax, GitHub's heading slugs) is the skill
bundle checker's own, so the docs and the bundle are held to one reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loopwise.skill._bundle import _SCHEME_RE, _anchors, _links, _prose_lines

anchors = _anchors


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str


def links(path: Path) -> list[Link]:
    """The relative links and images of a Markdown file (code spans and blocks left out)."""
    return [
        Link(path, number, target)
        for number, line in _prose_lines(path.read_text(encoding="utf-8"))
        for target in _links(line)
        if target and not _SCHEME_RE.match(target) and not target.startswith("//")
    ]


def broken(link: Link, root: Path) -> str | None:
    """Why ``link`` does not resolve inside ``root``, or None."""
    target, _, anchor = link.target.partition("#")
    if target.startswith("/"):
        return f"{link.target} is absolute: make it relative"
    file = (link.source.parent / target).resolve() if target else link.source
    if root not in file.parents and file != root:
        return f"{link.target} leaves the repository"
    if not file.exists():
        return f"{link.target}: no such file"
    if anchor:
        if file.is_dir() or file.suffix != ".md":
            return f"{link.target}: an anchor into something that is not a Markdown file"
        if anchor not in anchors(file.read_text(encoding="utf-8")):
            return f"{link.target}: no heading with the anchor #{anchor} in {file.name}"
    return None
