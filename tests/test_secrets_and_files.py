"""Secrets stay out of reprs and errors, keys are strong, remote URLs are https, and what the bot keeps on
disk (the SQLite file, EXPORT_DIR) is private to it; leftover package files are swept at start."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.requests.execution import LEFTOVER_AGE_SECONDS, _sweep
from bot.settings import ConfigError, Settings, key_entropy_bits, load_settings
from sandbox.harness import sandbox
from storage.db import make_engine, ping
from tests.helpers import test_tuning

PASSWORD = "pg-s3cret-Pa55"
STRONG = "4fafc6af54fdffd1b3868a8658cd085da6da002bfa2c6c34202cd145a1459659"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_database_password_is_in_no_repr_and_no_error() -> None:
    settings = _settings(database_url=f"postgresql://bot:{PASSWORD}@db.internal/privacy", bot_secret_key=STRONG)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert STRONG not in repr(settings)
    with pytest.raises(ConfigError) as config_error:
        load_settings(_env_file=None, database_url=f"mysql://bot:{PASSWORD}@db/x")
    assert PASSWORD not in str(config_error.value) and "DATABASE_URL" in str(config_error.value)
    with pytest.raises(ValidationError) as validation_error:  # even straight from pydantic
        _settings(bot_secret_key=PASSWORD)
    assert PASSWORD not in str(validation_error.value)


@pytest.mark.parametrize("key", ["k", "secret", "0" * 64, "abab" * 20, "correct horse battery staple",
                                 "0123456789abcdef" * 3, "0123456789abcdef" * 4, "Tr0ub4dor&3-xyz!" * 4])
def test_a_weak_secret_key_is_refused_with_a_clear_message(key: str) -> None:
    with pytest.raises(ConfigError, match=r"BOT_SECRET_KEY: too weak: it needs at least 32 bytes of entropy"):
        load_settings(_env_file=None, bot_secret_key=key)


def test_keys_as_the_documented_tools_make_them_are_accepted() -> None:
    import base64
    import secrets

    for key in (secrets.token_hex(32), base64.b64encode(secrets.token_bytes(32)).decode(), secrets.token_urlsafe(32)):
        assert key_entropy_bits(key) >= 256
        assert load_settings(_env_file=None, bot_secret_key=key).bot_secret_key is not None


@pytest.mark.parametrize("url", ["http://mautic.example.com", "http://10.0.0.5:8080", "http://127.0.0.1.evil.example",
                                 "http://localhost.evil.example/"])
def test_plain_http_is_refused_off_loopback(url: str) -> None:
    for name in ("mautic_base_url", "public_url"):
        with pytest.raises(ConfigError, match=rf"{name.upper()}: must start with https://"):
            load_settings(_env_file=None, **{name: url})


@pytest.mark.parametrize("url", ["https://mautic.example.com", "http://127.0.0.1:8080", "http://localhost:3000",
                                 "http://[::1]:8080", "http://127.8.9.1"])
def test_https_or_loopback_is_accepted(url: str) -> None:
    assert load_settings(_env_file=None, mautic_base_url=url, public_url=url).mautic_base_url == url


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_file_is_created_private_and_an_existing_one_narrowed(tmp_path: Path) -> None:
    fresh, existing = tmp_path / "fresh.db", tmp_path / "existing.db"
    existing.touch(mode=0o644)
    os.chmod(existing, 0o644)
    for path in (fresh, existing):
        engine = make_engine(f"sqlite:///{path}")
        await ping(engine)
        await engine.dispose()
        assert _mode(path) == 0o600, path


def test_the_sweep_takes_stale_leftovers_and_keeps_linked_and_fresh_files(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir(mode=0o755)
    os.chmod(exports, 0o755)  # noqa: S103 - the permissive mode the bot must narrow
    stale = time.time() - LEFTOVER_AGE_SECONDS - 60
    files = {name: exports / name for name in (
        "request-1-aa.zip.sealed.partial", "request-2-bb.zip.sealed", "request-3-cc.zip.sealed",
        "request-4-dd.zip.sealed.partial", "notes.txt")}
    for name, path in files.items():
        path.write_bytes(b"x")
        if name != "request-4-dd.zip.sealed.partial":  # a build running right now
            os.utime(path, (stale, stale))
    assert _sweep(exports, {"request-3-cc.zip.sealed"}, time.time() - LEFTOVER_AGE_SECONDS) == 2
    assert sorted(p.name for p in exports.iterdir()) == [
        "notes.txt", "request-3-cc.zip.sealed", "request-4-dd.zip.sealed.partial"]
    assert _mode(exports) == 0o700


async def test_start_up_makes_the_export_dir_private_and_sweeps_it(sqlite_url: str, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir(mode=0o755)
    os.chmod(exports, 0o755)  # noqa: S103 - the permissive mode the bot must narrow
    leftover = exports / "request-9-ee.zip.sealed.partial"
    leftover.write_bytes(b"half a package")
    stale = time.time() - LEFTOVER_AGE_SECONDS - 60
    os.utime(leftover, (stale, stale))
    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=exports):
        assert not leftover.exists()
        assert _mode(exports) == 0o700
        assert _mode(Path(sqlite_url.removeprefix("sqlite:///"))) == 0o600
