"""The FakeMautic must behave like Mautic 5 where the bot depends on it (webhooks, REST API; read in its 5.x source)."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandbox.loopback import serving
from sandbox.mautic import (
    FakeMautic,
    channel_subscription_event,
    contact_delete_event,
    email_send_event,
    encode_like_php,
    form_submission_event,
    merge_payloads,
    send_webhook,
    sign_webhook,
    unsubscribe_event,
    webhook_contact_payload,
)
from tests.helpers import mautic_fixture

NOW = datetime.now(UTC).replace(microsecond=0)
AUTH = {"Authorization": aiohttp.encode_basic_auth("api", "secret")}


@pytest.fixture
async def fake() -> AsyncIterator[FakeMautic]:
    async with FakeMautic(client_id="cid", client_secret="cs") as fm:
        yield fm


async def get(http: aiohttp.ClientSession, fake: FakeMautic, path: str, params: Any = None) -> tuple[int, Any]:
    async with http.get(fake.base_url + path, params=params, headers=AUTH) as resp:
        return resp.status, await resp.json()


def where_eq(col: str, val: str, i: int = 0) -> dict[str, str]:
    return {f"where[{i}][col]": col, f"where[{i}][expr]": "eq", f"where[{i}][val]": val}


# ---- lifecycle & auth ----------------------------------------------------------------------------


async def test_not_listening_until_started() -> None:
    fm = FakeMautic()
    with pytest.raises(RuntimeError):
        _ = fm.base_url
    await fm.start()
    try:
        assert fm.base_url.startswith("http://127.0.0.1:")
    finally:
        await fm.stop()


async def test_empty_contact_list_literal(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    async with http.get(fake.base_url + "/api/contacts", headers=AUTH) as resp:
        assert resp.headers["Mautic-Version"] == "5.1.0"
        assert await resp.read() == b'{"total": "0", "contacts": {}}'


async def test_auth_error_shapes(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    async with http.get(fake.base_url + "/api/contacts") as resp:
        body = await resp.json()
        assert resp.status == 401 and resp.headers["Mautic-Version"]
        assert body["errors"][0]["type"] == "access_denied" and "details" not in body["errors"][0]
    bad_basic = {"Authorization": aiohttp.encode_basic_auth("api", "wrong")}
    async with http.get(fake.base_url + "/api/contacts", headers=bad_basic) as resp:
        assert resp.status == 401
    async with http.get(fake.base_url + "/api/contacts", headers={"Authorization": "Bearer nope"}) as resp:
        body = await resp.json()
        assert resp.status == 401
        assert body == {"errors": [{"code": 401, "message": "The access token provided is invalid.",
                                    "type": "invalid_grant"}]}
    async with http.post(fake.base_url + "/oauth/v2/token",
                         data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "x"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["type"] == "invalid_client"


async def test_basic_disabled_is_403_access_denied(http: aiohttp.ClientSession) -> None:
    async with FakeMautic(username=None, client_id="c", client_secret="s") as fm:
        async with http.get(fm.base_url + "/api/contacts", headers=AUTH) as resp:
            assert resp.status == 403
            assert (await resp.json())["errors"][0]["type"] == "access_denied"


async def test_oauth_token_then_bearer_and_expiry(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    async with http.post(fake.base_url + "/oauth/v2/token",
                         data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "cs"}) as resp:
        token = await resp.json()
    assert (token["expires_in"], token["token_type"]) == (3600, "bearer")
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    async with http.get(fake.base_url + "/api/contacts", headers=bearer) as resp:
        assert resp.status == 200
    fake.expire_tokens()
    async with http.get(fake.base_url + "/api/contacts", headers=bearer) as resp:
        assert resp.status == 401
        assert (await resp.json())["errors"][0]["message"] == "The access token provided has expired."


# ---- listing semantics ---------------------------------------------------------------------------


async def test_search_email_is_prefix_like_but_where_eq_is_exact(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    bob = fake.add_contact(email="Bob@Ex.com")
    au = fake.add_contact(email="bob@ex.com.au")
    _, searched = await get(http, fake, "/api/contacts", {"search": "email:bob@ex.com"})
    assert set(searched["contacts"]) == {str(bob), str(au)}
    _, exact = await get(http, fake, "/api/contacts", where_eq("email", "BOB@ex.com"))
    assert list(exact["contacts"]) == [str(bob)] and exact["total"] == "1"
    _, strict = await get(http, fake, "/api/contacts", {"search": "email:+bob@ex.com"})
    assert list(strict["contacts"]) == [str(bob)]


async def test_default_order_limit_and_total(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    never = fake.add_contact(email="never@example.com")
    old = fake.add_contact(email="old@example.com", last_active=NOW - timedelta(days=30))
    new = fake.add_contact(email="new@example.com", last_active=NOW - timedelta(days=1))
    for i in range(40):
        fake.add_contact(email=f"filler{i}@example.com", last_active=NOW - timedelta(days=100 + i))
    _, page = await get(http, fake, "/api/contacts")
    assert len(page["contacts"]) == 30 and page["total"] == "43"
    assert list(page["contacts"])[:2] == [str(new), str(old)]  # last_active DESC
    _, everything = await get(http, fake, "/api/contacts", {"limit": "0"})
    assert len(everything["contacts"]) == 43
    assert list(everything["contacts"])[-1] == str(never)  # NULLs last when descending
    _, tail = await get(http, fake, "/api/contacts", {"start": "40", "orderBy": "id", "orderByDir": "ASC"})
    assert len(tail["contacts"]) == 3 and tail["total"] == "43"


async def test_where_expressions_and_minimal(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    a = fake.add_contact(email="a@example.com", last_active=NOW - timedelta(days=10), fields={"country": "DE"})
    b = fake.add_contact(email="b@example.com", fields={"country": "FR"})
    c = fake.add_contact(email="c@example.com", last_active=NOW, fields={"country": "de"})
    cutoff = (NOW - timedelta(days=5)).strftime("%Y-%m-%d %H:%M:%S")
    cases: list[tuple[dict[str, str], set[int]]] = [
        ({"where[0][col]": "last_active", "where[0][expr]": "lt", "where[0][val]": cutoff}, {a}),
        ({"where[0][col]": "last_active", "where[0][expr]": "isNull"}, {b}),
        ({"where[0][col]": "country", "where[0][expr]": "in", "where[0][val]": "de,xx"}, {a, c}),
        ({"where[0][col]": "country", "where[0][expr]": "notIn", "where[0][val]": "de"}, {b}),
        ({"where[0][col]": "id", "where[0][expr]": "gte", "where[0][val]": str(b)}, {b, c}),
        ({"where[0][col]": "id", "where[0][expr]": "orX", "where[0][val][0][col]": "country",
          "where[0][val][0][expr]": "eq", "where[0][val][0][val]": "FR", "where[0][val][1][col]": "last_active",
          "where[0][val][1][expr]": "gt", "where[0][val][1][val]": cutoff}, {b, c}),
    ]
    for params, expected in cases:
        _, body = await get(http, fake, "/api/contacts", params)
        assert {int(k) for k in body["contacts"]} == expected, params
        assert body["total"] == str(len(expected))
    _, minimal = await get(http, fake, "/api/contacts", {"minimal": "1", **where_eq("id", str(a))})
    contact = minimal["contacts"][str(a)]
    assert "lastActive" not in contact and "doNotContact" not in contact
    assert contact["fields"]["all"]["email"] == "a@example.com"


async def test_contact_shape(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    cid = fake.add_contact(email="jane@example.com", firstname="Jane", last_active=NOW,
                           dnc=[{"channel": "email", "reason": 3, "comments": "GDPR"}], tags=["news"],
                           ip_addresses=["1.2.3.4"], fields={"gdpr_consent": True})
    status, body = await get(http, fake, f"/api/contacts/{cid}")
    contact = body["contact"]
    assert status == 200 and contact["id"] == cid
    assert contact["lastActive"] == NOW.isoformat()
    assert contact["fields"]["core"]["email"]["value"] == "jane@example.com"
    assert contact["fields"]["personal"] == [] and contact["fields"]["all"]["gdpr_consent"] == 1
    assert contact["doNotContact"][0]["reason"] == 3 and contact["tags"][0]["tag"] == "news"
    assert contact["ipAddresses"][0]["ipAddress"] == "1.2.3.4"
    assert contact["dateIdentified"] is not None
    status, missing = await get(http, fake, "/api/contacts/999")
    assert status == 404
    assert missing == {"errors": [{"code": 404, "message": "Item was not found.", "details": [], "type": None}]}


# ---- writes --------------------------------------------------------------------------------------


async def test_patch_blank_and_merge(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    # Issue 12 changes the merge direction to Mautic's: LeadApiController::preSaveEntity calls
    # ContactMerger::merge($edited, $existing), so the *edited* contact survives and the other holder goes.
    holder = fake.add_contact(email="jane@example.com", lastname="Doe")
    edited = fake.add_contact(email="j@example.com", firstname="Jane")
    url = f"{fake.base_url}/api/contacts/{edited}/edit"
    async with http.patch(url, json={"firstname": ""}, headers=AUTH) as resp:
        assert (await resp.json())["contact"]["fields"]["all"]["firstname"] == "Jane"
    async with http.patch(url, json={"firstname": "", "overwriteWithBlank": True}, headers=AUTH) as resp:
        assert (await resp.json())["contact"]["fields"]["all"]["firstname"] is None
    async with http.patch(url, json={"email": "JANE@example.com"}, headers=AUTH) as resp:
        merged = (await resp.json())["contact"]
    assert merged["id"] == edited and merged["fields"]["all"]["lastname"] == "Doe"
    assert fake.contact(holder) is None and fake.merged_into(holder) == edited
    _, redirected = await get(http, fake, f"/api/contacts/{holder}")
    assert redirected["contact"]["id"] == edited  # GET of the merged id answers with the survivor


async def test_create_matches_existing_email(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    async with http.post(fake.base_url + "/api/contacts/new", json={"email": "n@example.com"}, headers=AUTH) as r:
        assert r.status == 201 and "Location" in r.headers
        cid = (await r.json())["contact"]["id"]
    async with http.post(fake.base_url + "/api/contacts/new", json={"email": "N@example.com", "city": "Oslo"},
                         headers=AUTH) as r:
        body = await r.json()
        assert r.status == 200 and body["contact"]["id"] == cid
    assert fake.contacts[cid]["fields"]["all"]["city"] == "Oslo"


async def test_delete_and_batch_delete(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    a, b, c = (fake.add_contact(email=f"{x}@example.com") for x in "abc")
    async with http.delete(f"{fake.base_url}/api/contacts/{a}/delete", headers=AUTH) as resp:
        assert (await resp.json())["contact"]["id"] is None
    async with http.delete(f"{fake.base_url}/api/contacts/batch/delete", params={"ids": f"{b},{a},{c}"},
                           headers=AUTH) as resp:
        body = await resp.json()
    assert [x["id"] for x in body["contacts"]] == [b, c]
    # Issue 12: an id with no row is in neither `contacts` nor `errors` (BatchIdToEntityHelper.php)
    assert "errors" not in body
    assert len(fake.contacts) == 0


async def test_dnc_semantics(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    cid = fake.add_contact(email="a@example.com")
    unsub = fake.add_contact(email="u@example.com", dnc=[("email", 1)])
    base = fake.base_url + "/api/contacts"
    async with http.post(f"{base}/{cid}/dnc/email/add", json={"reason": "Integration issued DNC"},
                         headers=AUTH) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["message"] == "Invalid reason code given"
    async with http.post(f"{base}/{cid}/dnc/email/add", data={"comments": "form body"}, headers=AUTH) as resp:
        assert (await resp.json())["contact"]["doNotContact"][0]["reason"] == 3  # default reason
    async with http.post(f"{base}/{unsub}/dnc/email/add", json={"reason": 3}, headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["contact"]["doNotContact"][0]["reason"] == 1  # never overwritten
    async with http.post(f"{base}/{cid}/dnc/sms/remove", headers=AUTH) as resp:
        assert (await resp.json())["recordFound"] is False
    async with http.post(f"{base}/{cid}/dnc/email/remove", headers=AUTH) as resp:
        body = await resp.json()
        assert body["recordFound"] is True and body["contact"]["doNotContact"] == []


async def test_activity_paging_shape(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    cid = fake.add_contact(email="a@example.com")
    fake.set_activity_generator(cid, 100_000)
    fake.add_activity(cid, [{"event": "form.submitted", "eventType": "Form submitted",
                             "timestamp": (NOW + timedelta(days=1)).isoformat()}])
    _, first = await get(http, fake, f"/api/contacts/{cid}/activity")
    assert set(first) == {"events", "filters", "order", "types", "total", "page", "limit", "maxPages"}
    # Issue 12 changes the paging to Mautic's: each event type pages on its own and maxPages follows the
    # busiest type (LeadBundle/Event/LeadTimelineEvent.php getMaxPage): 50,000 of each synthetic type.
    assert (first["total"], first["limit"], first["maxPages"]) == (100_001, 25, 2000)
    assert first["events"][0]["event"] == "form.submitted"  # newest first by default
    assert len(first["events"]) == 51  # 25 of each synthetic type and the one form submission
    _, last = await get(http, fake, f"/api/contacts/{cid}/activity",
                        {"page": "2000", "order[0]": "timestamp", "order[1]": "ASC"})
    assert len(last["events"]) == 50 and "form.submitted" not in {e["event"] for e in last["events"]}
    _, beyond = await get(http, fake, f"/api/contacts/{cid}/activity", {"page": "2001"})
    assert beyond["events"] == []


async def test_segments_and_forms(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    cid = fake.add_contact(email="a@example.com")
    _, empty = await get(http, fake, f"/api/contacts/{cid}/segments")
    assert empty == {"total": 0, "lists": []}
    fake.add_segment(3, "Leads", "leads")
    async with http.post(f"{fake.base_url}/api/segments/3/contact/{cid}/add", headers=AUTH) as resp:
        assert await resp.json() == {"success": 1}
    _, segs = await get(http, fake, f"/api/contacts/{cid}/segments")
    assert segs["lists"]["3"]["alias"] == "leads"
    fake.add_form(2, "Signup", fields=[{"alias": "consent", "type": "checkboxgrp", "leadField": "gdpr_consent"}])
    _, form = await get(http, fake, "/api/forms/2")
    field = form["form"]["fields"][0]
    assert {"id", "label", "alias", "type", "isRequired", "properties", "defaultValue", "leadField"} <= set(field)


# ---- recording & faults --------------------------------------------------------------------------


async def test_wait_for_is_notified_and_times_out_with_summary(
    fake: FakeMautic, http: aiohttp.ClientSession
) -> None:
    waiter = asyncio.create_task(fake.wait_for("GET", "/api/contacts", count=2))
    await get(http, fake, "/api/contacts", {"limit": "5"})
    assert not waiter.done()
    await get(http, fake, "/api/contacts/1")
    calls = await waiter
    assert [c.query.get("limit") for c in calls] == [["5"], None]
    with pytest.raises(AssertionError, match="expected 1 x DELETE"):
        await fake.wait_for("DELETE", "/api/contacts", timeout=0.05)


async def test_fail_injects_mautic_shaped_errors(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    fake.wall_clock = lambda: 1_800_000_000.0
    fake.fail("/api/contacts", status=429, retry_after=30, times=1, method="GET")
    async with http.get(fake.base_url + "/api/contacts", headers=AUTH) as resp:
        # Mautic's rate limiter (noxlogic/RateLimitBundle) sends X-RateLimit-Reset (epoch), not Retry-After
        assert resp.status == 429 and "Retry-After" not in resp.headers
        assert resp.headers["X-RateLimit-Reset"] == "1800000030"
        body = await resp.json()
        assert body["errors"][0]["code"] == 429 and "type" not in body["errors"][0]
    async with http.get(fake.base_url + "/api/contacts", headers=AUTH) as resp:
        assert resp.status == 200  # times=1 used up
    fake.fail("/api/contacts", status=502, times=None, method="DELETE")
    async with http.get(fake.base_url + "/api/contacts", headers=AUTH) as resp:
        assert resp.status == 200  # method filter
    async with http.delete(fake.base_url + "/api/contacts/1/delete", headers=AUTH) as resp:
        assert resp.status == 502


# ---- bulk store ----------------------------------------------------------------------------------


async def test_bulk_counts_pages_and_mutations_agree(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    before = fake.add_contact(email="first@example.com", last_active=NOW - timedelta(days=4000))
    ids = fake.seed_bulk(20_000, stale_fraction=0.3, never_active_fraction=0.1, seed=7, now=NOW)
    cutoff = (NOW - timedelta(days=1095)).strftime("%Y-%m-%d %H:%M:%S")
    stale = {"where[0][col]": "last_active", "where[0][expr]": "lt", "where[0][val]": cutoff}
    _, counted = await get(http, fake, "/api/contacts", {**stale, "limit": "1"})
    total = int(counted["total"])
    assert 0.27 * 20_000 < total < 0.33 * 20_000
    seen: list[int] = []
    last = 0
    while True:
        _, page = await get(http, fake, "/api/contacts", {
            **stale, "where[1][col]": "id", "where[1][expr]": "gt", "where[1][val]": str(last),
            "orderBy": "id", "orderByDir": "ASC", "limit": "2000", "minimal": "1"})
        if not page["contacts"]:
            break
        assert int(page["total"]) == total - len(seen)
        seen.extend(int(k) for k in page["contacts"])
        last = seen[-1]
    assert len(seen) == total and seen == sorted(seen) and seen[0] == before
    victims = seen[1:4]
    async with http.delete(fake.base_url + "/api/contacts/batch/delete",
                           params={"ids": ",".join(map(str, victims))}, headers=AUTH) as resp:
        assert len((await resp.json())["contacts"]) == 3
    fresh = next(i for i in ids if i not in set(seen))
    async with http.patch(f"{fake.base_url}/api/contacts/{fresh}/edit",
                          json={"lastActive": (NOW - timedelta(days=2000)).isoformat()}, headers=AUTH):
        pass
    _, recount = await get(http, fake, "/api/contacts", {**stale, "limit": "1"})
    assert int(recount["total"]) == total - 3 + 1
    _, found = await get(http, fake, "/api/contacts", where_eq("email", f"BULK{fresh}@bulk.example.com"))
    assert list(found["contacts"]) == [str(fresh)]


def test_bulk_store_is_compact() -> None:
    tracemalloc.start()  # traced on 100k (tracing 1M is slow); the store grows linearly
    try:
        FakeMautic().seed_bulk(100_000, seed=1, now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / 100_000 < 40  # bytes per contact: parallel arrays, not a dict each


async def test_million_contacts_count_and_page_by_id(fake: FakeMautic, http: aiohttp.ClientSession) -> None:
    # How fast the compact store answers is measured by bench/retention_digest.py, not asserted here.
    fake.seed_bulk(1_000_000, seed=1, now=NOW)
    cutoff = (NOW - timedelta(days=1095)).strftime("%Y-%m-%d %H:%M:%S")
    stale = {"where[0][col]": "last_active", "where[0][expr]": "lt", "where[0][val]": cutoff}
    _, counted = await get(http, fake, "/api/contacts", {**stale, "limit": "1", "orderBy": "id"})
    assert 250_000 < int(counted["total"]) < 350_000
    _, page = await get(http, fake, "/api/contacts", {
        **stale, "where[1][col]": "id", "where[1][expr]": "gt", "where[1][val]": "500000",
        "orderBy": "id", "orderByDir": "ASC", "limit": "500", "minimal": "1"})
    assert len(page["contacts"]) == 500 and min(map(int, page["contacts"])) > 500_000


# ---- webhook sender ------------------------------------------------------------------------------


def test_signature_vector_and_php_encoding() -> None:
    vector = json.loads(mautic_fixture("reconstructed_signature_vector.json"))
    body = mautic_fixture(vector["body_file"])
    assert sign_webhook(body, vector["secret"]) == vector["expected_Webhook-Signature"]
    assert encode_like_php(json.loads(body)) == body  # `\/` and `\u00f6` reproduced byte for byte
    assert encode_like_php({"u": "a/b", "n": "ö😀"}) == b'{"u":"a\\/b","n":"\\u00f6\\ud83d\\ude00"}'


async def test_send_webhook_posts_signed_php_bytes(http: aiohttp.ClientSession) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as url:
        payload = merge_payloads(unsubscribe_event(26, "jörg@example.com"), contact_delete_event(31))
        status, text = await send_webhook(http, f"{url}/hook", payload, "s3cret")
    assert (status, text) == (200, "ok")
    headers, body = received[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Origin-Base-URL"] == "https://mautic.example.com"
    assert headers["Webhook-Signature"] == sign_webhook(body, "s3cret")
    assert b"j\\u00f6rg@example.com" in body
    assert b'": ' not in body and b', "' not in body  # no spaces between tokens
    parsed = json.loads(body)
    assert list(parsed) == ["mautic.lead_channel_subscription_changed", "mautic.lead_post_delete"]
    assert parsed["mautic.lead_post_delete"][0]["id"] == 31
    assert parsed["mautic.lead_post_delete"][0]["contact"]["id"] is None


def test_event_builders_have_real_shapes(fake: FakeMautic) -> None:
    cid = fake.add_contact(email="a@example.com", dnc=[("email", 1)])
    contact = fake.webhook_contact(cid)
    assert "all" not in contact["fields"] and contact["fields"]["personal"] == []
    sub = channel_subscription_event(contact, new_status="unsubscribed", timestamp="2024-10-24T09:54:35-06:00")
    event = sub["mautic.lead_channel_subscription_changed"][0]
    assert (event["channel"], event["old_status"], event["timestamp"]) == ("email", "contactable",
                                                                          "2024-10-24T09:54:35-06:00")
    form = form_submission_event(contact_id=cid, email="a@example.com", results={"consent": "Yes"})
    submission = form["mautic.form_on_submit"][0]["submission"]
    assert submission["lead"]["id"] == cid and "contact" not in submission
    assert submission["results"] == {"consent": "Yes"}
    assert form_submission_event(contact_id=1, email="x@y.z", results={})["mautic.form_on_submit"][0][
        "submission"]["results"] == []
    sent = email_send_event(contact=webhook_contact_payload(cid, "a@example.com"))["mautic.email_on_send"][0]
    assert {"email", "contact", "contentHash", "idHash", "subject", "source", "headers", "timestamp"} <= set(sent)
