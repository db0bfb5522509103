"""The docs' runnable blocks run once per session, in parallel, through the reference runner."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from tests.docs._api import serving_api
from tests.reference._blocks import Block
from tests.reference.conftest import Outcome, run_all


def runs_in_outcomes(block: Block) -> bool:
    """A plain or client program (fragments are only checked; servers run on their own)."""
    return block.directive in (None, "client") and sys.version_info >= block.required_python


def _selected(session: pytest.Session) -> list[Block]:
    blocks: list[Block] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        block = callspec.params.get("doc_block") if callspec is not None else None
        if isinstance(block, Block) and runs_in_outcomes(block):
            blocks.append(block)
    return blocks


@pytest.fixture(scope="session")
def doc_outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """The outcome of every selected program block; client blocks talk to a local API."""
    with serving_api() as origin:
        blocks = [
            dataclasses.replace(block, code=block.code.replace(block.directive_value, origin))
            if block.directive == "client" and block.directive_value
            else block
            for block in _selected(request.session)
        ]
        return run_all(blocks, tmp_path_factory.mktemp("doc-blocks"))
