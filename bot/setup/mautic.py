"""``python -m bot setup mautic``: the API user's permissions, the webhook, one test delivery.

Mautic sources this follows (5.x): UserBundle/Controller/Api/UserApiController.php (``/api/users/self``,
``/api/users/{id}/permissioncheck``), WebhookBundle/Controller/Api/WebhookApiController.php and
WebhookBundle/Entity/Webhook.php (``/api/hooks``: a PUT replaces the triggers, a PATCH only adds), and
LeadBundle/FormBundle/WebhookBundle ``Security/Permissions`` for the permission names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.intake.events import CONTACT_DELETED, EMAIL_SEND, FORM_SUBMIT, SUBSCRIPTION_CHANGED, sign
from bot.mautic import MauticClient, MauticError
from bot.settings import ConfigError, Settings

HOOK_NAME = "Mautic Privacy Bot"
HOOK_DESCRIPTION = "Consent evidence, withdrawals and deletions for the privacy bot (set up by `setup mautic`)."
# The four events the README's Mautic set-up lists, in that order.
HOOK_EVENTS = (FORM_SUBMIT, SUBSCRIPTION_CHANGED, CONTACT_DELETED, EMAIL_SEND)

# What the bot does → the permissions of the API user's role it needs (bundle:level:permission). "other" because
# the bot acts on contacts, forms and segments that other users created.
NEEDED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("view contacts", ("lead:leads:viewother",)),
    ("edit contacts", ("lead:leads:editother",)),
    ("delete contacts", ("lead:leads:deleteother",)),
    ("view forms", ("form:forms:viewother",)),
    ("view segments", ("lead:lists:viewother",)),
    # ListApiController::addLeadAction: edit access to the contact and the segment among the user's lists.
    ("segment membership", ("lead:leads:editother", "lead:lists:viewother")),
    # CommonStatsSubscriber: email_stats rows are restricted by the contact permission.
    ("stats", ("lead:leads:viewother",)),
    ("manage webhooks (this set-up)", ("webhook:webhooks:viewother", "webhook:webhooks:create",
                                       "webhook:webhooks:editother", "webhook:webhooks:publishown")),
)


def desired_hook(settings: Settings, name: str = HOOK_NAME, description: str = HOOK_DESCRIPTION) -> dict[str, Any]:
    assert settings.public_url is not None and settings.mautic_webhook_secret is not None
    return {
        "name": name,
        "description": description,
        "webhookUrl": f"{settings.public_url}/mautic/webhook",
        "secret": settings.mautic_webhook_secret.get_secret_value(),
        "triggers": list(HOOK_EVENTS),
        "isPublished": True,
    }


def _is_published(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What an existing webhook lacks, by field name (the secret's value never printed)."""
    found = []
    if current.get("webhookUrl") != wanted["webhookUrl"]:
        found.append("webhookUrl")
    if current.get("secret") != wanted["secret"]:
        found.append("secret")
    if set(current.get("triggers") or []) != set(wanted["triggers"]):
        found.append("events")
    if not _is_published(current.get("isPublished")):
        found.append("published")
    return found


def pick_hook(hooks: list[dict[str, Any]], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The webhook to keep: one pointing at our URL, else one with our name (PUBLIC_URL changed)."""
    for match in (lambda h: h.get("webhookUrl") == wanted["webhookUrl"], lambda h: h.get("name") == HOOK_NAME):
        found = sorted((h for h in hooks if match(h)), key=lambda h: int(h.get("id") or 0))
        if found:
            return found[0]
    return None


async def check_permissions(mautic: MauticClient) -> list[str]:
    """Print one line per capability; return what is missing."""
    me = await mautic.get_self()
    user_id = me.get("id")
    if not isinstance(user_id, int) and not str(user_id or "").isdigit():
        print("[??] permissions: the API user has no id (an OAuth2 client?); check its role by hand")
        return []
    wanted = sorted({p for _, perms in NEEDED for p in perms})
    granted = await mautic.check_permissions(int(str(user_id)), wanted)
    missing: list[str] = []
    for capability, perms in NEEDED:
        lacking = [p for p in perms if not granted.get(p, False)]
        print(f"[{'ok' if not lacking else 'missing'}] {capability}" + (f": grant {', '.join(lacking)}"
                                                                         if lacking else ""))
        missing += [p for p in lacking if p not in missing]
    if missing:
        print(f"Give the role of Mautic user {me.get('username')!r} these permissions (Settings → Roles): "
              + ", ".join(missing))
    return missing


async def setup_mautic(settings: Settings, *, dry_run: bool = False) -> int:
    settings.require("mautic_base_url", "mautic_webhook_secret", "public_url")
    if not (settings.mautic_username or settings.mautic_client_id):
        raise ConfigError("MAUTIC_USERNAME/MAUTIC_PASSWORD or MAUTIC_CLIENT_ID/MAUTIC_CLIENT_SECRET is required")
    from bot.app import build_mautic_client

    wanted = desired_hook(settings)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        mautic = build_mautic_client(settings, http)
        try:
            missing = await check_permissions(mautic)
            if any(p.startswith("webhook:") for p in missing):
                print("stopping: the webhook cannot be managed without those permissions")
                return 1
            ok = await _ensure_hook(mautic, wanted, dry_run=dry_run)
        except MauticError as exc:
            print(f"[FAIL] mautic: {type(exc).__name__}: {exc}")
            return 1
        if dry_run:
            print(f"would send one signed test delivery to {wanted['webhookUrl']}")
            return 1 if missing or not ok else 0
        delivered = await send_test_delivery(http, wanted["webhookUrl"], wanted["secret"], settings.mautic_base_url)
    return 0 if ok and delivered and not missing else 1


async def _ensure_hook(mautic: MauticClient, wanted: dict[str, Any], *, dry_run: bool) -> bool:
    hooks = await mautic.list_hooks()
    current = pick_hook(hooks, wanted)
    events = ", ".join(HOOK_EVENTS)
    if current is None:
        if dry_run:
            print(f"would create webhook {HOOK_NAME!r} → {wanted['webhookUrl']} (events: {events}; published)")
            return True
        created = await mautic.create_hook(wanted)
        print(f"[ok] webhook created: id {created.get('id')} → {wanted['webhookUrl']} (events: {events})")
        return not differences(created, wanted)
    changes = differences(current, wanted)
    if not changes:
        print(f"[ok] webhook {current.get('id')} is already set up → {wanted['webhookUrl']}; nothing to change")
        return True
    if dry_run:
        print(f"would update webhook {current.get('id')}: {', '.join(changes)}")
        return True
    # PUT replaces every field: keep the operator's name and description, drop events the bot does not use.
    body = {**wanted, "name": current.get("name") or HOOK_NAME,
            "description": current.get("description") or HOOK_DESCRIPTION,
            "eventsOrderbyDir": current.get("eventsOrderbyDir")}
    updated = await mautic.replace_hook(int(current["id"]), body)
    print(f"[ok] webhook {current.get('id')} updated: {', '.join(changes)}")
    return not differences(updated, wanted)


async def send_test_delivery(http: aiohttp.ClientSession, url: str, secret: str, mautic_url: str | None) -> bool:
    """POST one signed delivery shaped like Mautic's "Send Test Payload" with no events (only its top-level
    ``timestamp``): the bot stores it and acts on nothing. Sent from here, it proves PUBLIC_URL reaches the bot
    and that both sides share the secret; Mautic's own button (Settings → Webhooks) proves Mautic reaches it."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    raw = json.dumps({"timestamp": now}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Webhook-Signature": sign(raw, secret),
               "X-Origin-Base-URL": mautic_url or ""}
    try:
        async with http.post(url, data=raw, headers=headers, allow_redirects=False) as response:
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"[FAIL] test delivery: {url} is not reachable from here ({type(exc).__name__})")
        return False
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = {}
    if 200 <= status < 300 and isinstance(answer, dict) and answer.get("ok") is True:
        print(f"[ok] test delivery arrived: delivery {answer.get('delivery')}")
        return True
    reason = {401: "the bot rejected the signature: it runs with another MAUTIC_WEBHOOK_SECRET",
              413: "the bot refused the size", 404: "no bot answers at that path (is PUBLIC_URL right?)"}
    detail = reason.get(status, "Mautic would drop events on this answer" if 300 <= status < 400 else "")
    print(f"[FAIL] test delivery: HTTP {status}" + (f": {detail}" if detail else ""))
    return False
