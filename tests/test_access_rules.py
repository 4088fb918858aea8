"""Who may list requests and forms, and that a user-group membership is read afresh on every decision."""

from __future__ import annotations

from pathlib import Path

from bot.permissions import SlackAudience
from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, DPO_GROUP, MALLORY, sandbox
from tests.helpers import test_tuning
from tests.helpers.slack import CountingGroups
from tests.requests.helpers import click, file_request, verify_identity


async def test_group_membership_is_read_on_every_check() -> None:
    slack = CountingGroups({"S0DPO": ["U0CAROL"]})
    audience = SlackAudience(["U0BOB", "S0DPO"], slack)  # type: ignore[arg-type]
    assert await audience.includes("U0CAROL")
    slack.members["S0DPO"] = []  # Carol leaves the group
    assert not await audience.includes("U0CAROL")  # at once: no cache window
    assert await audience.includes("U0BOB") and slack.calls == 2  # a listed user costs no call


async def test_only_requesters_and_approvers_list_and_a_removed_approver_decides_nothing(
    db_url: str, tmp_path: Path
) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       privacy_requesters=[ALICE.id]) as box:
        for text in ("requests", "status 1", "forms"):
            refused = await box.command(MALLORY, text)
            assert "Only privacy requesters and approvers may use" in refused.text, text
        assert "No open data-subject requests" in (await box.command(ALICE, "requests")).text
        assert "No open data-subject requests" in (await box.command(CAROL, "requests")).text  # via S0DPO

        message = await file_request(box, BOB, "dsar jane.group@example.com")
        await verify_identity(box, CAROL, message)  # Carol approves through the S0DPO user group...
        box.slack.add_usergroup(DPO_GROUP, [])  # ...until she is taken out of it
        await click(box, CAROL, message, RequestButton.APPROVE)
        answers = await box.slack.wait_for_response(where=lambda r: "Only privacy approvers" in r.text)
        assert answers[-1].response_type == "ephemeral"
        assert "Approved by" not in str(message.blocks)
        assert "Only privacy approvers may use `/privacy requests`" not in (await box.command(CAROL, "requests")).text
        await box.jobs_idle()
