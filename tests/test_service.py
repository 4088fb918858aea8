"""The service over real HTTP: signed Slack requests, refusals of bad input, /privacy help,
the channel rule, the health check — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import make_url

from sandbox.harness import ALICE, MALLORY, OTHER_CHANNEL, Sandbox, sandbox
from sandbox.mautic import form_submission_event
from sandbox.slack import sign_slack_request
from tests.helpers import test_tuning


def _command_form(box: Sandbox, text: str, *, channel: str | None = None) -> str:
    return urlencode({
        "command": "/privacy", "text": text, "team_id": "T0001", "user_id": ALICE.id,
        "channel_id": channel or box.channel, "response_url": box.slack.response_url(),
        "trigger_id": box.slack.trigger_id(ALICE.id), "api_app_id": "A0PRIVACY",
    })


def _answer(result) -> str:  # type: ignore[no-untyped-def]
    """What Slack shows the user for an ack: plain text, or the text of a JSON message body."""
    return str(result.json["text"]) if result.json else str(result.text)


def _secret(box: Sandbox) -> str:
    assert box.settings.slack_signing_secret is not None
    return box.settings.slack_signing_secret.get_secret_value()


async def test_help_lists_subcommands_with_examples(box: Sandbox) -> None:
    for text in ("help", "", "  HELP  "):
        result = await box.command(ALICE, text)
        assert result.status == 200
        assert "Privacy bot commands" in _answer(result)
        assert "/privacy help" in _answer(result)
    # Every sub-command a feature registered appears with its usage and an example.
    from handlers.slack import digests, intake, requests

    # Usages carry placeholders (<email>) that go out escaped; the user sees them as typed.
    for sub in [*requests.SUBCOMMANDS, *intake.SUBCOMMANDS, *digests.SUBCOMMANDS]:
        assert f"/privacy {sub.usage}" in result.rendered
        assert sub.example in result.rendered


async def test_unknown_subcommand_answers_with_help(box: Sandbox) -> None:
    result = await box.command(ALICE, "dsr jane@example.com")
    assert result.status == 200
    assert "I don't know `/privacy dsr`" in _answer(result)
    assert "Privacy bot commands" in _answer(result)
    assert box.slack.messages(box.channel) == []  # nothing was posted to the channel


async def test_commands_outside_the_privacy_channel_are_refused(box: Sandbox) -> None:
    result = await box.command(MALLORY, "help", channel=OTHER_CHANNEL)
    assert result.status == 200
    assert f"works only in <#{box.channel}>" in _answer(result)


async def test_the_word_payload_in_a_command_is_not_lost(box: Sandbox) -> None:
    # bolt-python parses any form body containing "payload" as an interaction and drops it
    # (slack_bolt.request.internals.parse_body); without the workaround this is a 404 "unhandled request".
    result = await box.command(ALICE, "payload check")
    assert result.status == 200
    assert "I don't know `/privacy payload`" in _answer(result)


async def test_signer_matches_slack_sdk(box: Sandbox) -> None:
    body = _command_form(box, "help")
    headers = sign_slack_request(body, _secret(box), timestamp=1_700_000_000)
    expected = SignatureVerifier(_secret(box)).generate_signature(timestamp="1700000000", body=body)
    assert headers["X-Slack-Signature"] == expected


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "tampered body", "no headers", "stale timestamp", "future timestamp"],
)
async def test_badly_signed_slack_requests_get_401(box: Sandbox, tamper: str) -> None:
    body = _command_form(box, "help")
    now = int(time.time())
    headers = {
        "wrong secret": sign_slack_request(body, "not-the-secret"),
        "tampered body": sign_slack_request(body.replace("help", "erase"), _secret(box)),
        "no headers": {},
        "stale timestamp": sign_slack_request(body, _secret(box), timestamp=now - 301),
        "future timestamp": sign_slack_request(body, _secret(box), timestamp=now + 301),
    }[tamper]
    result = await box.user.post_raw(body, headers=headers)
    assert result.status == 401
    assert box.slack.calls_to("auth.test") == []  # refused before any work


async def test_oversized_slack_body_gets_413(box: Sandbox) -> None:
    body = _command_form(box, "help " + "x" * (box.settings.slack_max_bytes + 10))
    result = await box.user.post_raw(body, headers=sign_slack_request(body, _secret(box)))
    assert result.status == 413


async def test_oversized_webhook_body_gets_413(box: Sandbox) -> None:
    body = b'{"mautic.form_on_submit": [' + b" " * box.settings.webhook_max_bytes + b"]}"
    status, _ = await box.webhook(body)
    assert status == 413


async def test_unknown_routes_get_404(box: Sandbox) -> None:
    for method, path in (("GET", "/nope"), ("POST", "/slack/other"), ("GET", "/slack/events")):
        async with box.http.request(method, f"{box.url}{path}") as response:
            assert response.status in (404, 405)
            if path != "/slack/events":
                assert response.status == 404


async def test_url_verification_handshake(box: Sandbox) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    result = await box.user.post_raw(body, "application/json", headers=sign_slack_request(body, _secret(box)))
    assert result.status == 200
    assert json.loads(result.text) == {"challenge": "c-123"}


async def test_healthz_reports_the_database(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    async with box.http.get(f"{box.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": "ok"}
    # Point the health check at a database that cannot answer: it must say so.
    import handlers.health
    from storage.db import make_engine, ping

    dead = make_engine("postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(handlers.health, "ping", lambda _engine: ping(dead))
    try:
        # Webhook deliveries still have a place to go (the local spool): degraded, not down.
        async with box.http.get(f"{box.url}/healthz") as response:
            assert response.status == 200
            health = await response.json()
            assert (health["status"], health["database"]) == ("degraded", "down")
            assert "spool" in health["reason"]
        # Once they have not (the spool is full), this instance is of no use to Mautic: 503.
        from handlers.appkeys import INTAKE

        monkeypatch.setattr(box.app[INTAKE], "spool_has_room", lambda: False)
        async with box.http.get(f"{box.url}/healthz") as response:
            assert response.status == 503
            assert (await response.json())["database"] == "down"
    finally:
        await dead.dispose()


async def test_healthz_counts_a_fresh_webhook_commit_as_the_database_answering(
        box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.health

    async def no_ping(_engine: object) -> None:
        raise ConnectionRefusedError("pinged")

    monkeypatch.setattr(handlers.health, "ping", no_ping)
    assert (await box.webhook(form_submission_event(contact_id=1, email="a@example.com",
                                                         results={"email": "a@example.com"})))[0] == 200
    async with box.http.get(f"{box.url}/healthz") as response:  # the commit just now answered for the database
        assert await response.json() == {"status": "ok", "database": "ok"}
    monkeypatch.setattr(handlers.health, "FRESH_COMMIT_SECONDS", 0.0)  # too old now: it pings, and that fails
    async with box.http.get(f"{box.url}/healthz") as response:
        assert (await response.json())["database"] == "down"


async def test_healthz_on_sqlite_does_not_queue_behind_a_writer(sqlite_url: str, tmp_path: Path) -> None:
    # Every SQLite transaction here begins IMMEDIATE (the write lock). A health check run as one waited
    # in SQLite's busy handler behind each writer (healthz p99 ~1 s under load); it must only read.
    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "e") as box:
        database = make_url(sqlite_url).database
        assert database is not None
        writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        try:
            # Another process holds the write lock meanwhile (taken off the loop: the bot may be writing).
            await asyncio.to_thread(writer.execute, "BEGIN IMMEDIATE")
            async with box.http.get(f"{box.url}/healthz") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok", "database": "ok"}  # not "degraded" after 2 s
        finally:
            writer.execute("ROLLBACK")
            writer.close()


async def test_requesters_setting_is_respected_by_permissions(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with sandbox(sqlite_url, tuning=test_tuning(), privacy_requesters=[ALICE.id],
                       export_dir=tmp_path / "e") as box:
        permissions = box.services.permissions
        assert await permissions.may_file(ALICE.id)
        assert not await permissions.may_file(MALLORY.id)
        assert await permissions.is_approver("U0BOB")
        assert await permissions.is_approver("U0CAROL")  # through the S0DPO user group
        assert not await permissions.is_approver(ALICE.id)
        before = len(box.slack.calls_to("usergroups.users.list"))
        assert await permissions.is_approver("U0CAROL")
        # Read afresh on every check (no cache window for someone taken out of the group, issue 9).
        assert len(box.slack.calls_to("usergroups.users.list")) == before + 1


async def test_an_unexpected_listener_error_becomes_an_ephemeral_answer_with_a_reference(box: Sandbox) -> None:
    from handlers.appkeys import BOLT

    async def explode(ack, body) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")  # before ack: the one error handler must answer

    box.app[BOLT].action("test_explode")(explode)
    posted = await box.services.slack.chat_postMessage(
        channel=box.channel, text="test",
        blocks=[{"type": "actions", "block_id": "b", "elements": [
            {"type": "button", "action_id": "test_explode", "value": "1",
             "text": {"type": "plain_text", "text": "Boom"}}]}],
    )
    result = await box.user.click(MALLORY.id, box.slack.message(box.channel, posted["ts"]), "test_explode")
    assert result.status == 200  # no Slack error banner on top of our answer
    [answer] = await box.slack.wait_for_response()
    assert answer.response_type == "ephemeral"
    assert "Something went wrong on my side (ref `" in answer.text
    assert "database went away" not in answer.text  # internals stay in the log
