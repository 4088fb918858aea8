"""Issue 12: where the stand-in hid how Mautic really answers, and the client's answer to each.

Every test names the Mautic source it follows (github:mautic/mautic, 5.x branch, 5.1.0 unless said) and
fails against the stand-in and client as they were before: each drives the real client against the
stand-in, so both halves are held to the same reading of Mautic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.mautic import (
    ContactMerged,
    MauticClient,
    MauticRefused,
    MauticUnavailable,
    MauticVersion,
    Where,
    exact,
    where_params,
)
from sandbox.mautic import FakeMautic, escapes_where_values, php_special_chars

WALL_CLOCK = 1_800_000_000.0
AUTH = {"Authorization": aiohttp.encode_basic_auth("api", "pw")}
# Legal addresses that break a naive look-up: an apostrophe, an ampersand, a plus, quotes, a comma.
AWKWARD = ["o'brien@example.com", "tom&jerry@example.com", "jane+news@example.com", '"j.doe"@example.com',
           '"smith,john"@example.com']


Start = Callable[..., Any]


@pytest.fixture
async def start(http: aiohttp.ClientSession, waits: list[float]) -> AsyncIterator[Start]:
    """Start a stand-in playing `version` and a Basic-auth client for it."""
    started: list[FakeMautic] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def make(version: str = "5.1.0", **client_kwargs: Any) -> tuple[FakeMautic, MauticClient]:
        fake = FakeMautic(username="api", password="pw", version=version, wall_clock=lambda: WALL_CLOCK)
        await fake.start()
        started.append(fake)
        client = MauticClient(http, fake.base_url, username="api", password="pw", sleep=record_sleep,
                              clock=lambda: WALL_CLOCK, **client_kwargs)
        return fake, client

    yield make
    for fake in started:
        await fake.stop()


# ---- 1. batch delete: missing ids are left out of the answer ------------------------------------


async def test_batch_delete_answer_omits_missing_ids(start: Start, http: aiohttp.ClientSession) -> None:
    # ApiBundle/Helper/BatchIdToEntityHelper.php + CommonApiController::deleteEntitiesAction
    fake, client = await start()
    a = fake.add_contact(email="a@example.com")
    async with http.delete(f"{fake.base_url}/api/contacts/batch/delete", params={"ids": f"{a},424242"},
                           headers=AUTH) as resp:
        body = await resp.json()
    assert resp.status == 200 and [c["id"] for c in body["contacts"]] == [a] and "errors" not in body
    b = fake.add_contact(email="b@example.com")
    result = await client.batch_delete([a, b])  # `a` went in the first call: gone, not refused
    assert (result.deleted, result.gone, result.refused) == ([b], [a], {})


# ---- 3. merged ids: Mautic follows the merge record on every contact route ------------------------


async def test_delete_of_a_merged_id_deletes_the_survivor_in_mautic_but_not_through_the_client(
    start: Start, http: aiohttp.ClientSession
) -> None:
    # LeadBundle/Model/LeadModel.php getEntity() → MergeRecordRepository::findMergedContact
    fake, client = await start()
    holder = fake.add_contact(email="jane@example.com")
    edited = fake.add_contact(email="old@example.com")
    async with http.patch(f"{fake.base_url}/api/contacts/{edited}/edit", json={"email": "jane@example.com"},
                          headers=AUTH) as resp:
        assert (await resp.json())["contact"]["id"] == edited  # ContactMerger::merge($edited, $holder)
    with pytest.raises(ContactMerged) as err:
        await client.delete_contact(holder)
    assert err.value.survivor.id == edited and fake.contact(edited) is not None
    async with http.delete(f"{fake.base_url}/api/contacts/{holder}/delete", headers=AUTH) as resp:
        assert resp.status == 200  # what the client avoided: Mautic deletes the survivor
    assert fake.contact(edited) is None


# ---- 4. 5.x HTML-escapes where values; `in` decodes them -----------------------------------------


@pytest.mark.parametrize("version", ["5.1.0", "6.0.0", "7.0.0"])
async def test_exact_lookups_find_awkward_addresses_on_every_line(start: Start, version: str) -> None:
    # CoreBundle/Helper/InputHelper.php clean() (5.x), CoreBundle/Entity/CommonRepository.php `in`
    fake, client = await start(version)
    ids = {email: fake.add_contact(email=email) for email in AWKWARD}
    fake.add_contact(email="obrien@example.com")
    for email, cid in ids.items():
        assert [c.id for c in await client.find_contacts_by_email(email)] == [cid], email
    assert await client.count_contacts([exact("email", "o'brien@example.com")]) == 1
    assert client.mautic_version == MauticVersion(version)


async def test_eq_misses_an_apostrophe_on_5x_only(start: Start) -> None:
    # InputHelper::cleanArray = FILTER_SANITIZE_SPECIAL_CHARS on 5.x; gone after mautic/mautic PR #14550
    for version, found in (("5.1.0", 0), ("6.0.0", 1)):
        fake, client = await start(version)
        fake.add_contact(email="o'brien@example.com")
        assert await client.count_contacts([Where("email", "eq", "o'brien@example.com")]) == found
        assert MauticVersion(version).escapes_where_values is escapes_where_values(version) is (found == 0)
    assert php_special_chars("o'b&<x>\"") == "o&#39;b&#38;&#60;x&#62;&#34;"


def test_in_values_are_csv_quoted_as_str_getcsv_reads_them() -> None:
    # CommonRepository::buildWhereClauseFromArray: str_getcsv(html_entity_decode($val), ',', '"')
    assert where_params([exact("email", '"smith,john"@example.com')]) == [
        ("where[0][col]", "email"), ("where[0][expr]", "in"), ("where[0][val]", '"""smith,john""@example.com"')]
    assert where_params([Where("id", "in", [3, 4])])[-1] == ("where[0][val]", "3,4")


# ---- 5. stats: 200 with errors or availableTables, no ORDER BY ------------------------------------


async def test_stats_raise_on_unknown_table_and_page_in_id_order(start: Start, http: aiohttp.ClientSession) -> None:
    # CoreBundle/Controller/Api/StatsApiController.php listAction; CommonRepository::getRows
    fake, client = await start()
    cid = fake.add_contact(email="a@example.com")
    stat_ids = [fake.add_email_stat(cid, email_id=n) for n in range(7)]
    async with http.get(f"{fake.base_url}/api/stats/page_hits", headers=AUTH) as resp:
        assert resp.status == 200 and "availableTables" in await resp.json()
    with pytest.raises(MauticRefused) as err:
        await client.get_stats("page_hits", [Where("lead_id", "eq", cid)])
    assert err.value.type == "stats_table_unavailable"
    with pytest.raises(MauticRefused) as err:
        await client.get_stats("email_stats", [Where("contact_id", "eq", cid)])  # the query throws
    assert err.value.type == "stats_error"
    rows = await client.get_stats("email_stats", [Where("lead_id", "eq", cid)], page_size=3)
    assert [int(r["id"]) for r in rows] == stat_ids  # three pages, none lost or repeated


# ---- 6. the smaller ones -------------------------------------------------------------------------


async def test_devices_are_paged(start: Start) -> None:
    # LeadBundle/Controller/Api/LeadApiController.php getDevicesAction: limit defaults to 30
    fake, client = await start()
    cid = fake.add_contact(email="a@example.com")
    for n in range(35):
        fake.add_device(cid, device=f"d{n}")
    devices = await client.get_devices(cid)
    assert sorted(d["device"] for d in devices) == sorted(f"d{n}" for n in range(35))


async def test_composite_where_without_col_is_a_500(start: Start, http: aiohttp.ClientSession) -> None:
    # CoreBundle/Entity/CommonRepository.php convertOrmPropertiesToColumns reads $f['column'] without `col`
    fake, client = await start()
    fake.add_contact(email="a@example.com")
    params = {"where[0][expr]": "orX", "where[0][val][0][col]": "id", "where[0][val][0][expr]": "gt",
              "where[0][val][0][val]": "0"}
    async with http.get(f"{fake.base_url}/api/contacts", params=params, headers=AUTH) as resp:
        assert resp.status == 500
    either = Where("", "orX", [Where("id", "gt", 0), Where("email", "isNull")])
    assert await client.count_contacts([either]) == 1


async def test_rate_limit_waits_for_x_ratelimit_reset(start: Start, waits: list[float]) -> None:
    # app/config/config.php noxlogic_rate_limit: X-RateLimit-Limit/-Remaining/-Reset, no Retry-After
    fake, client = await start(max_rate_limit_wait=60.0)
    cid = fake.add_contact(email="a@example.com")
    fake.fail("/api/contacts", status=429, retry_after=12, times=1)
    assert await client.get_contact(cid) is not None
    assert waits == [12.0]
    fake.fail("/api/contacts", status=429, retry_after=1800, times=1)  # the hourly window is far off
    with pytest.raises(MauticUnavailable):
        await client.get_contact(cid)
    assert waits == [12.0]  # failed fast for the job runner to retry later, no half-hour sleep


async def test_adding_to_an_unpublished_segment_is_403(start: Start) -> None:
    # LeadBundle/Controller/Api/ListApiController.php addLeadAction: only ListModel::getUserLists() (published)
    fake, client = await start()
    cid = fake.add_contact(email="a@example.com")
    fake.add_segment(9, "Re-consent", published=False)
    with pytest.raises(MauticRefused) as err:
        await client.add_to_segment(9, cid)
    assert err.value.status == 403
    segment = await client.get_segment(9)
    assert segment is not None and segment["isPublished"] is False
