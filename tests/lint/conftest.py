"""The editor server's tests share one running server per test, on a workspace with bad.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.lint.server_client import UNAWAITED, Session


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    (tmp_path / "bad.py").write_text(UNAWAITED)
    running = Session(tmp_path)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
