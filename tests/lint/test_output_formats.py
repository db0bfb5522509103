"""Output formats (gitlab, sarif, junit, full) on paths and files that break naive writers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.lint.test_workflow import BAD, project, run

__all__ = ["project"]  # the fixture, used by name


MUTATED = "def collect(items=[]):\n    items.append(1)\n    return items\n"


def test_gitlab_fingerprints_survive_lines_added_above_and_stay_unique(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GitLab matches a merge request's issues to the target branch's by fingerprint: one that
    # changes when the code above moves shows a fixed and a new issue for the same code. (The
    # LW010 message names the line of the mutation.)
    (project / "bad.py").write_text(BAD + "    work()\n")
    (project / "mutated.py").write_text(MUTATED)
    before = json.loads(run(capsys, "--output-format", "gitlab", ".")[1])
    (project / "bad.py").write_text("import os\n" + BAD + "    work()\n")
    (project / "mutated.py").write_text("import os\n\n" + MUTATED)
    after = json.loads(run(capsys, "--output-format", "gitlab", ".")[1])
    assert len(before) == 3 and len({issue["fingerprint"] for issue in before}) == 3
    assert [i["fingerprint"] for i in before] == [i["fingerprint"] for i in after]
    assert [i["location"]["lines"]["begin"] for i in after] == [8, 9, 3]


def test_sarif_locations_are_uri_references(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = project / "my app" / "100%"
    folder.mkdir(parents=True)
    (folder / "a#b.py").write_text(BAD)
    (project / "bad.py").unlink()
    out = run(capsys, "--output-format", "sarif", ".")[1]
    result = json.loads(out)["runs"][0]["results"][0]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "my%20app/100%25/a%23b.py"


def test_junit_stays_well_formed_with_control_characters_in_a_path(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.py").rename(project / "bad\x01\x1b.py")
    out = run(capsys, "--output-format", "junit", ".")[1]
    root = ElementTree.fromstring(out)
    assert root.find("testsuite/testcase/failure") is not None


def test_full_format_caret_on_the_first_line_of_a_file_with_a_byte_order_mark(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = "import asyncio; asyncio.get_event_loop().run_until_complete(asyncio.sleep(0))"
    (project / "bad.py").write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    out = run(capsys, "--output-format", "full", "--color", "never", "bad.py")[1]
    assert f"1 | {line}\n  | {' ' * 16}^^^^^" in out, out
