"""Settings: the public names, parsing, and one clear line for a missing or malformed value."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

import pytest

from bot.settings import ConfigError, load_settings, parse_duration
from tests.helpers import child_env


def test_comma_lists_durations_and_url_mapping() -> None:
    settings = load_settings(
        _env_file=None,
        privacy_approvers="U0BOB, S0DPO",
        approval_ttl="36h",
        consent_fields="consent,  newsletter_ok",
        public_url="https://privacy.example.com/",
    )
    assert settings.privacy_approvers == ["U0BOB", "S0DPO"]
    assert settings.approval_ttl == timedelta(hours=36)
    assert settings.consent_fields == ["consent", "newsletter_ok"]
    assert settings.external_url == "https://privacy.example.com"
    assert settings.privacy_requesters == []


def test_defaults_match_the_documented_contract() -> None:
    settings = load_settings(_env_file=None)
    assert settings.slack_api_url == "https://slack.com/api"
    assert settings.database_url == "sqlite:///./privacy-bot.db"
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)  # noqa: S104
    assert settings.external_url == "http://localhost:3000"
    assert settings.webhook_max_bytes == 5 * 1024 * 1024
    assert settings.consent_fields == ["consent", "gdpr_consent", "marketing_consent"]
    assert settings.retention_days == 1095
    assert settings.digest_cron == "0 9 * * 1"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PRIVACY_CHANNEL": "#privacy"}, "PRIVACY_CHANNEL"),
        ({"PRIVACY_APPROVERS": "bob"}, "PRIVACY_APPROVERS"),
        ({"PORT": "eighty"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"MAUTIC_BASE_URL": "mautic.example.com"}, "MAUTIC_BASE_URL"),
        ({"APPROVAL_TTL": "a week"}, "APPROVAL_TTL"),
    ],
)
def test_malformed_setting_names_itself(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    assert str(info.value).startswith(names)
    assert "\n" not in str(info.value)


def test_serve_requires_each_setting_by_name() -> None:
    settings = load_settings(_env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="s")
    with pytest.raises(ConfigError, match=r"^PRIVACY_CHANNEL is required"):
        settings.require_for_serve()
    bad_token = load_settings(
        _env_file=None, slack_bot_token="xoxp-user", slack_signing_secret="s", privacy_channel="C0PRIV",
        privacy_approvers="U0BOB", mautic_base_url="https://m.example.com", mautic_webhook_secret="w",
        bot_secret_key="4fafc6af54fdffd1b3868a8658cd085da6da002bfa2c6c34202cd145a1459659",
    )
    with pytest.raises(ConfigError, match="xoxb-"):
        bad_token.require_for_serve()


def test_parse_duration() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


async def test_start_up_with_missing_settings_prints_one_line_each(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Issue 13 changed this from "the first missing setting" to every one at once.
    env = child_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"})
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "serve"], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: {name} is required but not set"
        for name in ("PRIVACY_CHANNEL", "PRIVACY_APPROVERS", "MAUTIC_BASE_URL", "MAUTIC_WEBHOOK_SECRET",
                     "BOT_SECRET_KEY")
    ]
    assert "Traceback" not in result.stderr
