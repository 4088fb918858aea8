"""The retention digest counts stale contacts with Mautic's own --gdpr rule, server-side."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

from sandbox.harness import ALICE, BOB, MALLORY, sandbox
from tests.digests.helpers import RETENTION, Clock, seed_contacts
from tests.helpers import test_tuning


def _where_params(query_string: str) -> dict[str, str]:
    return {k: v for k, v in parse_qsl(query_string) if k.startswith("where")}


async def test_retention_digest_counts_and_filters(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seeded = seed_contacts(box.mautic, clock(), active=4, stale=5, never_old=2, never_new=2)
        answer = await box.command(BOB, "digest retention")
        assert answer.status == 200
        assert "retention digest" in answer.text.lower()
        [posted] = await box.slack.wait_for("chat.postMessage", timeout=10)
        text = posted.params["text"]
        assert "7 contacts past the retention period" in text  # 5 stale + 2 never active and old
        blocks_text = str(posted.params["blocks"])
        assert "Never active, added before cutoff*\\n2" in blocks_text
        assert "Inactive > 1095 days*\\n5" in blocks_text
        assert "Purge 7 stale contacts" in blocks_text
        # Only masked addresses reach the channel.
        assert "s***@example.com" in blocks_text and "stale0@example.com" not in blocks_text
        # Segment breakdown: stale0/2/4 in segment 1, stale1/3 in segment 2, never-active ones in none.
        assert "Segment 1: 3" in blocks_text and "Segment 2: 2" in blocks_text and "(no segment): 2" in blocks_text

        cutoff = (clock() - timedelta(days=RETENTION)).strftime("%Y-%m-%d %H:%M:%S")
        lists = [c for c in box.mautic.calls if c.method == "GET" and c.path == "/api/contacts"]
        count_call = _where_params(lists[0].query_string)
        assert count_call == {
            "where[0][col]": "id", "where[0][expr]": "orX",  # a top-level orX needs a col (CommonRepository)
            "where[0][val][0][col]": "last_active", "where[0][val][0][expr]": "lt",
            "where[0][val][0][val]": cutoff,
            "where[0][val][1][expr]": "andX",
            "where[0][val][1][val][0][col]": "last_active", "where[0][val][1][val][0][expr]": "isNull",
            "where[0][val][1][val][1][col]": "date_added", "where[0][val][1][val][1][expr]": "lt",
            "where[0][val][1][val][1][val]": cutoff,
        }
        assert dict(parse_qsl(lists[0].query_string))["limit"] == "1"  # a count, not a download
        never = _where_params(lists[1].query_string)
        assert never == {"where[0][col]": "last_active", "where[0][expr]": "isNull",
                         "where[1][col]": "date_added", "where[1][expr]": "lt", "where[1][val]": cutoff}
        # No request ever asked for everything (limit=0) or for an unfiltered page of contacts.
        for call in lists:
            params = dict(parse_qsl(call.query_string))
            assert params.get("limit") != "0"
            assert "where[0][expr]" in params or "where[0][col]" in params
        # Per-contact look-ups (segments) went only to stale contacts.
        looked_up = {int(c.path.split("/")[3]) for c in box.mautic.calls if c.path.endswith("/segments")}
        assert looked_up == set(seeded.purgeable)


async def test_digest_command_is_for_approvers_and_checks_its_argument(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        refused = await box.command(MALLORY, "digest retention")
        assert "Only privacy approvers" in refused.text
        refused = await box.command(ALICE, "digest compliance")
        assert "Only privacy approvers" in refused.text
        bad = await box.command(BOB, "digest weekly")
        assert "digest retention" in bad.text and "digest compliance" in bad.text
        assert not box.slack.calls_to("chat.postMessage")


async def test_nothing_stale_posts_no_purge_button(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seed_contacts(box.mautic, clock(), active=3, stale=0, never_old=0, never_new=1)
        await box.command(BOB, "digest retention")
        [posted] = await box.slack.wait_for("chat.postMessage", timeout=10)
        assert "0 contacts past" in posted.params["text"]
        assert "digest_purge_file" not in str(posted.params["blocks"])
