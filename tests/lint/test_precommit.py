"""The pre-commit hook of docs/check.md works as written.

pre-commit is not a dependency of the project, so its schema rules for a hook are restated
here (required keys, the known keys, a known language, `types` tags) and the hook's `entry` is
run the way pre-commit runs it: the command with the staged file names appended, in the
repository's root. (The block was also checked by hand with `pre-commit validate-config` and
`pre-commit run --all-files`, for both `language: system` and `language: python`.)
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "check.md"
BAD = "import asyncio\n\nasync def work():\n    pass\n\nasync def main():\n    work()\n"

# pre-commit's hook schema (pre_commit/clientlib.py, MANIFEST_HOOK_DICT and the local-hook
# rules): these keys exist, these four are required for a `repo: local` hook.
_HOOK_KEYS = {
    "id", "name", "entry", "language", "alias", "files", "exclude", "types", "types_or",
    "exclude_types", "additional_dependencies", "args", "always_run", "fail_fast",
    "pass_filenames", "description", "language_version", "log_file", "minimum_pre_commit_version",
    "require_serial", "stages", "verbose",
}  # fmt: skip
_REQUIRED = {"id", "name", "entry", "language"}
_LANGUAGES = {"conda", "coursier", "dart", "docker", "docker_image", "dotnet", "fail", "golang",
              "haskell", "julia", "lua", "node", "perl", "pygrep", "python", "r", "ruby", "rust",
              "swift", "unsupported", "unsupported_script", "system", "script"}  # fmt: skip


def _hook_block() -> str:
    match = re.search(r"## pre-commit\n.*?```yaml\n(?P<body>.*?)```", DOCS.read_text(), re.S)
    assert match, "docs/check.md has no pre-commit yaml block"
    return match.group("body")


def _parse(block: str) -> tuple[str, dict[str, object]]:
    """The repo and the one hook of the block (the subset of YAML the block uses)."""
    lines = block.splitlines()
    assert lines[0] == "repos:"
    assert lines[1].strip() == "- repo: local"
    assert lines[2].strip() == "hooks:"
    hook: dict[str, object] = {}
    for line in lines[3:]:
        key, _, value = line.strip().removeprefix("- ").partition(": ")
        if value.startswith("["):
            hook[key] = [item.strip().strip('"') for item in value.strip("[]").split(",")]
        elif value in ("true", "false"):
            hook[key] = value == "true"
        else:
            hook[key] = value
    return "local", hook


def test_the_hook_follows_pre_commits_schema() -> None:
    repo, hook = _parse(_hook_block())
    assert repo == "local"
    assert _REQUIRED <= set(hook) <= _HOOK_KEYS
    assert hook["language"] in _LANGUAGES
    assert hook["types"] == ["python"]
    assert str(hook["entry"]).split()[:2] == ["loopwise", "check"]


def _run_entry(entry: str, files: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loopwise.cli", *shlex.split(entry)[1:], *files]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_hooks_entry_fails_on_a_finding_and_passes_excluded_files(tmp_path: Path) -> None:
    _, hook = _parse(_hook_block())
    entry = str(hook["entry"])
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text("x = 1\n")
    failed = _run_entry(entry, ["bad.py", "good.py"], tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert "bad.py:7:5: LW001" in failed.stdout
    assert _run_entry(entry, ["good.py"], tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text('[tool.loopwise]\nexclude = ["bad.py"]\n')
    excluded = _run_entry(entry, ["bad.py"], tmp_path)
    assert excluded.returncode == 0, excluded.stderr
    assert not (tmp_path / ".loopwise_cache").exists()
