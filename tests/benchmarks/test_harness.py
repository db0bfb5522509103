"""benchmarks/_harness.py: interleaving, medians, child processes, peers, the results file.

Tiny workloads only, and no assertion about how fast anything is.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness
import pytest

BENCHMARKS = Path(_harness.__file__).resolve().parent


def test_every_configuration_runs_once_per_round_in_a_rotating_order() -> None:
    plan = list(_harness.interleave(["a", "b", "c"], 4))
    assert plan == [
        (0, "a"), (0, "b"), (0, "c"),
        (1, "b"), (1, "c"), (1, "a"),
        (2, "c"), (2, "a"), (2, "b"),
        (3, "a"), (3, "b"), (3, "c"),
    ]  # fmt: skip


def test_interleave_of_nothing_or_no_rounds_is_empty() -> None:
    assert list(_harness.interleave([], 3)) == []
    assert list(_harness.interleave(["a"], 0)) == []


def test_summary_is_the_median_and_the_range() -> None:
    odd = _harness.summarize([5.0, 1.0, 3.0])
    assert (odd.median, odd.low, odd.high, odd.count) == (3.0, 1.0, 5.0, 3)
    even = _harness.summarize([4.0, 1.0, 2.0, 10.0])
    assert (even.median, even.low, even.high) == (3.0, 1.0, 10.0)
    with pytest.raises(_harness.BenchmarkError):
        _harness.summarize([])


def test_a_paired_ratio_compares_each_round_within_itself() -> None:
    # The machine got twice as slow halfway: every round's ratio is still 0.9, while the
    # medians over all rounds would compare a slow round with a fast one.
    base = [1.0, 1.0, 2.0, 2.0, 2.0]
    other = [b / 0.9 for b in base]
    assert _harness.paired_ratio(base, other) == pytest.approx(0.9)
    assert _harness.paired_ratio([1.0, 3.0, 2.0], [2.0, 3.0, 1.0]) == 1.0
    with pytest.raises(_harness.BenchmarkError):
        _harness.paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(_harness.BenchmarkError):
        _harness.paired_ratio([], [])


def test_a_child_returns_its_last_json_line_with_its_times() -> None:
    code = "print('warming up'); print('{\"answer\": 42}')"
    result = _harness.run_child([sys.executable, "-c", code])
    assert result["answer"] == 42
    assert result["wall_child"] > 0
    assert result["cpu_child"] >= 0


def test_a_failing_child_is_one_clear_error_with_its_stderr() -> None:
    code = "import sys; sys.stderr.write('the workload broke\\n'); sys.exit(3)"
    with pytest.raises(_harness.BenchmarkError, match="exited 3") as caught:
        _harness.run_child([sys.executable, "-c", code])
    assert "the workload broke" in str(caught.value)
    with pytest.raises(_harness.BenchmarkError, match="no JSON"):
        _harness.run_child([sys.executable, "-c", "print('not json')"])


def test_requirements_key_ignores_order_and_tells_pins_apart() -> None:
    key = _harness.requirements_key
    assert key(["a==1", "b==2"]) == key(["b==2", "a==1"])
    assert key(["a==1"]) != key(["a==2"])
    assert key([]) != key(["a==1"])


def test_the_peers_environment_is_reused_while_its_requirements_do_not_change(
    tmp_path: Path,
) -> None:
    first = _harness.peer_env([], base=tmp_path)
    assert first.python.exists()
    assert first.root.parent == tmp_path
    assert Path(sys.prefix).resolve() != first.root.resolve()  # never the active environment
    left_behind = first.root / "left-by-the-first-run"
    left_behind.write_text("kept")
    again = _harness.peer_env([], base=tmp_path)
    assert again.root == first.root
    assert left_behind.read_text() == "kept"  # reused, not rebuilt


def test_a_half_built_peers_environment_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / f"loopwise-bench-peers-{_harness.requirements_key([])}"
    root.mkdir()
    (root / "debris").write_text("from an interrupted run")
    env = _harness.peer_env([], base=tmp_path)
    assert env.root == root
    assert not (root / "debris").exists()
    assert env.python.exists()


def test_a_child_sees_the_peers_after_its_own_packages(tmp_path: Path) -> None:
    env = _harness.peer_env([], base=tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import _harness; "
        "before = list(sys.path); _harness.use_peers(); print(sys.path[len(before):])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env.child_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(env.site_packages())


def test_results_file_has_the_machine_and_every_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_harness, "RESULTS_DIR", tmp_path)
    results = _harness.Results("tiny", {"rounds": 2}, note="loaded")
    for round_no, name in _harness.interleave(["x", "y"], 2):
        results.add(round_no, {"name": name}, wall=1.0 + round_no, cpu=0.5)
    results.summary["rows"] = [{"name": "x", "wall": 1.5}]
    written = results.write("")  # --json without a path
    assert written == tmp_path / "tiny.json"
    document = _harness.load(written)
    assert document["schema"] == _harness.SCHEMA
    assert document["benchmark"] == "tiny"
    machine = document["machine"]
    assert machine["note"] == "loaded"
    assert machine["cores"] >= 1
    assert machine["python"].endswith(platform.python_version())
    assert set(machine["packages"]) >= {"loopwise", "aiohttp"}
    assert len(machine["load_average"]) == 3
    assert [(r["round"], r["name"]) for r in document["rounds"]] == [
        (0, "x"), (0, "y"), (1, "y"), (1, "x"),
    ]  # fmt: skip
    assert results.values("wall", name="x") == [1.0, 2.0]
    assert results.write(None) is None


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("machine"),
        lambda d: d["machine"].pop("load_average"),
        lambda d: d.update(schema=99),
        lambda d: d["rounds"].append({"no": "round"}),
        lambda d: d.update(summary={"rows": "not a list"}),
    ],
)
def test_a_results_file_of_the_wrong_shape_is_refused(
    breakage: Callable[[dict[str, Any]], object],
) -> None:
    results = _harness.Results("tiny", {})
    results.add(0, {"name": "x"}, wall=1.0)
    document = json.loads(json.dumps(results.document()))
    _harness.check_document(document)
    breakage(document)
    with pytest.raises(_harness.BenchmarkError):
        _harness.check_document(document)


def test_the_command_keeps_the_options_but_not_where_results_went() -> None:
    line = _harness.command_line(
        "patterns", ["--rounds", "3", "--json", "out/p.json", "--note", "busy", "--quick"]
    )
    assert line == "python benchmarks/patterns.py --rounds 3 --json --quick"
    assert _harness.command_line("x", ["--json", "--note=a", "--rounds", "1"]) == (
        "python benchmarks/x.py --json --rounds 1"
    )


def test_a_benchmark_script_writes_its_rounds_with_json(tmp_path: Path) -> None:
    """doctor_overhead, tiny: two modes, one workload, two rounds, peers env in tmp_path."""
    out = tmp_path / "doctor.json"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, str(BENCHMARKS / "doctor_overhead.py"), "--rounds", "2"]
    command += ["--modes", "plain,doctor", "--workloads", "pingpong", "--messages", "2"]
    command += ["--json", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    document = _harness.load(out)
    assert [(r["round"], r["mode"]) for r in document["rounds"]] == [
        (0, "plain"), (0, "doctor"), (1, "doctor"), (1, "plain"),
    ]  # fmt: skip
    assert {row["mode"] for row in document["summary"]["modes"]} == {"plain", "doctor"}
    assert list(tmp_path.glob("loopwise-bench-peers-*"))  # its (empty) peers env, not ours
