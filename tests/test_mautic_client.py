"""MauticClient against the FakeMautic over loopback (Basic and OAuth2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.mautic import (
    ContactMerged,
    MauticAuthError,
    MauticClient,
    MauticError,
    MauticNotFound,
    MauticRefused,
    MauticUnavailable,
    Where,
)
from sandbox.mautic import FakeMautic

NOW = datetime.now(UTC).replace(microsecond=0)
CUTOFF = NOW - timedelta(days=1095)

ClientFactory = Callable[..., MauticClient]


WALL_CLOCK = 1_800_000_000.0  # one pinned epoch second for the client and the stand-in


@pytest.fixture
async def fake() -> AsyncIterator[FakeMautic]:
    async with FakeMautic(username="api", password="pw", client_id="cid", client_secret="csecret",
                          wall_clock=lambda: WALL_CLOCK) as fm:
        yield fm


@pytest.fixture
def make_client(fake: FakeMautic, http: aiohttp.ClientSession, waits: list[float]) -> ClientFactory:
    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)  # retries are instant in tests; the waits are asserted instead

    def build(auth: str = "basic", **kwargs: Any) -> MauticClient:
        creds: dict[str, Any] = (
            {"username": "api", "password": "pw"} if auth == "basic"
            else {"client_id": "cid", "client_secret": "csecret"}
        )
        creds.update(kwargs)
        creds.setdefault("sleep", record_sleep)
        creds.setdefault("clock", lambda: WALL_CLOCK)  # the stand-in's X-RateLimit-Reset is read against it
        return MauticClient(http, fake.base_url, **creds)

    return build


@pytest.fixture(params=["basic", "oauth"])
def client(request: pytest.FixtureRequest, make_client: ClientFactory) -> MauticClient:
    return make_client(request.param)


def api_calls(fake: FakeMautic, method: str, prefix: str) -> list[Any]:
    return [c for c in fake.calls if c.method == method and c.path.startswith(prefix)]


# ---- auth ----------------------------------------------------------------------------------------


async def test_get_contact_with_each_auth_kind(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="jane@example.com", firstname="Jane", last_active=NOW - timedelta(days=2))
    contact = await client.get_contact(cid)
    assert contact is not None
    assert (contact.id, contact.email, contact.firstname) == (cid, "jane@example.com", "Jane")
    assert contact.last_active == NOW - timedelta(days=2)
    assert contact.last_active is not None and contact.last_active.tzinfo is not None
    assert contact.fields_all["email"] == "jane@example.com"
    expected = "bearer" if fake.calls[0].path == "/oauth/v2/token" else "basic"
    assert api_calls(fake, "GET", "/api/contacts/")[-1].auth == expected


async def test_oauth_token_is_fetched_once_and_cached(fake: FakeMautic, make_client: ClientFactory) -> None:
    client = make_client("oauth")
    ids = [fake.add_contact(email=f"p{i}@example.com") for i in range(5)]
    results = await asyncio.gather(*(client.get_contact(i) for i in ids))
    assert [c.id for c in results if c] == ids
    token_calls = api_calls(fake, "POST", "/oauth/v2/token")
    assert len(token_calls) == 1
    assert token_calls[0].form == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}


async def test_oauth_refreshes_once_when_token_expired(fake: FakeMautic, make_client: ClientFactory) -> None:
    client = make_client("oauth")
    cid = fake.add_contact(email="a@example.com")
    assert await client.get_contact(cid) is not None
    fake.expire_tokens()
    assert await client.get_contact(cid) is not None
    assert len(api_calls(fake, "POST", "/oauth/v2/token")) == 2
    assert len(api_calls(fake, "GET", f"/api/contacts/{cid}")) == 3  # ok, 401 invalid_grant, ok


async def test_oauth_bad_client_is_auth_error(fake: FakeMautic, make_client: ClientFactory) -> None:
    client = make_client("oauth", client_secret="wrong")
    with pytest.raises(MauticAuthError) as err:
        await client.ping()
    assert (err.value.status, err.value.type) == (400, "invalid_client")


async def test_basic_bad_password_fails_without_retry(
    fake: FakeMautic, make_client: ClientFactory, waits: list[float]
) -> None:
    client = make_client("basic", password="nope")
    with pytest.raises(MauticAuthError) as err:
        await client.get_contact(1)
    assert err.value.status == 401
    assert waits == []
    assert len(fake.calls) == 1


async def test_no_credentials_fails_on_use_not_construction(make_client: ClientFactory) -> None:
    client = make_client("basic", username=None, password=None)
    with pytest.raises(MauticAuthError):
        await client.ping()


async def test_ping_returns_mautic_version(client: MauticClient) -> None:
    assert await client.ping() == "5.1.0"


# ---- retries -------------------------------------------------------------------------------------


async def test_429_honours_retry_after(fake: FakeMautic, client: MauticClient, waits: list[float]) -> None:
    cid = fake.add_contact(email="a@example.com")
    fake.fail("/api/contacts", status=429, retry_after=7, times=2)
    contact = await client.get_contact(cid)
    assert contact is not None and contact.id == cid
    assert waits == [7.0, 7.0]
    assert len(api_calls(fake, "GET", "/api/contacts")) == 3


async def test_5xx_retries_with_exponential_backoff_then_succeeds(
    fake: FakeMautic, make_client: ClientFactory, waits: list[float]
) -> None:
    client = make_client("basic", backoff_base=0.5)
    cid = fake.add_contact(email="a@example.com")
    fake.fail("/api/contacts", status=503, times=2)
    assert await client.get_contact(cid) is not None
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 0.75  # base * 2**0 plus up to 50 % jitter
    assert 1.0 <= waits[1] <= 1.5  # base * 2**1 plus jitter


async def test_exhausted_retries_raise_unavailable(
    fake: FakeMautic, make_client: ClientFactory, waits: list[float]
) -> None:
    client = make_client("basic", max_retries=3)
    fake.fail("/api/contacts", status=500, times=None)
    with pytest.raises(MauticUnavailable) as err:
        await client.count_contacts([])
    assert err.value.retryable is True
    assert (err.value.status, err.value.attempts) == (500, 4)
    assert len(waits) == 3
    assert len(api_calls(fake, "GET", "/api/contacts")) == 4


async def test_timeout_is_retried(fake: FakeMautic, make_client: ClientFactory, waits: list[float]) -> None:
    client = make_client("basic", timeout=0.2)
    cid = fake.add_contact(email="a@example.com")
    fake.slow(f"/api/contacts/{cid}", 2.0, times=1)
    contact = await client.get_contact(cid)
    assert contact is not None
    assert len(waits) == 1


async def test_connection_refused_is_unavailable(http: aiohttp.ClientSession, waits: list[float]) -> None:
    async def record(seconds: float) -> None:
        waits.append(seconds)

    client = MauticClient(http, "http://127.0.0.1:9", username="u", password="p", max_retries=2, sleep=record)
    with pytest.raises(MauticUnavailable):
        await client.ping()
    assert len(waits) == 2


async def test_4xx_is_not_retried_and_parsed(fake: FakeMautic, client: MauticClient, waits: list[float]) -> None:
    cid = fake.add_contact(email="a@example.com")
    fake.fail(f"/api/contacts/{cid}/edit", status=422, times=1)
    with pytest.raises(MauticError) as err:
        await client.patch_contact(cid, {"firstname": "X"}, overwrite_with_blank=False)
    assert not isinstance(err.value, MauticUnavailable)
    assert isinstance(err.value, MauticRefused)
    assert err.value.retryable is False
    assert (err.value.status, err.value.code) == (422, 422)
    assert waits == []


# ---- contacts ------------------------------------------------------------------------------------


async def test_get_missing_contact_is_none(client: MauticClient) -> None:
    assert await client.get_contact(4242) is None


async def test_patch_email_collision_keeps_the_edited_contact_and_stale_ids_are_refused(
    fake: FakeMautic, client: MauticClient
) -> None:
    # Issue 12 changes this: Mautic keeps the *edited* contact and deletes the other holder of the address
    # (LeadBundle/Controller/Api/LeadApiController.php preSaveEntity → Deduplicate/ContactMerger.php merge).
    holder = fake.add_contact(email="jane@example.com", firstname="Jane")
    edited = fake.add_contact(email="jane.old@example.com", lastname="Doe")
    after = await client.patch_contact(edited, {"email": "jane@example.com"}, overwrite_with_blank=False)
    assert after.id == edited and after.firstname == "Jane"  # the holder's data went to the edited one
    assert fake.contact(holder) is None and fake.merged_into(holder) == edited
    # Mautic answers GET of the merged-away id with the survivor; the client must not accept that,
    assert await client.get_contact(holder) is None
    # nor PATCH, DELETE or DNC it: Mautic would act on the survivor (LeadBundle/Model/LeadModel.php getEntity)
    with pytest.raises(ContactMerged) as err:
        await client.patch_contact(holder, {"firstname": "X"}, overwrite_with_blank=False)
    assert (err.value.requested_id, err.value.survivor.id) == (holder, edited)
    with pytest.raises(ContactMerged):
        await client.delete_contact(holder)
    with pytest.raises(ContactMerged):
        await client.add_dnc(holder)
    with pytest.raises(ContactMerged):
        await client.remove_dnc(holder)
    survivor = fake.contact(edited)
    assert survivor is not None and survivor["fields"]["all"]["firstname"] == "Jane"
    assert survivor["doNotContact"] == []
    assert not api_calls(fake, "DELETE", "/api/contacts") and len(api_calls(fake, "PATCH", "/api/contacts")) == 1


async def test_find_by_email_is_exact_and_case_insensitive(fake: FakeMautic, client: MauticClient) -> None:
    bob = fake.add_contact(email="Bob@Ex.com")
    fake.add_contact(email="bob@ex.com.au")
    fake.add_contact(email="bobby@ex.com")
    found = await client.find_contacts_by_email("bob@ex.com")
    assert [c.id for c in found] == [bob]
    assert [c.id for c in await client.find_contacts_by_email("  BOB@EX.COM ")] == [bob]
    lookups = api_calls(fake, "GET", "/api/contacts")
    assert all("search" not in c.query for c in lookups)
    # `in`, not `eq`: it decodes the entities Mautic 5.x puts into where values (CommonRepository.php)
    assert all(c.query.get("where[0][expr]") == ["in"] for c in lookups)


async def test_find_by_email_drops_accent_folded_matches(fake: FakeMautic, client: MauticClient) -> None:
    jorg = fake.add_contact(email="jörg@example.com")
    fake.add_contact(email="jorg@example.com")
    # MySQL's collation returns both for either spelling; only the exact one may come back
    assert [c.id for c in await client.find_contacts_by_email("Jörg@example.com")] == [jorg]
    assert len(await client.find_contacts_by_email("nobody@example.com")) == 0


async def test_iter_contacts_pages_by_id_with_filters(fake: FakeMautic, client: MauticClient) -> None:
    stale = []
    for i in range(12):
        old = i % 2 == 0 and i < 10
        cid = fake.add_contact(email=f"c{i}@example.com",
                               last_active=CUTOFF - timedelta(days=5) if old else NOW - timedelta(days=i))
        if old:
            stale.append(cid)
    got = []
    async for contact in client.iter_contacts([Where("last_active", "lt", CUTOFF)], page_size=2):
        got.append(contact.id)
        await client.delete_contact(contact.id)  # deleting while iterating must not skip anyone
    assert got == stale
    pages = [c for c in api_calls(fake, "GET", "/api/contacts") if c.path == "/api/contacts"]
    assert len(pages) == 3  # 2 + 2 + 1; the last page's total says nothing is left
    for call in pages:
        assert call.query["orderBy"] == ["id"] and call.query["orderByDir"] == ["ASC"]
        assert call.query["limit"] == ["2"]
        assert "start" not in call.query
        assert call.query["where[1][col]"] == ["id"] and call.query["where[1][expr]"] == ["gt"]
    assert [c.query["where[1][val]"][0] for c in pages] == ["0", str(stale[1]), str(stale[3])]


async def test_count_contacts_with_nested_or_and(fake: FakeMautic, client: MauticClient) -> None:
    fake.add_contact(email="stale@example.com", last_active=CUTOFF - timedelta(days=1))
    fake.add_contact(email="never-old@example.com", date_added=CUTOFF - timedelta(days=3))
    fake.add_contact(email="never-new@example.com", date_added=NOW - timedelta(days=3))
    fake.add_contact(email="fresh@example.com", last_active=NOW)
    rule = [Where("", "orX", [
        Where("last_active", "lt", CUTOFF),
        Where("", "andX", [Where("last_active", "isNull"), Where("date_added", "lt", CUTOFF)]),
    ])]
    assert await client.count_contacts(rule) == 2
    assert await client.count_contacts([]) == 4
    call = api_calls(fake, "GET", "/api/contacts")[0]
    assert call.query["limit"] == ["1"]


async def test_batch_delete_counts_ids_mautic_leaves_out_as_gone(fake: FakeMautic, client: MauticClient) -> None:
    # Issue 12 changes this: Mautic omits ids it cannot find from both `contacts` and `errors`
    # (ApiBundle/Helper/BatchIdToEntityHelper.php); the client looks them up and counts absent ones as gone.
    a, b = fake.add_contact(email="a@example.com"), fake.add_contact(email="b@example.com")
    result = await client.batch_delete([a, 99999, b])
    assert (result.deleted, result.gone, result.refused) == ([a, b], [99999], {})
    assert fake.contact(a) is None and fake.contact(b) is None
    call = api_calls(fake, "DELETE", "/api/contacts/batch/delete")[0]
    assert call.query["ids"] == [f"{a},99999,{b}"]
    (lookup,) = [c for c in api_calls(fake, "GET", "/api/contacts") if "where[0][expr]" in c.query]
    assert (lookup.query["where[0][col]"], lookup.query["where[0][expr]"]) == (["id"], ["in"])
    assert lookup.query["where[0][val]"] == ["99999"]
    # A retry after a timeout (the first attempt deleted them all) reports everything gone, nothing refused.
    again = await client.batch_delete([a, b])
    assert (again.deleted, again.gone, again.refused) == ([], [a, b], {})


async def test_delete_contact_is_idempotent(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com")
    assert await client.delete_contact(cid) is True
    assert await client.delete_contact(cid) is False


async def test_dnc_add_and_remove(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com")
    contact = await client.add_dnc(cid, reason=3, comments="GDPR objection")
    assert contact.dnc_reason("email") == 3
    assert contact.dnc[0]["comments"] == "GDPR objection"
    assert await client.remove_dnc(cid) is True
    assert await client.remove_dnc(cid) is False
    after = await client.get_contact(cid)
    assert after is not None and after.dnc_reason() is None


async def test_dnc_never_downgrades_an_unsubscribe(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com", dnc=[("email", 1)])
    contact = await client.add_dnc(cid, reason=3)
    assert contact.dnc_reason() == 1
    with pytest.raises(ValueError):
        await client.add_dnc(cid, reason=0)


async def test_overwrite_with_blank(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com", firstname="Ann", lastname="Lee")
    kept = await client.patch_contact(cid, {"firstname": "", "lastname": "Smith"}, overwrite_with_blank=False)
    assert (kept.firstname, kept.lastname) == ("Ann", "Smith")
    cleared = await client.patch_contact(cid, {"firstname": "", "lastname": ""}, overwrite_with_blank=True)
    assert (cleared.firstname, cleared.lastname) == (None, None)
    assert api_calls(fake, "PATCH", f"/api/contacts/{cid}/edit")[-1].json["overwriteWithBlank"] is True


# ---- sub-resources -------------------------------------------------------------------------------


async def test_iter_activity_streams_all_pages(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com")
    fake.set_activity_generator(cid, 250)
    events = [e async for e in client.iter_activity(cid, page_size=100)]
    assert len(events) == 250
    assert len({e["eventId"] for e in events}) == 250
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    pages = api_calls(fake, "GET", f"/api/contacts/{cid}/activity")
    # two types of 125 events: maxPages follows the busiest type (LeadTimelineEvent::getMaxPage), so two
    # pages of up to 200 events carry all 250 (issue 12 changes the stand-in's paging to Mautic's)
    assert [c.query["page"] for c in pages] == [["1"], ["2"]]


async def test_empty_and_filled_sub_resources(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com")
    assert await client.get_segments(cid) == []  # Mautic sends `lists: []` when empty
    assert await client.get_campaigns(cid) == []
    assert await client.get_notes(cid) == []
    fake.add_segment(7, "Newsletter", "newsletter")
    assert await client.add_to_segment(7, cid) is True
    fake.add_campaign(cid, 3, "Welcome")
    fake.add_company(cid, "Acme")
    fake.add_device(cid)
    for i in range(3):
        fake.add_note(cid, f"note {i}")
    assert [s["alias"] for s in await client.get_segments(cid)] == ["newsletter"]
    assert [c["name"] for c in await client.get_campaigns(cid)] == ["Welcome"]
    assert [c["companyname"] for c in await client.get_companies(cid)] == ["Acme"]
    assert len(await client.get_devices(cid)) == 1
    assert [n["text"] for n in await client.get_notes(cid)] == ["note 0", "note 1", "note 2"]
    with pytest.raises(MauticNotFound):
        await client.add_to_segment(99, cid)


async def test_forms_and_submissions(fake: FakeMautic, client: MauticClient) -> None:
    cid = fake.add_contact(email="a@example.com")
    fake.add_form(4, "Newsletter", alias="newsletter", fields=[
        {"alias": "email", "type": "email", "leadField": "email", "isRequired": True},
        {"alias": "consent", "type": "checkboxgrp",
         "properties": {"list": {"list": [{"label": "Yes", "value": "1"}]}}},
    ])
    fake.add_submission(4, cid, {"email": "a@example.com", "consent": "Yes"})
    assert [f["id"] for f in await client.list_forms()] == [4]
    form = await client.get_form(4)
    assert form is not None and [f["type"] for f in form["fields"]] == ["email", "checkboxgrp"]
    assert await client.get_form(5) is None
    subs = await client.get_form_submissions(4, cid)
    assert [s["results"]["consent"] for s in subs] == ["Yes"]
    fake.add_email_stat(cid, email_id=2)
    stats = await client.get_stats("email_stats", [Where("lead_id", "eq", cid)])
    assert [s["email_id"] for s in stats] == ["2"]


async def test_logs_carry_no_email_addresses(
    fake: FakeMautic, client: MauticClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.mautic")
    fake.add_contact(email="secret.person@example.com")
    fake.fail("/api/contacts", status=503, times=1)
    found = await client.find_contacts_by_email("secret.person@example.com")
    assert len(found) == 1
    assert caplog.records, "the retry should have been logged"
    assert "secret.person" not in caplog.text
    assert "secret.person" not in repr(found[0])
