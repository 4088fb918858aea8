"""`python -m bot setup mautic` against the Mautic stand-in and the real bot on loopback.

The stand-in's `/api/hooks` follows Mautic 5.x WebhookBundle (Controller/Api/WebhookApiController.php,
Entity/Webhook.php) and ApiBundle/Controller/CommonApiController.php; see the section in sandbox/mautic.py.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.mautic import MauticClient
from bot.settings import Settings
from bot.setup.mautic import HOOK_EVENTS, setup_mautic
from sandbox.harness import sandbox
from sandbox.mautic import FakeMautic
from tests.helpers import test_tuning


def _settings(box: Any, **update: Any) -> Settings:
    return box.settings.model_copy(update={"public_url": box.url, **update})  # type: ignore[no-any-return]


def _hook_writes(mautic: FakeMautic) -> list[str]:
    return [f"{c.method} {c.path}" for c in mautic.calls if c.path.startswith("/api/hooks") and c.method != "GET"]


async def test_creates_one_webhook_then_changes_nothing(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning()) as box:
        settings = _settings(box)
        assert await setup_mautic(settings) == 0
        first = capsys.readouterr().out
        assert await setup_mautic(settings) == 0
        second = capsys.readouterr().out
        await box.jobs_idle()

        (hook,) = box.mautic.hooks.values()
        assert hook["webhookUrl"] == f"{box.url}/mautic/webhook"
        assert sorted(hook["triggers"]) == sorted(HOOK_EVENTS)
        assert hook["secret"] == settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
        assert hook["isPublished"] is True
        assert _hook_writes(box.mautic) == ["POST /api/hooks/new"]  # the second run wrote nothing
        assert "webhook created" in first and "nothing to change" in second
        assert first.count("test delivery arrived") == 1 and second.count("test delivery arrived") == 1
        assert "[missing]" not in first
        assert hook["secret"] not in first + second  # the secret is never printed
        assert box.slack.messages(box.channel) == []  # the test delivery carries no events: nothing to act on


async def test_repairs_a_drifted_webhook_in_place(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning()) as box:
        settings = _settings(box)
        async with aiohttp.ClientSession() as http:
            client = MauticClient(http, box.mautic.base_url, username="api", password="secret")
            await client.create_hook({"name": "Privacy", "webhookUrl": f"{box.url}/mautic/webhook",
                                      "secret": "old", "isPublished": False,
                                      "triggers": ["mautic.form_on_submit", "mautic.page_on_hit"]})
        assert await setup_mautic(settings) == 0
        out = capsys.readouterr().out
        (hook,) = box.mautic.hooks.values()
        assert sorted(hook["triggers"]) == sorted(HOOK_EVENTS)  # page hits dropped: PUT replaces triggers
        assert hook["secret"] == settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
        assert hook["isPublished"] is True and hook["name"] == "Privacy"  # the operator's name is kept
        assert "updated: secret, events, published" in out
        assert _hook_writes(box.mautic)[-1] == f"PUT /api/hooks/{hook['id']}/edit"


async def test_names_missing_permissions_and_leaves_webhooks_alone(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning()) as box:
        box.mautic.role_permissions = {"lead:leads:full", "form:forms:viewown"}
        assert await setup_mautic(_settings(box)) == 1
        out = capsys.readouterr().out
        assert "[ok] view contacts" in out and "[ok] delete contacts" in out
        assert "[missing] view forms: grant form:forms:viewother" in out
        assert "[missing] view segments: grant lead:lists:viewother" in out
        assert "webhook:webhooks:create" in out
        assert box.mautic.hooks == {} and _hook_writes(box.mautic) == []


async def test_dry_run_changes_nothing(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning()) as box:
        assert await setup_mautic(_settings(box), dry_run=True) == 0
        out = capsys.readouterr().out
        assert "would create webhook" in out and "would send one signed test delivery" in out
        assert box.mautic.hooks == {} and _hook_writes(box.mautic) == []


async def test_a_secret_mismatch_fails_the_test_delivery(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning()) as box:
        assert await setup_mautic(_settings(box, mautic_webhook_secret=SecretStr("not-what-the-bot-has"))) == 1
        assert "HTTP 401: the bot rejected the signature" in capsys.readouterr().out


# ---- the stand-in's /api/hooks, quirks included ------------------------------------------------------


async def _call(http: aiohttp.ClientSession, fake: FakeMautic, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": aiohttp.encode_basic_auth("api", "secret")}
    async with http.request(method, fake.base_url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_stand_in_hooks_api_behaves_as_mautic() -> None:
    async with FakeMautic() as fake, aiohttp.ClientSession() as http:
        assert await _call(http, fake, "GET", "/api/hooks") == (200, {"total": 0, "hooks": []})  # empty: a list
        status, bad = await _call(http, fake, "POST", "/api/hooks/new", {"webhookUrl": "not a url"})
        assert status == 400 and set(bad["errors"][0]["details"]) == {"name", "webhookUrl"}

        status, created = await _call(http, fake, "POST", "/api/hooks/new",
                                      {"name": "B", "webhookUrl": "https://bot.example/mautic/webhook",
                                       "triggers": ["mautic.form_on_submit"]})
        hook = created["hook"]
        assert status == 201 and hook["isPublished"] is True
        assert len(hook["secret"]) == 64  # WebhookModel::saveEntity generates one when none is given

        _, patched = await _call(http, fake, "PATCH", f"/api/hooks/{hook['id']}/edit",
                                 {"triggers": ["mautic.email_on_send"]})
        assert patched["hook"]["triggers"] == ["mautic.form_on_submit", "mautic.email_on_send"]  # PATCH adds
        assert patched["hook"]["secret"] == hook["secret"]

        _, put = await _call(http, fake, "PUT", f"/api/hooks/{hook['id']}/edit",
                             {"name": "B", "webhookUrl": "https://bot.example/mautic/webhook",
                              "triggers": ["mautic.lead_post_delete"]})
        assert put["hook"]["triggers"] == ["mautic.lead_post_delete"]  # PUT replaces
        assert put["hook"]["secret"] != hook["secret"]  # and clears what it leaves out: a new secret
        assert put["hook"]["isPublished"] is False

        assert (await _call(http, fake, "PATCH", "/api/hooks/99/edit", {"name": "x"}))[0] == 404
        status, _ = await _call(http, fake, "PUT", "/api/hooks/99/edit",
                                {"name": "A", "webhookUrl": "https://a.example/x"})
        assert status == 201  # PUT of a missing id creates one
        _, listed = await _call(http, fake, "GET", "/api/hooks")
        assert listed["total"] == 2 and list(listed["hooks"]) == ["2", "1"]  # keyed by id, ordered by name

        fake.role_permissions = {"webhook:webhooks:viewown"}
        assert (await _call(http, fake, "GET", "/api/hooks"))[0] == 200
        assert (await _call(http, fake, "POST", "/api/hooks/new", {"name": "C"}))[0] == 403
        _, checked = await _call(http, fake, "POST", "/api/users/1/permissioncheck",
                                 {"permissions": ["webhook:webhooks:view", "webhook:webhooks:create"]})
        assert checked == {"webhook:webhooks:view": True, "webhook:webhooks:create": False}


async def test_the_command_line_dry_run(sqlite_url: str, tmp_path: Any) -> None:
    import asyncio
    import os
    import sys

    from tests.helpers import child_env

    async with sandbox(sqlite_url, tuning=test_tuning(), start_bot=False) as box:
        s = box.settings
        env = child_env({
            "MAUTIC_BASE_URL": box.mautic.base_url, "MAUTIC_USERNAME": "api", "MAUTIC_PASSWORD": "secret",
            "MAUTIC_WEBHOOK_SECRET": s.mautic_webhook_secret.get_secret_value(),  # type: ignore[union-attr]
            "PUBLIC_URL": "https://bot.acme.example",
        }, path=os.environ.get("PATH", "/usr/bin"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "setup", "mautic", "--dry-run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, out.decode() + err.decode()
        assert "would create webhook 'Mautic Privacy Bot' → https://bot.acme.example/mautic/webhook" in out.decode()
        assert box.mautic.hooks == {}

        del env["PUBLIC_URL"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "setup", "mautic", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 2
        assert err.decode().strip() == "configuration error: PUBLIC_URL is required but not set"
