"""Every relative link in README.md, CHANGELOG.md and docs/**/*.md resolves, every anchor too."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.skill._bundle import slugify
from tests.docs._links import Link, anchors, broken, links
from tests.reference._blocks import ROOT

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINKS = [link for page in PAGES for link in links(page)]


def _in_bundle(link: Link) -> Link:
    """SKILL.md's links are written for the skill bundle, where references/ sits beside it."""
    if link.source.name == "SKILL.md" and link.target.startswith("references/"):
        return Link(link.source, link.line, link.target.removeprefix("references/"))
    return link


def test_the_pages_have_links() -> None:
    assert len(LINKS) > 100


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_resolve(page: Path) -> None:
    problems = [
        f"{link.source.relative_to(ROOT)}:{link.line}: {why}"
        for link in LINKS
        if link.source == page and (why := broken(_in_bundle(link), ROOT)) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        (
            "Check: find asyncio pitfalls before they run",
            "check-find-asyncio-pitfalls-before-they-run",
        ),
        (
            "An aiohttp server kit: `loopwise.http.server`",
            "an-aiohttp-server-kit-loopwisehttpserver",
        ),
        ("`client.request(method, url, *, params)`", "clientrequestmethod-url--params"),
        ("Sync ↔ async: `LoopThread`", "sync--async-looptread".replace("looptread", "loopthread")),
        ("Why is this bad?", "why-is-this-bad"),
        ("snake_case [link](x.md) <b>bold</b>", "snake_case-link-bold"),
    ],
)
def test_slug_is_githubs(heading: str, expected: str) -> None:
    assert slugify(heading) == expected


def test_repeated_headings_are_numbered_and_code_is_not_a_heading() -> None:
    text = '# Use\n## Use\n```\n# not a heading\n```\n<a name="here"></a>\n'
    assert anchors(text) == {"use", "use-1", "here"}


def test_a_broken_link_and_a_broken_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Title\n[ok](#title) [gone](b.md) [bad](#nope) `[code](c.md)` [web](https://x.org)\n"
    )
    found = links(tmp_path / "a.md")
    assert [link.target for link in found] == ["#title", "b.md", "#nope"]
    reasons = [broken(link, tmp_path) for link in found]
    assert reasons[0] is None
    assert reasons[1] == "b.md: no such file"
    assert reasons[2] is not None and "#nope" in reasons[2]
    assert isinstance(found[0], Link)
