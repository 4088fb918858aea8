"""Sub-commands other than ``serve``: migrate, audit verify, audit contact, check, ropa."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.digests import ropa
from bot.digests.ropa import Ropa
from bot.mautic import MauticAuthError, MauticClient, explain_auth_error
from bot.policy import load_policy
from bot.settings import ConfigError, Settings
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import contact_ref, derive_key, entries_naming_contact, use_key, verify
from storage.migrate import current_heads, migrate


def _engine(settings: Settings) -> AsyncEngine:
    """The database engine with the audit ledger's key (from BOT_SECRET_KEY) registered."""
    engine = make_engine(settings.database_url)
    if settings.bot_secret_key is not None:
        use_key(engine, derive_key(settings.bot_secret_key.get_secret_value()))
    return engine


async def run_migrate(settings: Settings) -> int:
    engine = _engine(settings)
    try:
        await migrate(engine)
        (revision,) = await current_heads(engine)  # one chain, one head: `migrate` upgrades to "head"
    finally:
        await engine.dispose()
    print(f"database schema is up to date (revision {revision})")
    return 0


async def run_audit_verify(settings: Settings) -> int:
    settings.require("bot_secret_key")  # the chain is keyed: without the key nothing can be checked
    engine = _engine(settings)
    try:
        async with unit_of_work(make_session_factory(engine)) as session:
            result = await verify(session)
    finally:
        await engine.dispose()
    print(result.describe())
    return 0 if result.ok else 1


async def run_audit_contact(settings: Settings, contact_id: int) -> int:
    """List the ledger entries about one Mautic contact: the ledger names contacts only by keyed refs, so
    this needs BOT_SECRET_KEY to compute the ref of ``contact_id``."""
    settings.require("bot_secret_key")
    assert settings.bot_secret_key is not None
    engine = _engine(settings)
    try:
        async with unit_of_work(make_session_factory(engine)) as session:
            entries = await entries_naming_contact(session, contact_id)
    finally:
        await engine.dispose()
    ref = contact_ref(derive_key(settings.bot_secret_key.get_secret_value()), contact_id)
    print(f"{len(entries)} ledger entr{'y' if len(entries) == 1 else 'ies'} about Mautic contact {contact_id} "
          f"(ref {ref})")
    for entry in entries:
        print(f"#{entry.seq} {entry.at.isoformat(timespec='seconds')} {entry.action} by {entry.actor}"
              f"{f' on {entry.subject}' if entry.subject else ''}")
    return 0


def ropa_paths(out: str) -> tuple[Path, Path]:
    """``--out ropa`` or ``--out ropa.md`` → ropa.md and ropa.csv (``--out ropa.csv`` likewise)."""
    path = Path(out)
    base = path.with_suffix("") if path.suffix.lower() in (".md", ".csv") else path
    return base.with_name(base.name + ".md"), base.with_name(base.name + ".csv")


async def build_ropa(settings: Settings) -> Ropa:
    """The record of processing from Mautic, the database and the policy file (no Slack needed)."""
    from bot.app import build_mautic_client

    engine = make_engine(settings.database_url)
    try:
        async with aiohttp.ClientSession() as http:
            mautic = build_mautic_client(settings, http)
            policy = load_policy(settings.privacy_policy_file, settings.consent_fields,
                                 controller=settings.privacy_controller, contact=settings.privacy_contact)
            inputs = await ropa.gather(mautic, make_session_factory(engine), settings, policy, datetime.now(UTC))
    finally:
        await engine.dispose()
    return ropa.build(inputs)


def run_ropa(settings: Settings, out: str) -> int:
    """`python -m bot ropa --out FILE`: write the record as Markdown and CSV; one line per file and the gaps."""
    if settings.mautic_base_url is None:
        print("configuration error: MAUTIC_BASE_URL is required to read the forms", file=sys.stderr)
        return 2
    record = asyncio.run(build_ropa(settings))
    markdown, table = ropa_paths(out)
    markdown.write_text(ropa.to_markdown(record), encoding="utf-8")
    table.write_text(ropa.to_csv(record), encoding="utf-8", newline="")
    print(f"wrote {markdown} and {table}: {len(record.purposes)} purpose(s), {len(record.forms)} form(s)")
    for gap in record.gaps:
        print(f"[gap] {gap}")
    print(f"DPIA screening: {record.dpia_verdict}")
    return 0


async def run_check(settings: Settings) -> int:
    """One line per check; exit 1 if any failed."""
    from bot.app import build_mautic_client, build_slack_client

    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"[{'ok' if passed else 'FAIL'}] {name}: {detail}")

    try:
        settings.require_for_serve()
        report("settings", True, "all required settings present")
    except ConfigError as exc:
        for problem in exc.problems:  # every one at once, not one per start
            report("settings", False, problem)
        return 1
    if os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
        report("environment", False,
               "SLACK_CLIENT_ID/SECRET are set: Bolt would switch to OAuth and drop the bot token")

    _check_access_summary(settings, report)

    engine = make_engine(settings.database_url)
    try:
        from storage.db import ping

        await ping(engine)
        report("database", True, "reachable")
    except Exception as exc:
        report("database", False, f"{type(exc).__name__}: {exc}")
    finally:
        await engine.dispose()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        try:
            auth = await build_slack_client(settings, http).auth_test()
            report("slack", True, f"auth.test ok as {auth.get('user')} in team {auth.get('team')}")
        except Exception as exc:
            report("slack", False, _reason(exc))
        mautic = build_mautic_client(settings, http)
        try:
            await mautic.ping()
            version = mautic.mautic_version
            found = f"Mautic {version.text}" if version else "no Mautic-Version header"
            report("mautic", True, f"authenticated API call to {settings.mautic_base_url} ok ({found})")
            if version is not None and not version.supported:
                report("mautic version", False, f"{version.text} is not a supported line (5.x, 6.x, 7.x)")
        except MauticAuthError as exc:
            report("mautic", False, explain_auth_error(exc))
        except Exception as exc:
            report("mautic", False, _reason(exc))
        else:
            await _check_segment(settings, mautic, report)
    return 0 if ok else 1


def _check_access_summary(settings: Settings, report: Callable[[str, bool, str], None]) -> None:
    """A warning, not a failure: the bot runs, but an access package would say "not configured" where the
    law asks for purposes, recipients, retention and the rest (Art. 15(1))."""
    from bot.policy import PolicyError, load_policy

    try:
        access = load_policy(settings.privacy_policy_file, settings.consent_fields).access
    except PolicyError as exc:
        report("policy file", False, str(exc))
        return
    if not access.configured:
        print("[warn] access summary: PRIVACY_POLICY_FILE has no `access_summary` section, so an access package's "
              "summary.html says \"not configured\" for purposes, categories, recipients, transfers, retention, "
              "source and automated decisions")
    elif missing := access.missing():
        print(f"[warn] access summary: `access_summary` leaves out {', '.join(missing)}; summary.html says "
              "\"not configured\" there")


async def _check_segment(settings: Settings, mautic: MauticClient, report: Callable[[str, bool, str], None]) -> None:
    """Mautic answers 403 when adding to an unpublished segment (ListApiController::addLeadAction)."""
    sid = settings.reconsent_segment_id
    if sid is None:
        return
    try:
        segment = await mautic.get_segment(sid)
    except Exception as exc:
        report("re-consent segment", False, _reason(exc))
        return
    if segment is None:
        report("re-consent segment", False, f"RECONSENT_SEGMENT_ID={sid}: no such segment in Mautic")
    elif not segment.get("isPublished"):
        report("re-consent segment", False, f"segment #{sid} is unpublished: Mautic answers 403 when the bot adds "
                                            "contacts to it. Publish it in Mautic (Segments → edit → Published).")
    else:
        report("re-consent segment", True, f"segment #{sid} exists and is published")


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return f"{type(exc).__name__}: {response.get('error')}"
    return f"{type(exc).__name__}: {exc}"
