"""Socket Mode end to end: the real service connects out to the Slack stand-in's Socket Mode peer, and
commands, clicks and modal submissions arrive as envelopes, with no HTTP route for Slack at all. A dropped
connection loses no envelope and handles none twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Tuning
from bot.requests.ids import RequestButton
from bot.settings import ConfigError, load_settings
from sandbox.harness import ALICE, BOB, PRIVACY_CHANNEL, Sandbox, sandbox
from sandbox.slack import SANDBOX_APP_TOKEN
from storage.requests import PrivacyRequest
from tests.helpers import rows, test_tuning
from tests.requests.helpers import file_request, open_modal, submit_reason, verify_identity, wait_state


@pytest.fixture
async def socket_box(db_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    from dataclasses import replace

    tuning: Tuning = replace(test_tuning(), socket_ping_interval=0.2)
    async with sandbox(db_url, tuning=tuning, export_dir=tmp_path / "exports",
                       slack_app_token=SANDBOX_APP_TOKEN) as box:
        await box.slack.socket_mode.wait_connected()
        yield box


async def test_commands_clicks_and_modals_over_socket_mode_with_no_http_slack_route(socket_box: Sandbox) -> None:
    box = socket_box
    async with box.http.post(f"{box.url}/slack/events", data=b"command=%2Fprivacy") as response:
        assert response.status == 404  # not routed: Slack reaches the bot only over its own socket
    opened = box.slack.calls_to("apps.connections.open")
    assert [c.response["ok"] for c in opened if c.response] == [True]
    assert opened[0].headers["Authorization"] == f"Bearer {SANDBOX_APP_TOKEN}"  # the app token, not the bot's

    box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "erase jane@example.com")  # the command's answer is the ack
    await verify_identity(box, BOB, message)  # a click, then the identity modal's submission
    view = await open_modal(box, BOB, message, RequestButton.REJECT)
    result = await submit_reason(box, BOB, view, " ")
    assert result.json["response_action"] == "errors"  # a view submission's answer rides on the ack too
    await submit_reason(box, BOB, view, "Not the data subject")
    row = await wait_state(box, message, "rejected")
    assert row.reject_reason == "Not the data subject"
    # Events come over the socket too: opening the Home tab publishes the dashboard.
    await box.user.event({"type": "app_home_opened", "user": BOB.id, "channel": "D0BOB", "tab": "home"})
    # A rejected request stays open until the answer went out (issue 10), so the Home tab lists it.
    await box.slack.wait_until(lambda: f"#{row.id}" in box.slack.home_tabs.text(BOB.id), timeout=10,
                               describe="Bob's Home tab")
    peer = box.slack.socket_mode
    assert {e.type for e in peer.envelopes.values()} == {"slash_commands", "interactive", "events_api"}
    assert all(e.acked.is_set() and len(e.deliveries) == 1 for e in peer.envelopes.values())


async def test_a_dropped_socket_loses_no_envelope_and_handles_none_twice(socket_box: Sandbox) -> None:
    box, peer = socket_box, socket_box.slack.socket_mode

    # The connection is cut right after the command goes out: the bot handles it, its ack cannot get
    # through on that socket, so Slack sends the envelope again on the next connection.
    peer.drop_after_next_send()
    result = await box.command(ALICE, "dsar jane@example.com")
    assert result.status == 200
    (envelope,) = peer.envelopes.values()
    await peer.wait_connected(opened=2)
    await box.slack.wait_until(lambda: len(box.slack.messages(PRIVACY_CHANNEL)) == 1, timeout=10,
                               describe="the request message")
    await box.jobs_idle()
    if len(envelope.deliveries) == 2:  # redelivered (its first ack was lost): the copy was only acknowledged
        assert envelope.deliveries[0] != envelope.deliveries[1]
    assert len(await rows(box, PrivacyRequest)) == 1  # handled once
    assert len(box.slack.messages(PRIVACY_CHANNEL)) == 1

    # Slack recycles the connection (disconnect frame), and then the socket drops outright; a command sent
    # meanwhile waits for the next connection, and nothing is lost.
    await peer.request_refresh()
    await peer.wait_connected(opened=3)
    await peer.drop()
    later = await box.command(ALICE, "dsar joe@example.com")
    assert "Filed" in later.text
    await peer.wait_connected(opened=4)
    await box.jobs_idle()
    filed = await rows(box, PrivacyRequest)
    assert sorted(r.subject_masked for r in filed) == ["j***@example.com", "j***@example.com"]
    assert len(filed) == 2
    assert all(e.acked.is_set() for e in peer.envelopes.values())


async def test_a_redelivered_copy_is_acknowledged_but_not_handled(socket_box: Sandbox) -> None:
    """Slack's retry of an envelope the bot did handle (same envelope id, retry_attempt 1): acked, not run."""
    box, peer = socket_box, socket_box.slack.socket_mode
    first = await box.command(ALICE, "dsar jane@example.com")
    assert "Filed" in first.text
    (envelope,) = peer.envelopes.values()
    envelope.acked.clear()
    envelope.ack = None
    peer._waiting.append(envelope)
    await peer._flush()
    await envelope.acked.wait()
    assert envelope.ack == {"envelope_id": envelope.envelope_id}  # an empty ack: nothing handled again
    assert len(envelope.deliveries) == 2
    await box.jobs_idle()
    assert len(await rows(box, PrivacyRequest)) == 1


async def test_the_app_token_must_be_an_app_level_token(db_url: str) -> None:
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        load_settings(_env_file=None, slack_app_token="xoxb-123")


async def test_a_bot_token_cannot_open_a_socket(socket_box: Sandbox) -> None:
    async with socket_box.http.post(f"{socket_box.slack.api_url}apps.connections.open",
                                    headers={"Authorization": f"Bearer {socket_box.slack.token}"}) as response:
        assert (await response.json()) == {"ok": False, "error": "not_allowed_token_type"}
