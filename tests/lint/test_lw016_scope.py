"""LW016 (threading lock across await) stays quiet in test code, like the other rules that
judge how code runs rather than whether it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.lint import check

LOCK_ACROSS_AWAIT = """\
import asyncio
import threading

lock = threading.Lock()


async def work():
    with lock:
        await asyncio.sleep(0.01)
"""


def test_reported_in_application_code_and_not_in_a_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for relative in ("app/work.py", "tests/test_work.py"):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(LOCK_ACROSS_AWAIT)
    result = check(["."], select=["LW016"])
    assert {finding.path for finding in result.findings} == {"app/work.py"}
