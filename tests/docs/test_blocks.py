"""Every ```python block of README.md and docs/*.md runs as written, or is a marked fragment.

A block is a complete program unless an HTML comment right before its fence says otherwise
(see ``tests/reference/_blocks.py``): ``<!-- fragment -->`` blocks are compiled (``await`` at
the top level allowed) and checked; ``<!-- client: ORIGIN -->`` programs run against a local
aiohttp server; ``<!-- server -->`` programs are served, asked for a page and stopped.
Every block is clean under ``loopwise check`` unless its ``# expect-check:`` marker names the
codes a deliberate bad example reports. The rule pages (docs/rules) are generated from the
rules' docstrings; their blocks are checked by ``test_rule_page_blocks``.
"""

from __future__ import annotations

import ast
import json
import re
import select
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loopwise.lint import RULES, check_source
from tests.docs.conftest import runs_in_outcomes
from tests.reference._blocks import ROOT, Block, doc_files, parse
from tests.reference.conftest import RUNNER, Outcome, block_env
from tests.reference.test_blocks import SYMPTOMS, _assert_doctor, _assert_error

BLOCKS = [block for path in doc_files() for block in parse(path.read_text("utf-8"), path)]
RULE_PAGES = sorted((ROOT / "docs" / "rules").glob("LW*.md"))


def test_ids_are_unique_and_every_kind_is_used() -> None:
    assert len({block.id for block in BLOCKS}) == len(BLOCKS)
    assert {block.directive for block in BLOCKS} == {None, "fragment", "client", "server", "redis"}


def _codes(block: Block) -> set[str]:
    return {f.code for f in check_source(block.code, path=block.path.name)}


@pytest.mark.parametrize("doc_block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block(doc_block: Block, doc_outcomes: dict[str, Outcome]) -> None:
    block = doc_block
    assert _codes(block) == block.check_codes, "loopwise check reports on a block"
    if block.fragment:
        compile(block.code, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    # A program compiles as a module: no `await` outside a function.
    compile(block.code, str(block.path), "exec")
    if not runs_in_outcomes(block):
        return  # a server (test_server_block), or a block for a later Python
    outcome = doc_outcomes[block.id]
    _assert_error(block, outcome)
    for text in block.marker("expect-stdout"):
        assert text in outcome.stdout, f"{text!r} not in the block's stdout:\n{outcome.stdout}"
    _assert_doctor(block, outcome)
    if not block.marker("expect-error"):
        for symptom in SYMPTOMS:
            assert symptom not in outcome.stderr, outcome.stderr[-3000:]


SERVERS = [block for block in BLOCKS if block.directive == "server"]


@pytest.mark.parametrize("server_block", SERVERS, ids=[block.id for block in SERVERS])
def test_server_block(server_block: Block, tmp_path: Path) -> None:
    """The server serves at the address it prints, and SIGTERM ends it with status 0."""
    block = server_block
    assert re.search(r"\b8080\b", block.code), "a server block serves on 8080"
    result_file = tmp_path / "result.json"
    spec = {
        "code": re.sub(r"\b8080\b", "0", block.code),
        "filename": str(block.path),
        "first_line": block.first_line,
        "threshold_ms": 100.0,
        "result": str(result_file),
    }
    process = subprocess.Popen(
        [sys.executable, str(RUNNER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**block_env(), "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the server printed nothing within 30 s"
        line = process.stdout.readline()  # the runner exits (EOF) if the block fails to start
        url = re.search(r"serving on (http://\S+)", line)
        assert url, f"no address printed: {line!r}"
        try:
            with urllib.request.urlopen(url.group(1) + "/", timeout=20) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status < 500
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert result["error"] is None, stderr[-3000:]
    unexpected = {event["kind"] for event in result["events"]} - {"blocked"}
    assert not unexpected, result["events"]
    for symptom in SYMPTOMS:
        assert symptom not in stderr, stderr[-3000:]


def _rule_blocks() -> list[tuple[Path, str, Block]]:
    found = []
    for page in RULE_PAGES:
        text = page.read_text("utf-8")
        for block in parse(text, page):
            heading = [line for line in text.splitlines()[: block.fence_line] if line[:4] == "### "]
            found.append((page, heading[-1][4:] if heading else "", block))
    return found


RULE_BLOCKS = _rule_blocks()


@pytest.mark.parametrize(
    "page, section, rule_block", RULE_BLOCKS, ids=[b.id for _, _, b in RULE_BLOCKS]
)
def test_rule_page_blocks(page: Path, section: str, rule_block: Block) -> None:
    """A rule page's blocks compile; its "Example" is reported by its rule, "Use instead" is not.

    They are generated from the rule's docstring, so they carry no marker: the page's
    sections say what they are (a bad "Example", its fix under "Use instead").
    """
    code = page.stem
    source = textwrap.dedent(rule_block.code)  # a method on its own is indented
    compile(source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    every = [rule.code for rule in RULES]
    findings = check_source(source, path=page.name, select=every)
    if section == "Use instead":
        assert code not in {f.code for f in findings}, findings
    elif section == "Example":
        assert code in {f.code for f in findings}, (
            f"the rule's own example is not flagged: {source}"
        )
