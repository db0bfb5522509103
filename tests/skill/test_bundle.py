"""``loopwise skill build`` / ``loopwise skill check``: reproducible bundles, and every kind of
problem the check finds."""

from __future__ import annotations

import argparse
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from loopwise.skill import (
    BUNDLE_FILENAME,
    SKILL_NAME,
    build_bundle,
    check_bundle,
    check_files,
    pack,
    read_sources,
    strip_test_markers,
)
from loopwise.skill._bundle import slugify
from loopwise.skill._cli import register
from tests.reference._blocks import _MARKER, REFERENCES, all_blocks

MEMBERS = [
    f"{SKILL_NAME}/SKILL.md",
    f"{SKILL_NAME}/references/aiohttp.md",
    f"{SKILL_NAME}/references/asyncio.md",
    f"{SKILL_NAME}/references/pitfalls.md",
]
SKILL = f"{SKILL_NAME}/SKILL.md"
FRONT = "---\nname: python-async-patterns\ndescription: Async patterns.\n---\n"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="loopwise")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


def minimal(**overrides: str) -> dict[str, bytes]:
    files = {
        SKILL: FRONT + "# Skill\n\nSee [asyncio](references/asyncio.md#tasks) and LW001.\n",
        f"{SKILL_NAME}/references/asyncio.md": "# asyncio\n\n## Tasks\n\nText.\n",
    }
    files.update(overrides)
    return {name: text.encode() for name, text in files.items()}


def problems_of(files: dict[str, bytes]) -> list[str]:
    return [str(p) for p in check_files(files, codes={"LW001", "LW002"})]


# -- building ------------------------------------------------------------------------------


def test_build_writes_the_bundle_with_the_documented_layout(tmp_path: Path) -> None:
    assert cli("skill", "build", "-o", str(tmp_path / "out")) == 0
    bundle = tmp_path / "out" / BUNDLE_FILENAME
    with zipfile.ZipFile(bundle) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == MEMBERS  # SKILL.md first, then by name
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3
            assert info.compress_type == zipfile.ZIP_DEFLATED
        sources = {
            f"{SKILL_NAME}/SKILL.md": "SKILL.md",
            f"{SKILL_NAME}/references/aiohttp.md": "aiohttp.md",
            f"{SKILL_NAME}/references/asyncio.md": "asyncio.md",
            f"{SKILL_NAME}/references/pitfalls.md": "pitfalls.md",
        }
        for member, source in sources.items():
            text = (REFERENCES / source).read_text(encoding="utf-8")
            assert archive.read(member).decode() == strip_test_markers(text)
    assert check_bundle(bundle) == []


def test_build_is_reproducible_whatever_the_files_dates_and_modes(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    build_bundle(first, REFERENCES)
    copy = tmp_path / "copy"
    shutil.copytree(REFERENCES, copy)
    for path in copy.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
        path.chmod(0o600)
    old = os.umask(0o077)
    try:
        build_bundle(second, copy)
    finally:
        os.umask(old)
    data = (first / BUNDLE_FILENAME).read_bytes()
    assert data == (second / BUNDLE_FILENAME).read_bytes()
    assert pack(read_sources(REFERENCES)) == data


def test_pack_depends_only_on_names_and_contents() -> None:
    files = minimal()
    assert pack(files) == pack(dict(reversed(list(files.items()))))
    changed = {**files, SKILL: files[SKILL] + b"\n"}
    assert pack(changed) != pack(files)


def test_build_refuses_sources_with_problems_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    shutil.copytree(REFERENCES, source)
    skill = source / "SKILL.md"
    skill.write_text(skill.read_text() + "\nSee [gone](references/gone.md) and LW999.\n")
    assert cli("skill", "build", "-o", str(tmp_path / "out"), "--source", str(source)) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "references/gone.md" in out[0] and "does not resolve" in out[0]
    assert "LW999 is not a loopwise check rule" in out[1]
    assert not (tmp_path / "out" / BUNDLE_FILENAME).exists()


def test_build_with_a_missing_source_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    shutil.copytree(REFERENCES, source)
    (source / "pitfalls.md").unlink()
    assert cli("skill", "build", "-o", str(tmp_path), "--source", str(source)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pitfalls.md: cannot read it" in err


def test_build_into_an_unusable_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli("skill", "build", "-o", str(blocker)) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_skill_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("skill") == 2
    assert "choose an action: build or check" in capsys.readouterr().err


def test_the_bundle_ships_no_test_markers_but_keeps_every_code_line(tmp_path: Path) -> None:
    build_bundle(tmp_path, REFERENCES)
    with zipfile.ZipFile(tmp_path / BUNDLE_FILENAME) as archive:
        shipped = "".join(archive.read(name).decode() for name in archive.namelist())
    leftover = [line for line in shipped.splitlines() if _MARKER.match(line)]
    assert all("requires-python" in line for line in leftover), leftover
    for block in all_blocks():  # every line of code but the markers is still there
        body = "".join(
            line
            for line in block.code.splitlines(keepends=True)
            if not _MARKER.match(line) or "requires-python" in line
        )
        assert body in shipped, block.id


def test_strip_test_markers_only_touches_the_top_of_python_blocks() -> None:
    text = (
        "# expect-error: prose heading stays\n"
        "```python\n# requires-python: 3.13\n# expect-stdout: x\n# run-with: pytest\n"
        "print('x')\n# expect-stdout: a comment further down stays\n```\n"
        "```console\n# expect-check: LW001\n```\n"
    )
    assert strip_test_markers(text) == (
        "# expect-error: prose heading stays\n"
        "```python\n# requires-python: 3.13\nprint('x')\n"
        "# expect-stdout: a comment further down stays\n```\n"
        "```console\n# expect-check: LW001\n```\n"
    )


def test_a_source_that_is_not_utf8_is_reported_not_crashed_on(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REFERENCES, source)
    (source / "pitfalls.md").write_bytes(b"# caf\xe9\n```python\n# expect-stdout: x\n```\n")
    target, problems = build_bundle(tmp_path / "out", source)
    assert [p.message for p in problems if "pitfalls" in p.member] == [
        "not UTF-8 text (invalid continuation byte at byte 5)"
    ]
    assert not target.exists()


# An Agent Skill's references are loaded whole into a model's context: keep each file, and the
# whole bundle, within a budget (tokens estimated as characters / 4).
TOKENS_PER_REFERENCE = 8_000
TOKENS_PER_BUNDLE = 25_000


def test_the_bundle_fits_its_token_budget(tmp_path: Path) -> None:
    build_bundle(tmp_path, REFERENCES)
    with zipfile.ZipFile(tmp_path / BUNDLE_FILENAME) as archive:
        tokens = {name: len(archive.read(name).decode()) // 4 for name in archive.namelist()}
    too_big = {name: n for name, n in tokens.items() if n > TOKENS_PER_REFERENCE}
    assert not too_big, f"over {TOKENS_PER_REFERENCE} tokens: {too_big}"
    assert sum(tokens.values()) <= TOKENS_PER_BUNDLE, tokens


# -- checking --------------------------------------------------------------------------------


def test_a_sound_minimal_bundle_has_no_problems() -> None:
    assert problems_of(minimal()) == []


@pytest.mark.parametrize(
    ("skill_md", "expected"),
    [
        ("# no front matter\n", "SKILL.md:1: no front matter"),
        ("---\nname: python-async-patterns\n", "SKILL.md:1: front matter is not closed"),
        ("---\ndescription: x\n---\n", "front matter has no 'name'"),
        ("---\nname: python-async-patterns\n---\n", "front matter has no 'description'"),
        (
            "---\nname: python-async-patterns\ndescription:\n---\n",
            "SKILL.md:3: description is empty",
        ),
        ("---\nname: Async_Patterns\ndescription: x\n---\n", "must be lower-case words"),
        ("---\nname: other-name\ndescription: x\n---\n", "differs from the directory"),
        (f"---\nname: python-async-patterns\ndescription: {'x' * 1025}\n---\n", "at most 1024"),
        ("---\nname: python-async-patterns\nno colon here\ndescription: x\n---\n", "SKILL.md:3"),
    ],
    ids=[
        "no-front-matter",
        "unclosed",
        "no-name",
        "no-description",
        "empty-description",
        "bad-name",
        "name-not-directory",
        "long-description",
        "malformed-line",
    ],
)
def test_front_matter_problems(skill_md: str, expected: str) -> None:
    problems = problems_of(minimal(**{SKILL: skill_md}))
    assert len(problems) == 1 and expected in problems[0], problems


def test_quoted_and_folded_values_are_accepted() -> None:
    skill_md = '---\nname: "python-async-patterns"\ndescription: >\n  folded text\n---\n'
    assert "description is empty" in problems_of(minimal(**{SKILL: skill_md}))[0]
    skill_md = "---\nname: 'python-async-patterns'\ndescription: 'ok'\nlicense: MIT\n---\n"
    assert problems_of(minimal(**{SKILL: skill_md})) == []


def test_broken_links_and_anchors_are_reported_with_their_line() -> None:
    skill_md = (
        FRONT
        + "[ok](references/asyncio.md)\n"
        + "[missing](references/nope.md)\n"
        + "[bad anchor](references/asyncio.md#no-such-heading)\n"
        + "[self](#no-heading-here)\n"
        + "[escape](../outside.md)\n"
        + "[absolute](/etc/passwd)\n"
        + "[ref]: references/also-missing.md\n"
    )
    problems = problems_of(minimal(**{SKILL: skill_md}))
    assert problems == [
        f"{SKILL}:6: link 'references/nope.md' does not resolve: "
        f"no {SKILL_NAME}/references/nope.md in the bundle",
        f"{SKILL}:7: link 'references/asyncio.md#no-such-heading': "
        f"{SKILL_NAME}/references/asyncio.md has no heading #no-such-heading",
        f"{SKILL}:8: link '#no-heading-here': {SKILL} has no heading #no-heading-here",
        f"{SKILL}:9: link '../outside.md' does not resolve: no outside.md in the bundle",
        f"{SKILL}:10: link '/etc/passwd' is absolute; make it relative",
        f"{SKILL}:11: link 'references/also-missing.md' does not resolve: "
        f"no {SKILL_NAME}/references/also-missing.md in the bundle",
    ]


def test_links_between_reference_files_and_external_ones() -> None:
    asyncio_md = (
        "# asyncio\n\n## Tasks\n\n## Tasks\n\nSee [P1](pitfalls.md#p1-never-awaited), "
        "[second](#tasks-1), [web](https://docs.python.org/3/), [mail](mailto:a@b.c).\n"
        "```python\nx = '[not a link](missing.md)'  # code is not prose\n```\n"
        "Inline `[code](missing.md)` neither.\n"
    )
    files = minimal(
        **{
            f"{SKILL_NAME}/references/asyncio.md": asyncio_md,
            f"{SKILL_NAME}/references/pitfalls.md": "# Pitfalls\n\n## P1. Never awaited\n",
        }
    )
    assert problems_of(files) == []


def test_unknown_rule_codes_are_reported_even_in_code_blocks() -> None:
    skill_md = FRONT + "LW001 and LW002 exist.\n```python\n# noqa: LW404\n```\n"
    assert problems_of(minimal(**{SKILL: skill_md})) == [
        f"{SKILL}:7: LW404 is not a loopwise check rule (see `loopwise rule`)"
    ]


def test_the_real_rule_registry_is_used_by_default() -> None:
    problems = check_files(minimal(**{SKILL: FRONT + "LW011 yes, LW099 no\n"}))
    assert [p.message for p in problems] == [
        "LW099 is not a loopwise check rule (see `loopwise rule`)"
    ]


def test_layout_problems() -> None:
    files = minimal()
    assert "exactly one top-level directory" in problems_of({**files, "other/x.md": b"# x\n"})[0]
    nested = {f"{SKILL_NAME}/references/../../evil.md": b"x"}
    assert any("inside the skill's directory" in p for p in problems_of({**files, **nested}))
    without_skill = {k: v for k, v in files.items() if k != SKILL}
    assert problems_of(without_skill) == [f"{SKILL}: missing: a skill needs a SKILL.md at its top"]
    bad_text = {f"{SKILL_NAME}/references/asyncio.md": b"# caf\xe9\n"}
    problems = problems_of({**files, **bad_text})
    assert any("asyncio.md: not UTF-8 text" in p for p in problems), problems


def test_check_command_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / BUNDLE_FILENAME
    skill_md = FRONT + "[x](references/missing.md) LW999\n"
    bundle.write_bytes(pack(minimal(**{SKILL: skill_md})))
    assert cli("skill", "check", str(bundle)) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bundle}: {SKILL}:5: ") for line in lines)
    assert "2 problem(s)" in captured.err


def test_check_command_on_a_sound_bundle_exits_0(tmp_path: Path) -> None:
    bundle = tmp_path / BUNDLE_FILENAME
    bundle.write_bytes(pack(minimal(**{SKILL: FRONT + "LW001\n"})))
    assert cli("skill", "check", str(bundle)) == 0


@pytest.mark.parametrize("kind", ["missing", "directory", "not-a-zip", "truncated"])
def test_missing_or_corrupt_files_exit_2_with_one_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / BUNDLE_FILENAME
    if kind == "directory":
        path.mkdir()
    elif kind == "not-a-zip":
        path.write_bytes(b"this is not a zip file at all")
    elif kind == "truncated":
        data = pack(minimal())
        path.write_bytes(data[: len(data) // 2])
    assert cli("skill", "check", str(path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("loopwise: error: ")
    assert "Traceback" not in err


def test_a_member_that_appears_twice_is_a_corrupt_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / BUNDLE_FILENAME
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr(SKILL, FRONT)
        archive.writestr(SKILL, FRONT)
    assert cli("skill", "check", str(path)) == 2
    assert "appears twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("P1. A coroutine that is never awaited", "p1-a-coroutine-that-is-never-awaited"),
        ("`asyncio.run()` inside a running loop", "asynciorun-inside-a-running-loop"),
        ("The event loop's lifecycle", "the-event-loops-lifecycle"),
        ("Version matrix 3.7 → 3.13", "version-matrix-37--313"),
        ("Application state: AppKey and cleanup_ctx", "application-state-appkey-and-cleanup_ctx"),
        ("The [linked](x.md) heading", "the-linked-heading"),
    ],
)
def test_anchors_follow_githubs_slugs(heading: str, slug: str) -> None:
    assert slugify(heading) == slug
