"""``python -m bot setup slack``: manifest.yml with PUBLIC_URL filled in, and with SLACK_CONFIG_TOKEN the app
created (``apps.manifest.create``) or updated (``apps.manifest.update``, which replaces the whole configuration).

manifest.yml stays the one source: this reads it and changes only the request URLs (or, for Socket Mode,
removes them and sets ``settings.socket_mode_enabled``: Slack refuses interactivity with neither).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import ConfigError, Settings

PLACEHOLDER_URL = "https://privacy-bot.example.com"


def manifest_path() -> Path:
    """manifest.yml of the checkout (or the image's /app); else the one in the working directory."""
    beside = Path(__file__).resolve().parents[2] / "manifest.yml"
    return beside if beside.is_file() else Path("manifest.yml")


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    data = yaml.safe_load((path or manifest_path()).read_text(encoding="utf-8"))
    assert isinstance(data, dict), "manifest.yml must be a mapping"
    return data


def render_manifest(manifest: dict[str, Any], *, public_url: str | None, socket_mode: bool) -> dict[str, Any]:
    """The manifest for this installation (pure)."""
    out = copy.deepcopy(manifest)
    features, settings = out.setdefault("features", {}), out.setdefault("settings", {})
    commands = features.get("slash_commands") or []
    # Every place Slack would POST to: interactivity and the event subscriptions (App Home).
    endpoints = [section for section in (settings.get("interactivity"), settings.get("event_subscriptions"))
                 if isinstance(section, dict)]
    if socket_mode:
        settings["socket_mode_enabled"] = True
        for command in commands:
            command.pop("url", None)
        for endpoint in endpoints:
            endpoint.pop("request_url", None)
        return out
    if not public_url:
        raise ConfigError("PUBLIC_URL is required (or set SLACK_APP_TOKEN for Socket Mode)")
    settings["socket_mode_enabled"] = False
    for command in commands:
        command["url"] = str(command.get("url", "")).replace(PLACEHOLDER_URL, public_url)
    for endpoint in endpoints:
        if "request_url" in endpoint:
            endpoint["request_url"] = str(endpoint["request_url"]).replace(PLACEHOLDER_URL, public_url)
    return out


async def setup_slack(settings: Settings) -> int:
    socket_mode = settings.slack_app_token is not None and bool(settings.slack_app_token.get_secret_value())
    manifest = render_manifest(load_manifest(), public_url=settings.public_url, socket_mode=socket_mode)
    if settings.slack_config_token is None:
        print(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), end="")
        print("# Paste this at https://api.slack.com/apps → Create New App → From an app manifest,\n"
              "# or set SLACK_CONFIG_TOKEN (Your Apps → Your App Configuration Tokens) to let this command do it.")
        return 0
    client = AsyncWebClient(token=settings.slack_config_token.get_secret_value(), base_url=settings.slack_api_base)
    body = json.dumps(manifest)
    try:
        if settings.slack_app_id:
            answer = await client.apps_manifest_update(app_id=settings.slack_app_id, manifest=body)
        else:
            answer = await client.apps_manifest_create(manifest=body)
    except SlackApiError as exc:
        print(f"[FAIL] slack: {exc.response.get('error')}")
        for problem in exc.response.get("errors") or []:
            print(f"  {problem.get('pointer')}: {problem.get('message')}")
        if exc.response.get("error") in ("token_expired", "invalid_auth"):
            print("  configuration tokens last 12 hours: create a new one under Your App Configuration Tokens")
        return 1
    data: dict[str, Any] = dict(answer.data) if isinstance(answer.data, dict) else {}
    for line in next_steps(data, updated=bool(settings.slack_app_id), socket_mode=socket_mode):
        print(line)
    return 0


def next_steps(answer: dict[str, Any], *, updated: bool, socket_mode: bool) -> list[str]:
    app_id = answer.get("app_id")
    if updated:
        lines = [f"[ok] app {app_id} updated from manifest.yml"]
        if answer.get("permissions_updated"):
            lines.append("Its scopes changed: reinstall it (Install App → Reinstall to Workspace) to grant them.")
        return lines
    credentials = answer.get("credentials") or {}
    lines = [
        f"[ok] app {app_id} created from manifest.yml",
        f"1. Put SLACK_APP_ID={app_id} in .env, so the next run updates this app instead of creating another.",
        f"2. Put SLACK_SIGNING_SECRET={credentials.get('signing_secret', '<Basic Information → Signing Secret>')}"
        " in .env.",
        f"3. Install the app: {answer.get('oauth_authorize_url') or 'https://api.slack.com/apps → Install App'}; "
        "copy the Bot User OAuth Token (xoxb-…) to SLACK_BOT_TOKEN.",
        "4. Invite the bot to the privacy channel (/invite @privacy-bot) and put its ID in PRIVACY_CHANNEL.",
    ]
    if socket_mode:
        lines.append("5. Basic Information → App-Level Tokens: create one with connections:write for SLACK_APP_TOKEN.")
    return lines
