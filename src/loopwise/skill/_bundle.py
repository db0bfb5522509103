"""Building and checking the ``python-async-patterns.skill`` bundle (a zip of Markdown files)."""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from loopwise._exceptions import ConfigError

__all__ = [
    "BUNDLE_FILENAME",
    "SKILL_NAME",
    "SOURCE_FILES",
    "Problem",
    "build_bundle",
    "check_bundle",
    "check_files",
    "default_source",
    "pack",
    "read_bundle",
    "read_sources",
    "strip_test_markers",
]

#: The skill's name: its front matter ``name`` and the top-level directory of the bundle.
SKILL_NAME = "python-async-patterns"
#: The file ``loopwise skill build`` writes.
BUNDLE_FILENAME = f"{SKILL_NAME}.skill"
#: Source file (in the source directory) -> path inside the skill directory of the bundle.
SOURCE_FILES: Mapping[str, str] = {
    "SKILL.md": "SKILL.md",
    "asyncio.md": "references/asyncio.md",
    "aiohttp.md": "references/aiohttp.md",
    "pitfalls.md": "references/pitfalls.md",
}

# Everything that makes a zip differ between two builds of the same sources is fixed here.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold
_ZIP_MODE = 0o100644  # a regular file, rw-r--r--
_ZIP_UNIX = 3  # "made by" Unix, whatever the building system
_ZIP_LEVEL = 9
_MAX_MEMBER_BYTES = 8 * 1024 * 1024  # a skill is a few Markdown files; refuse zip bombs
_MAX_NAME = 64  # the Agent Skills limits for `name` and `description`
_MAX_DESCRIPTION = 1024

_NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CODE_RE = re.compile(r"\bLW\d{3}\b")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE_RE = re.compile(r"(`+).*?\1")
_LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR_RE = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# The comments on the first lines of a ```python block that tell loopwise's own tests how the
# block must fail; a reader of the bundle gets the same facts from the prose around the block.
_TEST_MARKER_RE = re.compile(
    r"^#\s*(?:expect-error|expect-stderr|expect-stdout|expect-doctor|expect-check|run-with):"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle: where (``member``, 1-based ``line`` or 0) and what."""

    member: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.member}:{self.line}" if self.line else self.member
        return f"{where}: {self.message}" if where else self.message


# ---------------------------------------------------------------------------------------------
# Sources and building


def default_source() -> Path:
    """The directory holding SKILL.md and the reference files to bundle.

    The copy packaged with loopwise (``loopwise/skill/references``) when there is one, else the
    ``docs/references`` directory of a source checkout. Raises :class:`ConfigError` when neither
    exists.
    """
    packaged = Path(__file__).resolve().parent / "references"
    checkout = Path(__file__).resolve().parents[3] / "docs" / "references"
    for candidate in (packaged, checkout):
        if (candidate / "SKILL.md").is_file():
            return candidate
    raise ConfigError(
        "cannot find the skill's sources (SKILL.md and the reference files): "
        "pass --source DIR pointing at a directory that holds them"
    )


def read_sources(source: Path) -> dict[str, bytes]:
    """The bundle's members (archive path -> bytes) read from ``source``.

    The files lose their test markers (see :func:`strip_test_markers`); a file that is not
    UTF-8 is kept as it is, for :func:`check_files` to report. Raises :class:`ConfigError`
    naming the first file that is missing or unreadable.
    """
    if not source.is_dir():
        raise ConfigError(f"{source}: not a directory; pass --source DIR holding SKILL.md")
    files: dict[str, bytes] = {}
    for name, target in SOURCE_FILES.items():
        path = source / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        with contextlib.suppress(UnicodeDecodeError):
            data = strip_test_markers(data.decode("utf-8")).encode("utf-8")
        files[f"{SKILL_NAME}/{target}"] = data
    return files


def strip_test_markers(text: str) -> str:
    """``text`` without the test-harness comments that open its ```python blocks.

    Only the leading ``# expect-…:`` and ``# run-with:`` lines of a block are dropped;
    ``# requires-python:`` stays (it tells the reader which Python the block needs), and so
    does every other line, inside or outside a block.
    """
    kept: list[str] = []
    opening = False
    for line in text.splitlines(keepends=True):
        if opening and _TEST_MARKER_RE.match(line):
            continue
        opening = line.rstrip() == "```python" or (
            opening and line.lstrip().startswith("# requires-python:")
        )
        kept.append(line)
    return "".join(kept)


def _ordered(names: Iterable[str]) -> list[str]:
    """SKILL.md first (tools peek at the first member), then the rest by name."""
    return sorted(names, key=lambda name: (not name.endswith("/SKILL.md"), name))


def pack(files: Mapping[str, bytes]) -> bytes:
    """A zip of ``files`` that depends on nothing but their names and contents.

    Members are written in a fixed order with a fixed date (1980-01-01), fixed permissions
    (0644, made by Unix) and fixed compression (deflate, level 9), so the same files always give
    the same bytes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in _ordered(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _ZIP_UNIX
            info.external_attr = _ZIP_MODE << 16
            archive.writestr(info, files[name], compresslevel=_ZIP_LEVEL)
    return buffer.getvalue()


def build_bundle(output_dir: Path, source: Path | None = None) -> tuple[Path, list[Problem]]:
    """Check the sources and, when they are sound, write ``output_dir/python-async-patterns.skill``.

    Returns the bundle's path and the problems found; when there is any problem nothing is
    written. The file is replaced atomically (a temporary file in the same directory, then a
    rename), so a reader never sees half a bundle. ``output_dir`` is created if missing. Raises
    :class:`ConfigError` for unreadable sources or an unusable output directory.
    """
    files = read_sources(source if source is not None else default_source())
    target = output_dir / BUNDLE_FILENAME
    problems = check_files(files)
    if problems:
        return target, problems
    data = pack(files)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{BUNDLE_FILENAME}.", dir=output_dir)
    except OSError as exc:
        raise ConfigError(f"{output_dir}: cannot write there ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, []


# ---------------------------------------------------------------------------------------------
# Reading and checking


def read_bundle(path: Path) -> dict[str, bytes]:
    """The members of the bundle at ``path`` (archive path -> bytes).

    Raises :class:`ConfigError` when the file is missing, is not a zip, or is damaged.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no such file; build one with `loopwise skill build`")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file; pass the .skill file itself")
    try:
        with zipfile.ZipFile(path) as archive:
            files: dict[str, bytes] = {}
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise ConfigError(
                        f"{path}: member {info.filename} is {info.file_size} bytes; "
                        f"a skill file must be under {_MAX_MEMBER_BYTES} bytes"
                    )
                if info.filename in files:
                    raise ConfigError(f"{path}: member {info.filename} appears twice")
                files[info.filename] = archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid zip file ({exc}); rebuild the bundle") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return files


def check_bundle(path: Path, codes: Iterable[str] | None = None) -> list[Problem]:
    """The problems of the bundle at ``path`` (see :func:`check_files`); raises
    :class:`ConfigError` for a missing or corrupt file."""
    return check_files(read_bundle(path), codes)


def check_files(files: Mapping[str, bytes], codes: Iterable[str] | None = None) -> list[Problem]:
    """Everything wrong with a bundle's members, in a stable order; empty when it is sound.

    Checked: one top-level directory holding ``SKILL.md``; member paths that stay inside it;
    UTF-8 Markdown; SKILL.md's front matter (``name`` equal to the directory's name, lower-case
    words joined by hyphens, at most 64 characters; a non-empty ``description`` of at most 1024);
    every relative link in a Markdown file resolves to a member, and its ``#anchor`` to a heading
    of that file; every ``LWnnn`` code mentioned is a rule of ``loopwise check`` (``codes``,
    default: ``loopwise.lint.RULES``).
    """
    known = set(codes) if codes is not None else _rule_codes()
    problems: list[Problem] = []
    roots = {name.split("/", 1)[0] for name in files}
    for name in sorted(files):
        if name.startswith("/") or ".." in name.split("/") or "\\" in name or "/" not in name:
            problems.append(Problem(name, 0, "member path must be inside the skill's directory"))
    if len(roots) != 1:
        listed = ", ".join(sorted(roots)) or "nothing"
        problems.append(
            Problem("", 0, f"the bundle must hold exactly one top-level directory, not {listed}")
        )
        return problems
    root = roots.pop()
    skill_md = f"{root}/SKILL.md"
    texts: dict[str, str] = {}
    for name in sorted(files):
        if not name.endswith(".md"):
            continue
        try:
            texts[name] = files[name].decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
    if skill_md not in files:
        problems.append(Problem(skill_md, 0, "missing: a skill needs a SKILL.md at its top"))
    elif skill_md in texts:
        problems.extend(_check_front_matter(skill_md, texts[skill_md], root))
    anchors = {name: _anchors(text) for name, text in texts.items()}
    for name, text in texts.items():
        problems.extend(_check_links(name, text, files, anchors))
        problems.extend(_check_codes(name, text, known))
    return problems


def _rule_codes() -> set[str]:
    from loopwise.lint import RULES

    return {rule.code for rule in RULES}


def _check_front_matter(member: str, text: str, root: str) -> list[Problem]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return [Problem(member, 1, "no front matter: start the file with a '---' line")]
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return [Problem(member, 1, "front matter is not closed by a '---' line")]
    fields: dict[str, tuple[int, str]] = {}
    problems: list[Problem] = []
    for number in range(1, end):
        line = lines[number]
        if not line.strip() or line.lstrip().startswith("#") or line[:1].isspace():
            continue  # blank, comment, or the continuation of a block value
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            problems.append(Problem(member, number + 1, "front matter line is not 'key: value'"))
            continue
        fields[key.strip()] = (number + 1, _unquote(value.strip()))
    name_line, name = fields.get("name", (1, ""))
    if "name" not in fields:
        problems.append(Problem(member, 1, f"front matter has no 'name' (use name: {root})"))
    elif not _NAME_RE.fullmatch(name) or len(name) > _MAX_NAME:
        problems.append(
            Problem(
                member,
                name_line,
                f"name {name!r} must be lower-case words joined by hyphens, "
                f"at most {_MAX_NAME} characters",
            )
        )
    elif name != root:
        problems.append(
            Problem(member, name_line, f"name {name!r} differs from the directory {root!r}")
        )
    description_line, description = fields.get("description", (1, ""))
    if "description" not in fields:
        problems.append(Problem(member, 1, "front matter has no 'description'"))
    elif not description or description in {">", "|", ">-", "|-"}:
        problems.append(Problem(member, description_line, "description is empty"))
    elif len(description) > _MAX_DESCRIPTION:
        problems.append(
            Problem(
                member,
                description_line,
                f"description is {len(description)} characters; at most {_MAX_DESCRIPTION}",
            )
        )
    return problems


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, line) of the lines outside fenced code blocks and front matter."""
    fence = ""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":
        start = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
    for number, line in enumerate(lines[start:], start + 1):
        match = _FENCE_RE.match(line)
        if match:
            marker = match.group(1)
            if not fence:
                fence = marker
                continue
            if marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip(marker[0]):
                fence = ""
                continue
        if not fence:
            yield number, line


def slugify(heading: str) -> str:
    """The anchor GitHub gives a heading: lower-case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _number, line in _prose_lines(text):
        anchors.update(_HTML_ANCHOR_RE.findall(line))
        match = _HEADING_RE.match(line)
        if not match:
            continue
        slug = slugify(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(line: str) -> Iterator[str]:
    bare = _INLINE_CODE_RE.sub("", line)
    yield from _LINK_RE.findall(bare)
    definition = _REF_DEF_RE.match(bare)
    if definition:
        yield definition.group(1)


def _check_links(
    member: str, text: str, files: Mapping[str, bytes], anchors: Mapping[str, set[str]]
) -> Iterator[Problem]:
    directory = posixpath.dirname(member)
    for number, line in _prose_lines(text):
        for target in _links(line):
            if not target or _SCHEME_RE.match(target) or target.startswith("//"):
                continue  # an external URL: not this check's business
            path, _, anchor = target.partition("#")
            if path.startswith("/"):
                yield Problem(member, number, f"link {target!r} is absolute; make it relative")
                continue
            resolved = posixpath.normpath(posixpath.join(directory, path)) if path else member
            if resolved not in files:
                yield Problem(
                    member, number, f"link {target!r} does not resolve: no {resolved} in the bundle"
                )
            elif anchor and resolved in anchors and anchor not in anchors[resolved]:
                yield Problem(
                    member, number, f"link {target!r}: {resolved} has no heading #{anchor}"
                )


def _check_codes(member: str, text: str, known: set[str]) -> Iterator[Problem]:
    for number, line in enumerate(text.splitlines(), 1):
        for code in _CODE_RE.findall(line):
            if code not in known:
                yield Problem(
                    member, number, f"{code} is not a loopwise check rule (see `loopwise rule`)"
                )
