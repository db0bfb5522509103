"""benchmarks/tables.py: the README and docs tables are the results files, drawn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tables

ROOT = tables.ROOT


def copy_of_the_repository(tmp_path: Path) -> Path:
    """README.md, docs/*.md and benchmarks/results/*.json, copied under tmp_path."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "docs").mkdir()
    for page in (ROOT / "docs").glob("*.md"):
        shutil.copy(page, tmp_path / "docs" / page.name)
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def test_the_tables_agree_with_their_results_files() -> None:
    assert tables.main(["--check"]) == 0


def test_every_marked_table_is_known_and_every_known_table_is_shown() -> None:
    shown = {
        m["name"] for page in tables.pages(ROOT) for m in tables.BLOCK.finditer(page.read_text())
    }
    assert shown == set(tables.TABLES)


def test_a_figure_edited_by_hand_is_caught_and_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of_the_repository(tmp_path)
    readme = root / "README.md"
    original = readme.read_text()
    block = next(m for m in tables.BLOCK.finditer(original) if m["name"] == "client")
    edited_body = block["body"].replace("1.00x", "1.50x", 1)
    assert edited_body != block["body"]
    readme.write_text(original.replace(block["body"], edited_body))
    assert tables.main(["--check", "--root", str(root)]) == 1
    assert "README.md: table 'client' disagrees" in capsys.readouterr().err
    assert tables.main(["--write", "--root", str(root)]) == 0
    assert readme.read_text() == original
    assert tables.main(["--check", "--root", str(root)]) == 0


def test_a_results_file_that_changed_is_caught(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    path = root / "benchmarks" / "results" / "http_client.json"
    document = json.loads(path.read_text())
    document["summary"]["clients"][0]["rate"] *= 2
    path.write_text(json.dumps(document))
    assert tables.main(["--check", "--root", str(root)]) == 1


def test_a_missing_results_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of_the_repository(tmp_path)
    (root / "benchmarks" / "results" / "patterns.json").unlink()
    assert tables.main(["--check", "--root", str(root)]) == 2
    error = capsys.readouterr().err
    assert "patterns.json" in error and "--json" in error
    assert "Traceback" not in error


@pytest.mark.parametrize(
    ("source", "part", "key", "value"),
    [
        ("doctor_overhead", "modes", "mode", "doctor"),
        ("patterns", "map", "contender", "aiometer.amap"),
        ("patterns", "map", "contender", "queue pool"),
    ],
)
def test_a_results_file_missing_a_row_of_its_table_is_an_error_not_a_shorter_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, part: str, key: str, value: str
) -> None:
    """A run whose results lack one of the table's rows (a peer that failed to install, a mode
    that crashed) must not redraw the table without it, and so pass --check afterwards."""
    root = copy_of_the_repository(tmp_path)
    path = root / "benchmarks" / "results" / f"{source}.json"
    document = json.loads(path.read_text())
    rows = document["summary"][part]
    document["summary"][part] = [row for row in rows if row.get(key) != value]
    assert len(document["summary"][part]) < len(rows)
    path.write_text(json.dumps(document))
    assert tables.main(["--write", "--root", str(root)]) == 2
    error = capsys.readouterr().err
    assert value in error and "Traceback" not in error
