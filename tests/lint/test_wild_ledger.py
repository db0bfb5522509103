"""The ledger of findings from public code outside the ecosystem set is well formed."""

from __future__ import annotations

import json
from pathlib import Path

from loopwise.lint import RULES

LEDGER = Path(__file__).parents[2] / "benchmarks" / "ecosystem" / "wild.jsonl"
FIELDS = {"repo", "path", "commit", "index_id", "line", "function", "code", "label"}


def test_every_entry_names_its_place_code_label_and_reason() -> None:
    codes = {rule.code for rule in RULES}
    entries = [json.loads(line) for line in LEDGER.read_text().splitlines() if line.strip()]
    assert entries
    for entry in entries:
        assert entry.keys() >= FIELDS, entry
        assert entry["code"] in codes, entry
        assert entry["label"] in {"true", "false", "noise"}, entry
        assert entry["after_fix"] in {"kept", "gone"}, entry
        assert entry["reason"].strip() and entry["how_found"].strip(), entry
        # Either a dated file and a line, or an index copy and the flagged function.
        assert (entry["commit"] and entry["line"]) or (entry["index_id"] and entry["function"])
