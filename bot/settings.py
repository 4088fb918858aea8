"""The one place where configuration is read.

Every setting comes from the environment (or an optional ``.env`` file) through pydantic-settings.
The names are the public contract documented in the README; nothing else in the code reads
``os.environ``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from yarl import URL

CommaList = Annotated[list[str], NoDecode]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(Exception):
    """Settings are missing or malformed; ``problems`` names each one, one line apiece."""

    def __init__(self, *problems: str) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("; ".join(self.problems))


def parse_duration(value: object) -> timedelta:
    """Accept ``7d``, ``12h``, ``90m``, ``30s`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("expected a duration such as 7d, 12h, 30m or a number of seconds")
    amount, unit = match.groups()
    return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])


def _split_commas(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Settings(BaseSettings):
    # env_ignore_empty: `NAME=` (as .env.example and `setup env` write it) means "not set", i.e. the default.
    # hide_input_in_errors: a validation error never echoes a value (a secret, a URL with its password).
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True,
                                      hide_input_in_errors=True)

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    # App-level token (xapp-…, scope connections:write): when set, Slack delivers over Socket Mode and
    # `setup slack` prints the Socket Mode manifest.
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # App configuration token (xoxe.xoxp-…) and the app it manages: `setup slack` only.
    slack_config_token: SecretStr | None = None
    slack_app_id: str | None = None
    privacy_channel: str | None = None
    privacy_approvers: CommaList = Field(default_factory=list)
    privacy_requesters: CommaList = Field(default_factory=list)

    # Mautic
    mautic_base_url: str | None = None
    mautic_username: str | None = None
    mautic_password: SecretStr | None = None
    mautic_client_id: str | None = None
    mautic_client_secret: SecretStr | None = None
    mautic_webhook_secret: SecretStr | None = None
    mautic_timeout_seconds: float = 30.0

    # Service
    # repr=False: a PostgreSQL URL carries the password, and settings get printed (repr, errors, debuggers).
    database_url: str = Field(default="sqlite:///./privacy-bot.db", repr=False)
    public_url: str | None = None
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by default
    port: int = Field(default=3000, ge=1, le=65535)
    # `serve` listens from this many processes on one port (SO_REUSEPORT; the kernel spreads connections):
    # the first runs as asked, the others are web only. Linux and the BSDs.
    web_processes: int = Field(default=1, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # When set, GET /metrics answers only requests carrying `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    # Keys the keyed subject hash and the export encryption; never logged, never stored.
    bot_secret_key: SecretStr | None = None

    # Webhook intake
    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Slack's requests to us are small: a slash command (text ≤ 4,000 characters), a click or a modal
    # submission, which echo one view or message of ours (≤ 100 blocks; our largest, the Home tab, is
    # tens of KB once form-encoded). 256 KiB leaves room for that without letting a body cost much.
    slack_max_bytes: int = Field(default=256 * 1024, ge=1024)
    # Seconds to receive a whole request body once its headers are in (408 after that).
    body_read_timeout: float = Field(default=10.0, gt=0)
    # Body reads that wait on the network at once, across /slack/events and /mautic/webhook (503 with
    # Retry-After beyond that). A body that arrived with its headers does not wait and takes no slot.
    max_concurrent_reads: int = Field(default=32, ge=1)
    # Bodies over 64 KiB (or of undeclared size) read at once, across both routes (503 + Retry-After beyond).
    max_concurrent_large_reads: int = Field(default=4, ge=1)
    # Seconds a request refused before its body was verified (413, 401, 503 busy) is held, unread, before
    # its answer, for at most 100 such requests at once (beyond that they are answered at once). A flood
    # from a fixed number of connections then costs a refusal per connection per delay, not as many as the
    # loop can turn away; Slack and Mautic, correctly configured, are never refused.
    refusal_delay: float = Field(default=0.5, ge=0, le=10)
    # Seconds an idle HTTP connection (or one that has not finished its headers) stays open.
    keepalive_timeout: float = Field(default=15.0, gt=0)
    # Events taken from one delivery (Mautic sends ``webhook_limit``, default 10, per POST); the rest of
    # a larger one is kept as a dead letter and reported, not processed.
    max_events_per_delivery: int = Field(default=1000, ge=1)
    # Where verified deliveries are kept while the database does not answer (0700 directory, 0600 files),
    # and how much it may hold before the webhook answers 503.
    spool_dir: Path = Path("./spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)

    # Consent
    consent_fields: CommaList = Field(
        default_factory=lambda: ["consent", "gdpr_consent", "marketing_consent"]
    )
    privacy_policy_file: Path | None = None
    reconsent_segment_id: int | None = None
    alert_on_unsubscribe: bool = False
    mask_emails: bool = True
    # Gaps (and other findings) of one kind and form within this window fold into the first alert.
    consent_burst_window: timedelta = timedelta(minutes=10)

    # Data-subject requests
    dsar_deadline: Literal["gdpr", "ccpa"] = "gdpr"  # the regime of a request filed without regime=
    # Where the controller counts its days: a request's received date defaults to today there.
    deadline_timezone: str = "UTC"
    # Public holidays a due date rolls past (a country code, optionally with subdivision: DE, DE-BY, US-CA);
    # empty: weekends only.
    deadline_holidays: str = ""
    approval_ttl: timedelta = timedelta(days=7)
    job_max_attempts: int = Field(default=5, ge=1)
    export_link_ttl: timedelta = timedelta(days=7)
    export_dir: Path = Path("./exports")
    export_delivery: Literal["link", "slack"] = "link"
    # Downloads one link allows (then 410); the page behind the link downloads only on a button press.
    export_max_downloads: int = Field(default=3, ge=1, le=100)
    # How long the keyed hash of an erased person is kept (Art. 17(3)(b)/(e), suppression); older ones are
    # deleted by the daily requests sweep. 3 years: Mautic's own --gdpr inactivity threshold.
    erased_hash_retention: timedelta = timedelta(days=1095)
    # Custom Mautic field aliases `/privacy rectify` may change, besides the stock contact fields.
    rectify_fields: CommaList = Field(default_factory=list)
    # Named in the access package's summary.html (Art. 15); the rest of its policy text comes from the
    # `access_summary` section of PRIVACY_POLICY_FILE (what it leaves out reads "not configured").
    privacy_controller: str | None = None
    privacy_contact: str | None = None
    # Staff identities (contact owner, created/modified by, who decided in the ledger) stay out of an access
    # package unless this is true: they are other people's data (Art. 15(4)).
    access_include_staff: bool = False
    # When due-soon and overdue requests are re-announced in their threads (cron, DIGEST_TIMEZONE).
    requests_reminder_cron: str = "0 8 * * *"

    @field_validator("rectify_fields", mode="before")
    @classmethod
    def _rectify_fields(cls, value: object) -> list[str]:
        return [v.lower() for v in _split_commas(value)]

    # App Home: changes within this window refresh the dashboards once, at its end.
    app_home_debounce: timedelta = timedelta(seconds=10)

    # Digests
    digest_cron: str = "0 9 * * 1"
    digest_timezone: str = "UTC"
    retention_cron: str | None = None
    compliance_cron: str | None = None
    retention_days: int = Field(default=1095, ge=1)

    # The bot's own retention (its own tables, not Mautic's): raw inbox rows, dead letters and finished
    # jobs older than OWN_RETENTION_DAYS are deleted; consent evidence is kept while its contact exists
    # in Mautic and CONSENT_EVIDENCE_DAYS after it is gone (claims about consent must be answerable
    # until they are time-barred: three years is the regular limitation period in Germany, §195 BGB).
    own_retention_days: int = Field(default=400, ge=1)
    consent_evidence_days: int = Field(default=1095, ge=1)
    own_retention_cron: str = "30 3 * * *"

    @field_validator("privacy_approvers", "privacy_requesters", "consent_fields", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> list[str]:
        return _split_commas(value)

    @field_validator("privacy_approvers", "privacy_requesters")
    @classmethod
    def _slack_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[USW][A-Z0-9]{2,}", item):
                raise ValueError(f"{item!r} is not a Slack user (U…) or user-group (S…) ID")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("expected an app-level token starting with xapp- (Basic Information → App-Level Tokens)")
        return value

    @field_validator("privacy_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError("expected a channel ID such as C0123ABCD (not a #name)")
        return value

    @field_validator("own_retention_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a five-field cron expression ({exc})") from None
        return value

    @field_validator("deadline_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value

    @field_validator("deadline_holidays")
    @classmethod
    def _holidays(cls, value: str) -> str:
        spec = value.strip().upper()
        if not spec:
            return ""
        country, _, subdivision = spec.partition("-")
        try:
            holidays.country_holidays(country, subdiv=subdivision or None)
        except NotImplementedError:
            raise ValueError(f"{spec!r} is not a country (and subdivision) the holidays package knows, "
                             "such as DE, DE-BY or US-CA") from None
        return spec

    @field_validator("mautic_base_url", "public_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http(s):// URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("mautic_base_url", "public_url", "slack_api_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        # Mautic gets Basic credentials, the public URL carries export links and the Slack API the bot token:
        # plain http only where the traffic never leaves the machine.
        if value is not None and value.startswith("http://") and not is_loopback_url(value):
            raise ValueError("must start with https:// (plain http:// only for localhost or 127.0.0.1)")
        return value

    @field_validator("bot_secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and key_entropy_bits(value.get_secret_value()) < 256:
            raise ValueError("too weak: it needs at least 32 bytes of entropy, such as the output of "
                             "`openssl rand -hex 32` (64 hex characters) or `openssl rand -base64 32`")
        return value

    @field_validator("approval_ttl", "export_link_ttl", "consent_burst_window", "app_home_debounce",
                     "erased_hash_retention", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("expected sqlite:///path.db or postgresql://user@host/db")
        try:  # the parser the engine uses (a port that is no number fails only there, with a traceback)
            _ = make_url(value).port
        except (ArgumentError, ValueError):
            # Not chained, and the value not quoted: the URL carries the database password.
            raise ValueError("is not a database URL SQLAlchemy can read (check the port, and "
                             "percent-encode special characters in the password)") from None
        return value

    @model_validator(mode="after")
    def _mautic_auth_pairs(self) -> Settings:
        if bool(self.mautic_client_id) != bool(self.mautic_client_secret):
            raise ValueError("MAUTIC_CLIENT_ID and MAUTIC_CLIENT_SECRET go together")
        if bool(self.mautic_username) != bool(self.mautic_password):
            raise ValueError("MAUTIC_USERNAME and MAUTIC_PASSWORD go together")
        return self

    @property
    def socket_mode(self) -> bool:
        """Slack delivers over Socket Mode (no /slack/events route, no signing secret needed)."""
        return self.slack_app_token is not None

    @property
    def slack_api_base(self) -> str:
        return self.slack_api_url.rstrip("/") + "/"

    @property
    def external_url(self) -> str:
        return self.public_url or f"http://localhost:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def missing(self, *names: str) -> list[str]:
        """One line for each setting among ``names`` that is not set."""
        problems = []
        for name in names:
            value = getattr(self, name)
            if value in (None, "", []) or (
                isinstance(value, SecretStr) and not value.get_secret_value().strip()
            ):
                problems.append(f"{name.upper()} is required but not set")
        return problems

    def require(self, *names: str) -> None:
        """Stop naming every missing setting among ``names`` at once."""
        if problems := self.missing(*names):
            raise ConfigError(*problems)

    def problems_for_serve(self) -> list[str]:
        required = [name for name in REQUIRED_FOR_SERVE if not (self.socket_mode and name == "slack_signing_secret")]
        problems = self.missing(*required)
        token = self.slack_bot_token.get_secret_value() if self.slack_bot_token else ""
        if token and not token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        return problems

    def require_for_serve(self) -> None:
        if problems := self.problems_for_serve():
            raise ConfigError(*problems)


REQUIRED_FOR_SERVE = (
    "slack_bot_token",
    "slack_signing_secret",
    "privacy_channel",
    "privacy_approvers",
    "mautic_base_url",
    "mautic_webhook_secret",
    "bot_secret_key",
)


def is_loopback_url(url: str) -> bool:
    """The URL's host is this machine: ``localhost`` or a loopback address (127.0.0.0/8, ::1).

    The host is read by yarl, the parser aiohttp connects with, so what is checked is where the bot would
    connect: a hand-written split took ``http://evil.example#@127.0.0.1`` for loopback."""
    try:
        host = URL(url).host or ""
    except ValueError:  # not a URL aiohttp could use either
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Bits one character can carry, by the alphabet a key is written in: hex (openssl rand -hex), base64
# (openssl rand -base64, secrets.token_urlsafe) or anything else printable.
_KEY_ALPHABETS = ((re.compile(r"[0-9a-fA-F]+"), 4.0), (re.compile(r"[A-Za-z0-9+/_=-]+"), 6.0))


def key_entropy_bits(key: str) -> float:
    """An upper estimate of a key's entropy: its length times what its alphabet allows per character,
    and nothing for a key of a few repeated characters (``aaaa…``, ``abab…``). A key that repeats a block
    (``0123456789abcdef`` four times) counts one block only. A random 32-byte key written in hex or base64
    scores 256 or more; a word, a date or a short phrase does not."""
    if len(set(key)) < 10:
        return 0.0
    per_char = next((bits for pattern, bits in _KEY_ALPHABETS if pattern.fullmatch(key)), math.log2(95))
    key = key.rstrip("=")
    # The shortest block the key repeats: the first place the key occurs again in itself doubled (linear,
    # and the key is a setting, not outside input).
    period = (key + key).find(key, 1)
    return min(len(key), period) * per_char


def load_settings(**overrides: object) -> Settings:
    """Read settings; a validation failure is a ConfigError naming every malformed setting at once."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(*_describe(exc)) from None


def diagnose_settings(**overrides: object) -> tuple[Settings, list[str]]:
    """Settings and every problem that stops ``serve``: malformed values and missing ones, all at once.

    A malformed value is reported and replaced by its default, so the settings still say what else is
    missing; the returned Settings are only for reporting when the list is not empty."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        return settings, settings.problems_for_serve()
    except ValidationError as exc:
        malformed = _describe(exc)
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        defaults = {name: Settings.model_fields[name].get_default(call_default_factory=True) for name in bad}
        try:
            fallback = Settings(**{**overrides, **defaults})  # type: ignore[arg-type]
        except ValidationError:  # a rule across settings (credential pairs): nothing more to learn
            return Settings.model_construct(), malformed
        named = {p.split(" ", 1)[0].rstrip(":") for p in malformed}
        return fallback, malformed + [p for p in fallback.problems_for_serve() if p.split(" ", 1)[0] not in named]


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        problems.append(f"{name}: {str(error['msg']).removeprefix('Value error, ')}")
    return problems
