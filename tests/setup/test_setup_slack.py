"""`python -m bot setup slack`: manifest.yml rendered for this installation, and the app created or updated
through apps.manifest.create / apps.manifest.update against the Slack stand-in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from bot.settings import Settings, load_settings
from bot.setup.slack import PLACEHOLDER_URL, load_manifest, render_manifest, setup_slack
from sandbox.slack import DEFAULT_SCOPES, FakeSlack

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "slack-app-manifest.json").read_text(encoding="utf-8"))


def _valid(manifest: dict[str, Any]) -> list[str]:
    cls = jsonschema.validators.validator_for(SCHEMA)
    return [e.message for e in cls(SCHEMA).iter_errors(manifest)]


def test_public_url_fills_every_request_url() -> None:
    manifest = render_manifest(load_manifest(), public_url="https://bot.acme.example", socket_mode=False)
    assert manifest["features"]["slash_commands"][0]["url"] == "https://bot.acme.example/slack/events"
    assert manifest["settings"]["interactivity"]["request_url"] == "https://bot.acme.example/slack/events"
    assert PLACEHOLDER_URL not in json.dumps(manifest)
    assert _valid(manifest) == []


def test_socket_mode_manifest_has_no_request_urls() -> None:
    manifest = render_manifest(load_manifest(), public_url=None, socket_mode=True)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "url" not in manifest["features"]["slash_commands"][0]
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert "://" not in json.dumps({k: v for k, v in manifest.items() if k != "display_information"})
    assert _valid(manifest) == []


def _settings(slack: FakeSlack, **values: Any) -> Settings:
    return load_settings(_env_file=None, slack_api_url=slack.api_url, public_url="https://bot.acme.example",
                         **values)


async def test_without_a_config_token_it_prints_the_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeSlack() as slack:
        assert await setup_slack(_settings(slack)) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == render_manifest(load_manifest(), public_url="https://bot.acme.example", socket_mode=False)


async def test_creates_the_app_then_updates_it(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeSlack() as slack:
        token = SecretStr(slack.config_token)
        assert await setup_slack(_settings(slack, slack_config_token=token)) == 0
        created = capsys.readouterr().out
        (app_id,) = slack.apps
        assert f"SLACK_APP_ID={app_id}" in created and f"SLACK_SIGNING_SECRET=ss-{app_id}" in created
        assert slack.apps[app_id]["settings"]["interactivity"]["request_url"] == "https://bot.acme.example/slack/events"

        socket = _settings(slack, slack_config_token=token, slack_app_id=app_id, slack_app_token=SecretStr("xapp-1"))
        assert await setup_slack(socket) == 0
        assert f"app {app_id} updated" in capsys.readouterr().out
        assert list(slack.apps) == [app_id]  # updated, not a second app
        assert slack.apps[app_id]["settings"]["socket_mode_enabled"] is True
        assert [c.method for c in slack.calls] == ["apps.manifest.create", "apps.manifest.update"]

        wrong = _settings(slack, slack_config_token=SecretStr("xoxb-test-token"))  # the bot token will not do
        assert await setup_slack(wrong) == 1
        assert "invalid_auth" in capsys.readouterr().out


async def test_stand_in_refuses_interactivity_without_a_url_or_socket_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = load_manifest()
    del broken["settings"]["interactivity"]["request_url"]
    monkeypatch.setattr("bot.setup.slack.load_manifest", lambda: broken)
    async with FakeSlack() as slack:
        settings = _settings(slack, slack_config_token=SecretStr(slack.config_token))
        assert await setup_slack(settings) == 1
        assert slack.apps == {}
    out = capsys.readouterr().out
    assert "invalid_manifest" in out and "/settings/interactivity: Interactivity requires a Request URL" in out


# ---- the manifest's scopes are exactly those the code uses -------------------------------------------

# Web API method → the bot scopes it needs (docs.slack.dev/reference/methods/<method>, "Scopes").
# chat.postMessage also lists chat:write.public: posting in a public channel the bot was not invited to.
METHOD_SCOPES: dict[str, set[str]] = {
    "chat.postMessage": {"chat:write", "chat:write.public"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "files.getUploadURLExternal": {"files:write"},  # the files v2 upload, step by step (messenger.upload)
    "files.completeUploadExternal": {"files:write"},
    "files.delete": {"files:write"},  # Slack-delivered access packages, on expiry and on erasure
    "usergroups.users.list": {"usergroups:read"},
    # A keyed post looks for its message after a crash; the privacy channel may be public or private.
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "views.open": set(),
    "views.update": set(),
    "views.publish": set(),
    "auth.test": set(),
    "apps.manifest.create": set(),  # the configuration token, not the bot's
    "apps.manifest.update": set(),
}
# Features rather than method calls: the /privacy slash command.
FEATURE_SCOPES = {"commands"}


def _methods_the_code_calls() -> set[str]:
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found |= set(re.findall(r"\.call\(\s*\"([a-z]+\.[A-Za-z.]+)\"", text))  # messenger.call("x.y")
            for name in re.findall(r"\b(?:client|slack)\.(chat|views|usergroups|files|auth|users|conversations|"
                                   r"reactions|apps)_([A-Za-z_0-9]+)\b", text):  # client.views_open, slack.…
                found.add(name[0] + "." + name[1].replace("_", ".").replace(".v2", "_v2"))
    return found


def test_manifest_scopes_are_exactly_those_the_code_uses() -> None:
    methods = _methods_the_code_calls()
    assert {"chat.postMessage", "usergroups.users.list", "files.delete"} <= methods  # the scan sees calls
    unknown = methods - METHOD_SCOPES.keys()
    assert not unknown, f"add the scopes of {sorted(unknown)} to METHOD_SCOPES (and to manifest.yml if any)"
    used = set().union(*(METHOD_SCOPES[m] for m in methods)) | FEATURE_SCOPES
    manifest_scopes = load_manifest()["oauth_config"]["scopes"]["bot"]
    assert sorted(manifest_scopes) == sorted(used)
    assert sorted(DEFAULT_SCOPES) == sorted(used)  # the Slack stand-in grants what the manifest asks for


async def test_the_command_line_prints_the_manifest(tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    from tests.helpers import child_env

    env = child_env({"PUBLIC_URL": "https://bot.acme.example"}, path=os.environ.get("PATH", "/usr/bin"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "setup", "slack", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    printed = yaml.safe_load(out.decode())
    assert printed["settings"]["interactivity"]["request_url"] == "https://bot.acme.example/slack/events"
