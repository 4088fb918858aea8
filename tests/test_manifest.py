"""manifest.yml is a valid Slack app manifest for the bot.

Validated against SchemaStore's Slack app manifest schema, vendored in tests/schemas/ (see its README).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = ROOT / "manifest.yml"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "slack-app-manifest.json"

# users:read left with issue 13: no code calls users.* (tests/setup/test_setup_slack.py holds the exact set).
REQUIRED_BOT_SCOPES = {"chat:write", "commands", "usergroups:read"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "manifest.yml must be a YAML mapping"
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _privacy_command(manifest: dict[str, Any]) -> dict[str, Any]:
    commands = manifest.get("features", {}).get("slash_commands", [])
    matches = [c for c in commands if c.get("command") == "/privacy"]
    assert len(matches) == 1, f"expected exactly one /privacy slash command, got {commands!r}"
    return matches[0]


def test_manifest_validates_against_schemastore_schema(
    manifest: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    assert _errors(validator, manifest) == []


def test_privacy_slash_command(manifest: dict[str, Any]) -> None:
    command = _privacy_command(manifest)
    assert command["url"].startswith("https://")
    assert command["url"].endswith("/slack/events")
    assert command["description"]
    assert command["should_escape"] is False


def test_interactivity_uses_the_command_url(manifest: dict[str, Any]) -> None:
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith("/slack/events")
    assert interactivity["request_url"] == _privacy_command(manifest)["url"]


def test_bot_user_and_settings(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["bot_user"]["display_name"] == "privacy-bot"
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["org_deploy_enabled"] is False


def test_required_bot_scopes(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes)), "duplicate bot scopes"
    missing = REQUIRED_BOT_SCOPES - set(scopes)
    assert not missing, f"missing bot scopes: {sorted(missing)}"


def _with_spaced_display_name(m: dict[str, Any]) -> None:
    m["features"]["bot_user"]["display_name"] = "privacy bot"


def _without_display_name(m: dict[str, Any]) -> None:
    del m["features"]["bot_user"]["display_name"]


def _with_unknown_setting(m: dict[str, Any]) -> None:
    m["settings"]["not_a_real_setting"] = True


def _with_long_name(m: dict[str, Any]) -> None:
    m["display_information"]["name"] = "x" * 36


@pytest.mark.parametrize(
    ("breaker", "path"),
    [
        (_with_spaced_display_name, "features/bot_user/display_name"),
        (_without_display_name, "features/bot_user"),
        (_with_unknown_setting, "settings"),
        (_with_long_name, "display_information/name"),
    ],
)
def test_validator_rejects_broken_copies(
    manifest: dict[str, Any], validator: jsonschema.protocols.Validator, breaker: Any, path: str
) -> None:
    broken = copy.deepcopy(manifest)
    breaker(broken)
    errors = _errors(validator, broken)
    assert errors, f"{breaker.__name__}: the schema accepted a broken manifest"
    assert any(e.startswith(f"{path}:") for e in errors), errors


def test_app_home_tab_and_its_event(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    assert events["bot_events"] == ["app_home_opened"]  # needs no scope of its own
    assert events["request_url"].endswith("/slack/events")
