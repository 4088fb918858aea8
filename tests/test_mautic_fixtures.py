"""Mautic payloads and answers from tests/fixtures/mautic/ (provenance in its README), replayed.

The webhook samples are Mautic 5's own files; the API answers are RECONSTRUCTED from the controllers
that build them. Each is replayed twice: to the bot's readers or client (does it read Mautic right?) and
against the stand-in (does it answer in the same shape?).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.intake.events import SUBSCRIPTION_CHANGED, contact_of, subscription_change
from bot.mautic import MauticClient, MauticRefused, Where
from sandbox.mautic import FakeMautic, email_send_event, webhook_contact_payload
from tests.helpers import mautic_fixture

AUTH = {"Authorization": aiohttp.encode_basic_auth("api", "secret")}


def fixture_json(name: str) -> Any:
    return json.loads(mautic_fixture(name))


def test_email_on_send_contact_is_the_flat_mailer_row() -> None:
    # EmailBundle/EventListener/WebhookSubscriber.php onEmailSend: 'contact' => $event->getLead()
    (event,) = fixture_json("reconstructed_email_on_send.json")["mautic.email_on_send"]
    assert "fields" not in event["contact"] and event["contact"]["id"] == "26"
    assert contact_of("mautic.email_on_send", event) == (26, "o'brien+news@example.com")
    # the stand-in's builder sends the same shape, whatever contact it is given
    built = email_send_event(contact=webhook_contact_payload(26, "o'brien+news@example.com"))
    (sent,) = built["mautic.email_on_send"]
    assert set(sent["contact"]) <= set(event["contact"]) | {"id", "email", "firstname", "lastname"}
    assert contact_of("mautic.email_on_send", sent) == (26, "o'brien+news@example.com")


def test_upstream_lead_and_email_samples_are_read() -> None:
    # LeadBundle/Assets/WebhookPayload/lead_channel_subscription_changed.json (a list, -06:00 timestamp)
    (change_payload,) = fixture_json("lead_channel_subscription_changed.json")
    assert contact_of(SUBSCRIPTION_CHANGED, change_payload) == (38186, "test@email.com")
    change = subscription_change(change_payload)
    assert (change.channel, change.old_status, change.new_status, change.withdrawn) == (
        "email", "contactable", "manual", True)
    # EmailBundle/Assets/WebhookPayload/email_on_open.json: the address is on the stat, the id on its lead
    assert contact_of("mautic.email_on_open", fixture_json("email_on_open.json")) == (26, "test@test.com")


# ---- API answers, replayed to the client ----------------------------------------------------------


@pytest.fixture
async def replay() -> AsyncIterator[tuple[MauticClient, dict[str, Any]]]:
    """A server that answers each path with the fixture body set for it."""
    bodies: dict[str, Any] = {}

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(bodies[request.path], headers={"Mautic-Version": "5.1.0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        yield MauticClient(http, f"http://127.0.0.1:{port}", username="u", password="p"), bodies
    await runner.cleanup()


async def test_client_reads_a_batch_delete_that_left_an_id_out(replay: tuple[MauticClient, dict[str, Any]]) -> None:
    client, bodies = replay
    bodies["/api/contacts/batch/delete"] = fixture_json("reconstructed_batch_delete_missing_id.json")["body"]
    bodies["/api/contacts"] = fixture_json("reconstructed_stats_responses.json")["empty_list"]["body"]
    result = await client.batch_delete([3, 999])
    assert (result.deleted, result.gone, result.refused) == ([3], [999], {})


@pytest.mark.parametrize(("case", "kind"), [("unknown_table", "stats_table_unavailable"),
                                            ("query_error", "stats_error")])
async def test_client_raises_on_a_200_stats_failure(replay: tuple[MauticClient, dict[str, Any]], case: str,
                                                   kind: str) -> None:
    client, bodies = replay
    bodies["/api/stats/email_stats"] = fixture_json("reconstructed_stats_responses.json")[case]["body"]
    with pytest.raises(MauticRefused) as err:
        await client.get_stats("email_stats", [Where("lead_id", "eq", 3)])
    assert err.value.type == kind


# ---- the stand-in answers in the same shapes ------------------------------------------------------


async def test_stand_in_answers_match_the_fixtures() -> None:
    stats = fixture_json("reconstructed_stats_responses.json")
    batch = fixture_json("reconstructed_batch_delete_missing_id.json")["body"]
    async with FakeMautic() as fake, aiohttp.ClientSession() as http:
        cid = fake.add_contact(email="a@example.com")
        fake.add_email_stat(cid)
        base = fake.base_url
        async with http.delete(f"{base}/api/contacts/batch/delete", params={"ids": f"{cid},999"},
                               headers=AUTH) as resp:
            assert set(await resp.json()) == set(batch)
        async with http.get(f"{base}/api/stats/no_such_table", headers=AUTH) as resp:
            assert resp.status == 200 and set(await resp.json()) == set(stats["unknown_table"]["body"])
        params = {"where[0][col]": "contact_id", "where[0][expr]": "eq", "where[0][val]": str(cid)}
        async with http.get(f"{base}/api/stats/email_stats", params=params, headers=AUTH) as resp:
            body = await resp.json()
            assert resp.status == 200 and set(body) == {"errors"}
            assert set(body["errors"][0]) == set(stats["query_error"]["body"]["errors"][0])
        params = {"where[0][col]": "id", "where[0][expr]": "in", "where[0][val]": "999"}
        async with http.get(f"{base}/api/contacts", params=params, headers=AUTH) as resp:
            assert await resp.json() == stats["empty_list"]["body"]
