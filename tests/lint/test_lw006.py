"""LW006 beyond its fixture: messages, positions, and when the outcomes count as read."""

from __future__ import annotations

import pytest

from tests.lint.snippets import check_rule


def test_gather_message_names_the_variable_and_the_fix() -> None:
    [finding] = check_rule(
        """
        import asyncio
        async def main(a, b):
            outcome = await asyncio.gather(a, b, return_exceptions=True)
        """,
        "LW006",
    )
    assert "`outcome`" in finding.message
    assert "isinstance(r, BaseException)" in finding.message
    assert finding.column == 21  # at the gather call


def test_gather_through_wait_for_is_reported_at_the_gather() -> None:
    [finding] = check_rule(
        """
        import asyncio
        async def main(a):
            await asyncio.wait_for(asyncio.gather(a, return_exceptions=True), timeout=1)
        """,
        "LW006",
    )
    assert finding.column == 28


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("close", False),
        ("_aclose", False),
        ("force_close", False),
        ("stopAll", False),
        ("tear_down", False),
        ("asyncTearDown", False),
        ("__aexit__", False),
        ("close_issue", True),
        ("stop_loss_orders", True),
        ("on_stop_command", True),
        ("reclose", True),
    ],
)
def test_gather_in_a_teardown_is_known_by_the_last_word_of_its_name(
    name: str, flagged: bool
) -> None:
    findings = check_rule(
        f"""
        import asyncio
        async def {name}(jobs):
            await asyncio.gather(*jobs, return_exceptions=True)
        """,
        "LW006",
    )
    assert bool(findings) == flagged


def test_gather_partial_of_a_logging_done_callback_accounts_for_the_task() -> None:
    findings = check_rule(
        """
        import asyncio, functools, logging
        def report(name, task):
            if task.exception():
                logging.error("%s failed", name)
        async def main(job, other):
            task = asyncio.create_task(job())
            task.add_done_callback(functools.partial(report, "job"))
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.gather(task, other, return_exceptions=True)
        """,
        "LW006",
    )
    assert [f.line for f in findings] == [10]
