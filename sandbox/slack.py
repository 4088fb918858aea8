"""A local, stateful stand-in for the Slack Web API, served by aiohttp on 127.0.0.1.

Used by the test suite and by ``python -m bot demo``. It is an independent peer: requests are parsed
per Slack's documented wire contracts (its Web API method and Block Kit reference), not by reusing slack-sdk
internals, so a drift in the SDK or in our bot shows up as a failing test instead of agreeing with itself.
"slack.md §N" in comments names a section of the project's Slack notes, which cite Slack's docs and the SDK.

The module also plays Slack's other role: ``SlackUserAgent`` posts signed slash commands, button clicks,
modal submissions and events to the bot, as a workspace user would cause Slack to.

Nothing starts on import; every ``FakeSlack`` owns its own state, runner and port.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from aiohttp import web

from sandbox.blockkit import (
    MAX_TEXT_LENGTH,
    too_long,
    validate_blocks,
    validate_message,
    validate_view,
    validate_view_answer,
)

__all__ = [
    "DEFAULT_SCOPES",
    "SANDBOX_APP_TOKEN",
    "AppHomeTabs",
    "Channel",
    "Ephemeral",
    "FakeSlack",
    "Message",
    "RecordedCall",
    "RecordedResponse",
    "RefusedPayload",
    "SlackHttpResult",
    "SlackUserAgent",
    "SocketModePeer",
    "User",
    "View",
    "find_action",
    "render_message",
    "sign_slack_request",
    "validate_blocks",
    "webhook_path",
]

# The bot scopes from manifest.yml; a fake that grants everything would hide a missing scope.
DEFAULT_SCOPES: tuple[str, ...] = (
    "channels:history",
    "chat:write",
    "chat:write.public",
    "commands",
    "files:write",
    "groups:history",
    "usergroups:read",
)

TRIGGER_TTL_SECONDS = 3.0  # Slack's trigger_ids expire three seconds after the interaction
FIRST_TS_MICROS = 1_700_000_000_000_000
SHUTDOWN_TIMEOUT_SECONDS = 0.5

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Recorded state


@dataclass
class RecordedCall:
    """One Web API request as the fake received it, plus what it answered."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    time: float
    http_method: str = "POST"
    status: int | None = None
    response: Json | None = None

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")


@dataclass
class Revision:
    """A previous content of a message, kept so tests can see every edit."""

    text: str
    blocks: list[Json]
    time: float


@dataclass
class Message:
    ts: str
    channel: str
    text: str
    blocks: list[Json] = field(default_factory=list)
    thread_ts: str | None = None
    user: str = ""
    bot_id: str | None = None
    files: list[Json] = field(default_factory=list)
    history: list[Revision] = field(default_factory=list)
    reply_broadcast: bool = False
    deleted: bool = False
    metadata: Json | None = None

    @property
    def edits(self) -> int:
        return len(self.history)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def replace(self, text: str, blocks: list[Json]) -> None:
        self.history.append(Revision(self.text, self.blocks, time.time()))
        self.text, self.blocks = text, blocks

    def to_api(self, team_id: str = "") -> Json:
        """The message object as Slack returns it in chat.* replies and interaction payloads."""
        out: Json = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user, "team": team_id}
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"], out["upload"] = self.files, True
        if self.history:
            out["edited"] = {"user": self.user, "ts": self.ts}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    """A message only ``user`` sees; Slack gives no way to edit it except its response_url."""

    message_ts: str
    channel: str
    user: str
    text: str
    blocks: list[Json] = field(default_factory=list)
    thread_ts: str | None = None
    source: str = "chat.postEphemeral"  # or "response_url"
    history: list[Revision] = field(default_factory=list)
    deleted: bool = False

    @property
    def ts(self) -> str:
        return self.message_ts

    def replace(self, text: str, blocks: list[Json]) -> None:
        self.history.append(Revision(self.text, self.blocks, time.time()))
        self.text, self.blocks = text, blocks


@dataclass
class RecordedResponse:
    """A JSON message the bot posted to a response_url handed out by the fake."""

    path: str
    json: Json
    time: float
    status: int = 200

    @property
    def text(self) -> str:
        return str(self.json.get("text", ""))

    @property
    def blocks(self) -> list[Json]:
        return list(self.json.get("blocks") or [])

    @property
    def response_type(self) -> str | None:
        return self.json.get("response_type")

    @property
    def replace_original(self) -> bool:
        return _flag(self.json.get("replace_original"))

    @property
    def delete_original(self) -> bool:
        return _flag(self.json.get("delete_original"))

    @property
    def thread_ts(self) -> str | None:
        return self.json.get("thread_ts")


@dataclass
class RefusedPayload:
    """Something the bot sent that Slack would refuse: ``kind`` names the call (``chat.postMessage``,
    ``response_url``, ``command reply``…), ``errors`` are Slack-style messages. Any of these fails the test."""

    kind: str
    errors: list[str]
    payload: Any

    def __str__(self) -> str:
        return f"{self.kind}: " + "; ".join(self.errors)


@dataclass
class View:
    """A modal the bot opened; ``view`` is the full view object as Slack would report it."""

    id: str
    view: Json
    user: str | None
    trigger_id: str
    history: list[Json] = field(default_factory=list)

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata", ""))


@dataclass
class Channel:
    id: str
    name: str
    members: list[str]
    is_private: bool = False
    is_im: bool = False
    created: int = 1_700_000_000


@dataclass
class User:
    id: str
    name: str
    email: str | None = None
    is_bot: bool = False
    deleted: bool = False
    real_name: str = ""
    tz: str = "Europe/Berlin"


@dataclass
class _Upload:
    id: str
    filename: str
    length: int
    alt_txt: str | None = None


@dataclass
class _Fault:
    status: int | None
    error: str | None
    retry_after: int | None
    remaining: int
    after_handling: bool = False


@dataclass
class _ResponseTarget:
    """What a handed-out response_url is bound to, so replace/delete/in_channel act like Slack."""

    channel: str | None = None
    message_ts: str | None = None
    user: str | None = None
    ephemeral: bool = False


class _ApiError(Exception):
    """An application-level Slack error: HTTP 200 with ``ok: false``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --------------------------------------------------------------------------------------------------
# Small parsing helpers


def _flag(value: Any) -> bool:
    """Slack booleans arrive as JSON booleans, or as "true"/"1" in forms and query strings."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def _json_param(params: Mapping[str, Any], key: str, error: str) -> Any:
    """Form and query values carry structures as JSON strings; JSON bodies carry them natively."""
    value = params.get(key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise _ApiError(error) from exc


def _int_param(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _ApiError("invalid_arguments") from exc


def _required(params: Mapping[str, Any], key: str, error: str = "invalid_arguments") -> str:
    value = params.get(key)
    if value in (None, ""):
        raise _ApiError(error)
    return str(value)


def _in_range(ts: str, params: Mapping[str, Any]) -> bool:
    """Whether a message's ts lies between ``oldest`` and ``latest`` (exclusive unless ``inclusive``)."""
    inclusive = _flag(params.get("inclusive"))
    value = float(ts)
    oldest, latest = params.get("oldest"), params.get("latest")
    try:
        if oldest not in (None, "") and (value < float(oldest) or (value == float(oldest) and not inclusive)):
            return False
        if latest not in (None, "") and (value > float(latest) or (value == float(latest) and not inclusive)):
            return False
    except (TypeError, ValueError) as exc:
        raise _ApiError("invalid_arguments") from exc
    return True


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
        if kind != "offset":
            raise ValueError(cursor)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise _ApiError("invalid_cursor") from exc


def _blocks_param(params: Mapping[str, Any], *, required: bool = False) -> list[Json] | None:
    if params.get("blocks") in (None, ""):
        return [] if required else None
    blocks = _json_param(params, "blocks", "invalid_blocks_format")
    if not isinstance(blocks, list):
        raise _ApiError("invalid_blocks_format")
    return list(blocks)


# --------------------------------------------------------------------------------------------------
# The fake server

Handler = Callable[[Json], Json]


# --------------------------------------------------------------------------------------------------
# App configuration: apps.manifest.create / apps.manifest.update (`python -m bot setup slack` is the client).
# Kept apart from the workspace methods. Per Slack's method pages (docs.slack.dev/reference/methods/
# apps.manifest.create, apps.manifest.update, apps.manifest.validate): called with an app configuration token,
# not the bot token; `manifest` is a JSON string; update replaces the whole configuration; a bad manifest is
# `invalid_manifest` with `errors: [{message, pointer}]`, e.g. "Interactivity requires a Request URL" when
# interactivity has no request URL and Socket Mode is off. Response fields as slack_sdk's and
# @slack/web-api's AppsManifestCreateResponse / AppsManifestUpdateResponse.

CONFIG_METHODS = frozenset({"apps.manifest.create", "apps.manifest.update"})


class _ManifestApi:
    """Mixin of FakeSlack: the apps this workspace's configuration token created, keyed by app id."""

    apps: dict[str, Json]
    config_token: str

    def _manifest_handlers(self) -> dict[str, Handler]:
        self.apps = {}
        return {"apps.manifest.create": self._apps_manifest_create, "apps.manifest.update": self._apps_manifest_update}

    @staticmethod
    def _manifest_param(params: Mapping[str, Any]) -> Json:
        manifest = _json_param(params, "manifest", "invalid_manifest")
        if not isinstance(manifest, dict):
            raise _ApiError("invalid_manifest", errors=[{"message": "must be an object", "pointer": "/"}])
        problems = []
        settings = manifest.get("settings") or {}
        socket = bool(settings.get("socket_mode_enabled"))
        interactivity = settings.get("interactivity") or {}
        if interactivity.get("is_enabled") and not socket and not interactivity.get("request_url"):
            problems.append({"message": "Interactivity requires a Request URL", "pointer": "/settings/interactivity"})
        for n, command in enumerate((manifest.get("features") or {}).get("slash_commands") or []):
            if not socket and not command.get("url"):
                problems.append({"message": "Slash command requires a Request URL",
                                 "pointer": f"/features/slash_commands/{n}/url"})
        if not (manifest.get("display_information") or {}).get("name"):
            problems.append({"message": "is required", "pointer": "/display_information/name"})
        if problems:
            raise _ApiError("invalid_manifest", errors=problems)
        return manifest

    def _apps_manifest_create(self, params: Json) -> Json:
        manifest = self._manifest_param(params)
        app_id = f"A{len(self.apps) + 1:010d}"
        self.apps[app_id] = manifest
        return {"app_id": app_id,
                "credentials": {"client_id": f"1.{len(self.apps)}", "client_secret": f"cs-{app_id}",
                                "verification_token": f"vt-{app_id}", "signing_secret": f"ss-{app_id}"},
                "oauth_authorize_url": f"https://slack.com/oauth/v2/authorize?client_id=1.{len(self.apps)}"}

    def _apps_manifest_update(self, params: Json) -> Json:
        app_id = _required(params, "app_id")
        if app_id not in self.apps:
            raise _ApiError("invalid_app_id")
        manifest = self._manifest_param(params)
        before = (self.apps[app_id].get("oauth_config") or {}).get("scopes")
        self.apps[app_id] = manifest
        return {"app_id": app_id, "permissions_updated": (manifest.get("oauth_config") or {}).get("scopes") != before}


class FakeSlack(_ManifestApi):
    """An in-process Slack Web API peer with inspectable state, fault injection and waiters."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",  # noqa: S107 - a fixture value, never a real credential
        bot_user_id: str = "UBOT",
        bot_id: str = "B0BOT",
        team_id: str = "T0001",
        scopes: list[str] | None = None,
        team_domain: str = "acme",
        bot_name: str = "privacy-bot",
    ) -> None:
        self.token = token
        self.config_token = "xoxe.xoxp-1-config-token"  # noqa: S105 - apps.manifest.* (the section above)
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team_domain = team_domain
        self.scopes: list[str] = list(DEFAULT_SCOPES if scopes is None else scopes)
        self.trigger_ttl = TRIGGER_TTL_SECONDS

        self.calls: list[RecordedCall] = []
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[RecordedResponse] = []
        self.views: list[View] = []
        self.refused: list[RefusedPayload] = []  # every invalid payload the bot sent, whatever the call kind
        self.uploads: dict[str, bytes] = {}
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, list[str]] = {}

        self._messages: dict[str, list[Message]] = {}
        self._pending_uploads: dict[str, _Upload] = {}
        self._files: dict[str, Json] = {}
        self.deleted_files: set[str] = set()
        self._triggers: dict[str, tuple[str | None, float]] = {}
        self._response_targets: dict[str, _ResponseTarget] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._answer_delays: dict[str, float] = {}  # answers held back after the call took effect
        self._ts_micros = FIRST_TS_MICROS
        self._serial = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._handlers: dict[str, Handler] = self._build_handlers()

        self.add_user(bot_user_id, bot_name, is_bot=True)
        self.socket_mode = SocketModePeer(self)  # Slack's Socket Mode side (its own section below)
        self.home_tabs = AppHomeTabs(self)  # views.publish (its own section below)

    # ---- lifecycle ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application; exposed so a test may mount it elsewhere if it needs to."""
        app = web.Application()
        self.socket_mode.add_routes(app)  # before /api/{method}: apps.connections.open takes the app token
        app.router.add_route("GET", "/api/{method}", self._handle_api)
        app.router.add_route("POST", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/webhook/{path:.*}", self._handle_webhook)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeSlack is already running")
        # A short shutdown timeout: stop() must not wait a minute for a call parked by slow().
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        self._runner, self._base_url = runner, f"http://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeSlack is not started; call `await fake.start()` first")
        return self._base_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ---- seeding ---------------------------------------------------------------------------------

    def add_channel(
        self,
        id: str,
        name: str,
        *,
        members: Iterable[str] = (),
        is_private: bool = False,
        bot_is_member: bool = True,
    ) -> Channel:
        member_list = list(dict.fromkeys(members))
        if bot_is_member and self.bot_user_id not in member_list:
            member_list.append(self.bot_user_id)
        channel = Channel(id, name.lstrip("#"), member_list, is_private=is_private)
        self.channels[id] = channel
        self._messages.setdefault(id, [])
        return channel

    def add_user(
        self,
        id: str,
        name: str,
        email: str | None = None,
        *,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> User:
        user = User(id, name, email, is_bot=is_bot, deleted=deleted, real_name=name.replace(".", " ").title())
        self.users[id] = user
        return user

    def add_usergroup(self, id: str, users: Iterable[str]) -> None:
        self.usergroups[id] = list(users)

    def post_as_user(
        self, channel: str, user: str, text: str, *, blocks: list[Json] | None = None, thread_ts: str | None = None
    ) -> Message:
        """Put a human-authored message in a channel (e.g. to check the bot cannot edit it)."""
        message = Message(self._next_ts(), channel, text, list(blocks or []), thread_ts, user)
        self._messages.setdefault(channel, []).append(message)
        return message

    def trigger_id(self, user: str | None = None) -> str:
        """Issue a trigger_id the way an interaction would; views.open accepts each one once."""
        self._serial += 1
        trigger = f"{self._serial}.{self.team_id}.{self._serial:08x}"
        self._triggers[trigger] = (user, time.monotonic())
        return trigger

    def response_url(
        self,
        name: str | None = None,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        user: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A fresh absolute response_url on the sink. Binding it to a channel/message lets
        ``replace_original``, ``delete_original`` and ``in_channel`` change the fake's state like Slack."""
        self._serial += 1
        path = f"{name or 'hook'}/{self._serial}"
        self._response_targets[path] = _ResponseTarget(channel, message_ts, user, ephemeral)
        return f"{self.base_url}/webhook/{path}"

    # ---- inspection ------------------------------------------------------------------------------

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages in posting order (thread replies only if broadcast)."""
        return [m for m in self._messages.get(channel, []) if not m.deleted and (not m.is_reply or m.reply_broadcast)]

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self._messages.get(channel, []) if not m.deleted and m.is_reply and m.thread_ts == ts]

    def message(self, channel: str, ts: str) -> Message:
        for candidate in self._messages.get(channel, []):
            if candidate.ts == ts:
                return candidate
        raise KeyError(f"no message {ts} in {channel}")

    def refuse(self, kind: str, errors: list[str], payload: Any) -> None:
        """Record an invalid payload. The harness fails any test that leaves one (see ``assert_all_valid``)."""
        if errors:
            self.refused.append(RefusedPayload(kind, list(errors), payload))

    def assert_all_valid(self) -> None:
        """Raise unless every payload the bot sent (posts, updates, ephemerals, uploads, response_url posts,
        command and interaction answers, views) was one Slack would accept."""
        if self.refused:
            raise AssertionError("the bot sent payloads Slack would refuse:\n" + "\n".join(map(str, self.refused)))

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def names(self) -> dict[str, str]:
        """Names of channels and users by id: what Slack shows for ``<#C…>`` and ``<@U…>``."""
        return {**{c.id: c.name for c in self.channels.values()}, **{u.id: u.name for u in self.users.values()}}

    def transcript(self, channel: str) -> str:
        """The channel as a terminal would show it: messages with their thread replies indented."""
        names = self.names
        lines: list[str] = []
        for message in self.messages(channel):
            lines.append(render_message(message, names=names))
            for reply in self.thread(channel, message.ts):
                lines.extend("    " + line for line in render_message(reply, names=names).splitlines())
            lines.append("")
        return "\n".join(lines).rstrip()

    # ---- waiting ---------------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 5.0,
        describe: str = "",
    ) -> None:
        """Block until ``predicate()`` holds; it is re-checked whenever the fake's state changes."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"timed out after {timeout}s waiting for {describe or predicate}") from None

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[RecordedCall], bool] | None = None,
    ) -> list[RecordedCall]:
        """Wait until ``count`` answered calls to ``method`` (matching ``where``) have been seen."""

        def matching() -> list[RecordedCall]:
            return [c for c in self.calls if c.method == method and c.done and (where is None or where(c))]

        try:
            await self.wait_until(lambda: len(matching()) >= count, timeout=timeout)
        except AssertionError:
            raise AssertionError(
                f"expected {count} call(s) to {method}{' matching filter' if where else ''} within {timeout}s, "
                f"got {len(matching())}. Calls received: {self._summarise_calls()}"
            ) from None
        return matching()

    async def wait_for_response(
        self,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[RecordedResponse], bool] | None = None,
    ) -> list[RecordedResponse]:
        def matching() -> list[RecordedResponse]:
            return [r for r in self.responses if where is None or where(r)]

        try:
            await self.wait_until(lambda: len(matching()) >= count, timeout=timeout)
        except AssertionError:
            seen = [f"{r.path}: {r.text[:60]!r}" for r in self.responses] or ["none"]
            raise AssertionError(
                f"expected {count} response_url post(s) within {timeout}s, got {len(matching())}. "
                f"Received: {'; '.join(seen)}. API calls: {self._summarise_calls()}"
            ) from None
        return matching()

    def _summarise_calls(self) -> str:
        if not self.calls:
            return "none"
        return ", ".join(f"{c.method}({'ok' if c.ok else c.error or c.status or 'pending'})" for c in self.calls[-30:])

    # ---- fault injection -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        after_handling: bool = False,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail. ``method`` may also be "upload" or
        "webhook" for the file-upload and response_url sinks. With ``after_handling`` the call takes
        effect first and only its answer fails (a 5xx from Slack's edge after the backend posted: the
        client cannot tell whether the message exists)."""
        if retry_after is not None and status is None:
            status = 429
        if status is None and error is None:
            raise ValueError("fail() needs a status, an error or retry_after")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.setdefault(method, deque()).append(_Fault(status, error, retry_after, times, after_handling))

    def slow(self, method: str, seconds: float) -> None:
        """Delay every later call to ``method`` by ``seconds`` (0 removes the delay)."""
        if seconds <= 0:
            self._delays.pop(method, None)
        else:
            self._delays[method] = seconds

    def delay_answer(self, method: str, seconds: float) -> None:
        """Let every later call to ``method`` take effect at once but hold its answer back ``seconds`` (0
        removes it): the window in which a client that dies has posted without learning it did."""
        if seconds <= 0:
            self._answer_delays.pop(method, None)
        else:
            self._answer_delays[method] = seconds

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.popleft()
        return fault

    def _fault_response(self, fault: _Fault) -> tuple[int, Json | None, web.Response]:
        status = fault.status or 200
        if status == 429:
            body: Json = {"ok": False, "error": fault.error or "ratelimited"}
            retry = str(fault.retry_after if fault.retry_after is not None else 1)
            return 429, body, web.json_response(body, status=429, headers={"Retry-After": retry})
        if status >= 500:
            # Slack's edge answers 5xx with an HTML page, not JSON; clients must cope with that.
            html = f"<html><body><h1>{status} Server Error</h1></body></html>"
            return status, None, web.Response(status=status, text=html, content_type="text/html")
        body = {"ok": False, "error": fault.error or "fatal_error"}
        return status, body, web.json_response(body, status=status)

    # ---- HTTP handlers ---------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = RecordedCall(method, {}, dict(request.headers), time.time(), request.method)
        self.calls.append(call)
        try:
            call.params = await self._read_params(request)
            response = await self._answer(call)
        except _ApiError as exc:
            response = self._error_response(call, exc)
        except Exception:
            # A bug in the fake itself: mark the call answered so waiters report it instead of hanging.
            call.status = 500
            await self._notify()
            raise
        call.status = response.status
        await self._notify()
        return response

    async def _answer(self, call: RecordedCall) -> web.Response:
        handler = self._handlers.get(call.method)
        if handler is None:
            raise _ApiError("unknown_method")
        self._check_auth(call.headers, self.config_token if call.method in CONFIG_METHODS else self.token)
        if call.method in self._delays:
            await asyncio.sleep(self._delays[call.method])
        fault = self._take_fault(call.method)
        if fault is not None:
            if fault.after_handling:
                handler(call.params)
            call.status, call.response, response = self._fault_response(fault)
            return response
        call.response = {"ok": True, **handler(call.params)}
        if call.method in self._answer_delays:
            await asyncio.sleep(self._answer_delays[call.method])
        return web.json_response(call.response, headers=self._scope_headers())

    def _error_response(self, call: RecordedCall, exc: _ApiError) -> web.Response:
        call.response = {"ok": False, "error": exc.error, **exc.extra}
        return web.json_response(call.response, headers=self._scope_headers())

    def _scope_headers(self) -> dict[str, str]:
        return {"x-oauth-scopes": ",".join(self.scopes)}

    def _check_auth(self, headers: Mapping[str, str], expected: str) -> None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _ApiError("not_authed")
        if token.strip() != expected:
            raise _ApiError("invalid_auth")

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        """Merge query string, form and JSON bodies: the SDK uses all three (slack.md §2.4)."""
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise _ApiError("invalid_json") from exc
            if not isinstance(body, dict):
                raise _ApiError("invalid_json")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        fault = self._take_fault("upload")
        if fault is not None:
            return self._fault_response(fault)[2]
        pending = self._pending_uploads.get(file_id)
        if pending is None:
            return web.Response(status=404, text="file not found", content_type="text/plain")
        data = await self._read_upload_bytes(request)
        if len(data) != pending.length:
            return web.Response(status=400, text=f"length mismatch: expected {pending.length}, got {len(data)}")
        self.uploads[file_id] = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    @staticmethod
    async def _read_upload_bytes(request: web.Request) -> bytes:
        """Slack takes raw bytes or a multipart form with the file as a part (the SDK sends raw)."""
        if request.content_type != "multipart/form-data":
            return await request.read()
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "filename", None) is not None or getattr(part, "name", None) == "file":
                return bytes(await part.read())  # type: ignore[union-attr]
        return b""

    async def _handle_webhook(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        try:
            payload = json.loads(await request.text())
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return web.Response(status=400, text="invalid_payload")
        record = RecordedResponse(path, payload, time.time())
        self.responses.append(record)
        record.status, text = self._apply_response(path, record)
        fault = self._take_fault("webhook")
        if fault is not None:
            record.status, _, response = self._fault_response(fault)
        else:
            response = web.Response(status=record.status, text=text)
        await self._notify()
        return response

    # ---- response_url semantics ------------------------------------------------------------------

    def _apply_response(self, path: str, record: RecordedResponse) -> tuple[int, str]:
        errors = validate_message(record.json)
        if errors:
            self.refuse("response_url", errors, record.json)
            return 400, "invalid_blocks"
        target = self._response_targets.get(path, _ResponseTarget())
        original = self._original(target)
        if record.delete_original:
            if original is not None:
                original.deleted = True
        elif record.replace_original and original is not None:
            original.replace(record.text, record.blocks)
        elif record.response_type == "in_channel" and target.channel:
            message = Message(
                self._next_ts(), target.channel, record.text, record.blocks, record.thread_ts,
                self.bot_user_id, self.bot_id,
            )  # fmt: skip
            self._messages.setdefault(target.channel, []).append(message)
        elif target.channel and target.user:
            self.ephemerals.append(
                Ephemeral(self._next_ts(), target.channel, target.user, record.text, record.blocks,
                          record.thread_ts, source="response_url")
            )  # fmt: skip
        return 200, "ok"

    def _original(self, target: _ResponseTarget) -> Message | Ephemeral | None:
        if target.channel is None or target.message_ts is None:
            return None
        if target.ephemeral:
            return next((e for e in self.ephemerals if e.message_ts == target.message_ts), None)
        try:
            return self.message(target.channel, target.message_ts)
        except KeyError:
            return None

    # ---- shared lookups --------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Slack's ts is the posting time (epoch seconds, microseconds), unique per channel: real time here too,
        # so a client that looks a message up by when it posted it (conversations.history ``oldest``) finds it.
        self._ts_micros = max(self._ts_micros + 100, time.time_ns() // 1000)
        return f"{self._ts_micros // 1_000_000}.{self._ts_micros % 1_000_000:06d}"

    def _need(self, *scopes: str) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise _ApiError("missing_scope", needed=",".join(missing), provided=",".join(self.scopes))

    def _channel(self, channel_id: str) -> Channel:
        """Resolve an ID, a #name, or a user ID (which opens the bot's DM with that user)."""
        if channel_id in self.channels:
            channel = self.channels[channel_id]
        elif channel_id in self.users:
            channel = self._dm_with(channel_id)
        else:
            wanted = channel_id.lstrip("#")
            found = next((c for c in self.channels.values() if c.name == wanted and not c.is_im), None)
            if found is None:
                raise _ApiError("channel_not_found")
            channel = found
        # A private channel the bot is not in is invisible to it, as in Slack.
        if channel.is_private and self.bot_user_id not in channel.members:
            raise _ApiError("channel_not_found")
        return channel

    def _dm_with(self, user_id: str) -> Channel:
        dm_id = "D" + user_id.lstrip("UW")
        if dm_id not in self.channels:
            self.channels[dm_id] = Channel(dm_id, user_id, [user_id, self.bot_user_id], is_private=True, is_im=True)
            self._messages.setdefault(dm_id, [])
        return self.channels[dm_id]

    def _check_message(self, method: str, payload: Json) -> None:
        """Refuse, as Slack does, a message whose text is too long or whose blocks or attachments are invalid."""
        errors = validate_message(payload)
        if not errors:
            return
        self.refuse(method, errors, payload)
        if too_long(MAX_TEXT_LENGTH, "/text") in errors:
            raise _ApiError("msg_too_long")
        raise _ApiError(
            "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
        )

    def _message_content(self, method: str, params: Mapping[str, Any]) -> tuple[str, list[Json]]:
        blocks = _blocks_param(params) or []
        text = str(params.get("text") or "")
        attachments = _json_param(params, "attachments", "invalid_attachments")
        if not text and not blocks and not attachments:
            raise _ApiError("no_text")
        self._check_message(method, {"text": text, "blocks": blocks or None, "attachments": attachments})
        return text, blocks

    def _postable(self, channel_id: str) -> Channel:
        channel = self._channel(channel_id)
        if self.bot_user_id in channel.members:
            return channel
        if not channel.is_private and "chat:write.public" in self.scopes:
            return channel
        raise _ApiError("not_in_channel")

    def _thread_parent(self, channel: Channel, thread_ts: Any) -> str | None:
        if thread_ts in (None, ""):
            return None
        for message in self._messages.get(channel.id, []):
            if message.ts == str(thread_ts) and not message.deleted:
                # Replying to a reply lands in the parent's thread.
                return message.thread_ts if message.is_reply else message.ts
        raise _ApiError("invalid_thread_ts")

    def _find_message(self, params: Mapping[str, Any], ts_key: str) -> tuple[Channel, Message]:
        channel = self._channel(_required(params, "channel", "channel_not_found"))
        ts = _required(params, ts_key, "message_not_found")
        try:
            message = self.message(channel.id, ts)
        except KeyError:
            raise _ApiError("message_not_found") from None
        if message.deleted:
            raise _ApiError("message_not_found")
        return channel, message

    # ---- Web API methods -------------------------------------------------------------------------

    def _build_handlers(self) -> dict[str, Handler]:
        return {
            "api.test": lambda params: {"args": dict(params)},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.members": self._conversations_members,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.delete": self._files_delete,
            "views.open": self._views_open,
            "views.update": self._views_update,
            **self._manifest_handlers(),  # the app-configuration section (apps.manifest.*) below
        }

    def _auth_test(self, params: Json) -> Json:
        bot = self.users[self.bot_user_id]
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain.title(),
            "user": bot.name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Json) -> Json:
        self._need("chat:write")
        channel = self._postable(_required(params, "channel", "channel_not_found"))
        text, blocks = self._message_content("chat.postMessage", params)
        thread_ts = self._thread_parent(channel, params.get("thread_ts"))
        metadata = _json_param(params, "metadata", "invalid_metadata_format")
        message = Message(
            self._next_ts(), channel.id, text, blocks, thread_ts, self.bot_user_id, self.bot_id,
            reply_broadcast=thread_ts is not None and _flag(params.get("reply_broadcast")),
            metadata=metadata if isinstance(metadata, dict) else None,
        )  # fmt: skip
        self._messages[channel.id].append(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(self.team_id)}

    def _chat_update(self, params: Json) -> Json:
        self._need("chat:write")
        channel, message = self._find_message(params, "ts")
        if message.user != self.bot_user_id:
            raise _ApiError("cant_update_message")
        new_blocks = _blocks_param(params)
        blocks = message.blocks if new_blocks is None else new_blocks  # omitted blocks are kept, [] clears
        text = str(params.get("text") or "")
        if not text and not blocks:
            raise _ApiError("no_text")
        self._check_message("chat.update", {"text": text, "blocks": new_blocks,
                                            "attachments": _json_param(params, "attachments", "invalid_attachments")})
        message.replace(text, blocks)
        return {"channel": channel.id, "ts": message.ts, "text": text, "message": message.to_api(self.team_id)}

    def _chat_post_ephemeral(self, params: Json) -> Json:
        self._need("chat:write")
        channel = self._postable(_required(params, "channel", "channel_not_found"))
        user = _required(params, "user", "user_not_found")
        if user not in self.users:
            raise _ApiError("user_not_found")
        if user not in channel.members:
            raise _ApiError("user_not_in_channel")
        text, blocks = self._message_content("chat.postEphemeral", params)
        thread_ts = self._thread_parent(channel, params.get("thread_ts"))
        ephemeral = Ephemeral(self._next_ts(), channel.id, user, text, blocks, thread_ts)
        self.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    def _chat_get_permalink(self, params: Json) -> Json:
        channel, message = self._find_message(params, "message_ts")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _read_scope_for(self, channel: Channel) -> str:
        return "groups:read" if channel.is_private and not channel.is_im else "channels:read"

    def _conversations_members(self, params: Json) -> Json:
        channel = self._channel(_required(params, "channel", "channel_not_found"))
        self._need(self._read_scope_for(channel))
        limit = max(1, min(_int_param(params, "limit", 100), 1000))
        cursor = str(params.get("cursor") or "")
        start = _decode_cursor(cursor) if cursor else 0
        page = channel.members[start : start + limit]
        more = start + limit < len(channel.members)
        return {"members": page, "response_metadata": {"next_cursor": _encode_cursor(start + limit) if more else ""}}

    def _conversations_info(self, params: Json) -> Json:
        channel = self._channel(_required(params, "channel", "channel_not_found"))
        self._need(self._read_scope_for(channel))
        info: Json = {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_im,
            "is_group": channel.is_private and not channel.is_im,
            "is_im": channel.is_im,
            "is_private": channel.is_private,
            "is_archived": False,
            "is_member": self.bot_user_id in channel.members,
            "created": channel.created,
            "context_team_id": self.team_id,
        }
        if _flag(params.get("include_num_members")):
            info["num_members"] = len(channel.members)
        return {"channel": info}

    # conversations.history / conversations.replies, per docs.slack.dev/reference/methods/conversations.history
    # and .../conversations.replies: a *:history scope for the conversation's type; history newest first (top-level
    # messages and broadcast replies), replies the parent first and then its replies oldest first; ``oldest`` and
    # ``latest`` exclusive unless ``inclusive``; ``limit`` (default 100) with cursor pagination; and message
    # ``metadata`` ({"event_type", "event_payload"}, as chat.postMessage took it) only with include_all_metadata.

    def _history_scope_for(self, channel: Channel) -> str:
        if channel.is_im:
            return "im:history"
        return "groups:history" if channel.is_private else "channels:history"

    def _conversations_history(self, params: Json) -> Json:
        channel = self._channel(_required(params, "channel", "channel_not_found"))
        self._need(self._history_scope_for(channel))
        found = [m for m in reversed(self.messages(channel.id)) if _in_range(m.ts, params)]
        return self._history_page(found, params)

    def _conversations_replies(self, params: Json) -> Json:
        channel = self._channel(_required(params, "channel", "channel_not_found"))
        self._need(self._history_scope_for(channel))
        ts = _required(params, "ts", "thread_not_found")
        parent = next((m for m in self._messages.get(channel.id, []) if m.ts == ts and not m.deleted), None)
        if parent is None:
            raise _ApiError("thread_not_found")
        found = [m for m in [parent, *self.thread(channel.id, ts)] if _in_range(m.ts, params)]
        return self._history_page(found, params)

    def _history_page(self, found: list[Message], params: Json) -> Json:
        limit = max(1, min(_int_param(params, "limit", 100), 999))
        cursor = str(params.get("cursor") or "")
        start = _decode_cursor(cursor) if cursor else 0
        page = found[start : start + limit]
        more = start + limit < len(found)
        with_metadata = _flag(params.get("include_all_metadata"))
        messages = []
        for message in page:
            out = message.to_api(self.team_id)
            if not with_metadata:
                out.pop("metadata", None)
            messages.append(out)
        return {"messages": messages, "has_more": more, "pin_count": 0,
                "response_metadata": {"next_cursor": _encode_cursor(start + limit) if more else ""}}

    def _usergroups_users_list(self, params: Json) -> Json:
        self._need("usergroups:read")
        group = _required(params, "usergroup", "no_such_subteam")
        if group not in self.usergroups:
            raise _ApiError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _users_info(self, params: Json) -> Json:
        self._need("users:read")
        user = self.users.get(_required(params, "user", "user_not_found"))
        if user is None:
            raise _ApiError("user_not_found")
        profile: Json = {"real_name": user.real_name, "display_name": user.name}
        # Slack omits the email unless the token also has users:read.email.
        if user.email and "users:read.email" in self.scopes:
            profile["email"] = user.email
        body: Json = {
            "id": user.id,
            "team_id": self.team_id,
            "name": user.name,
            "real_name": user.real_name,
            "deleted": user.deleted,
            "is_bot": user.is_bot,
            "tz": user.tz,
            "profile": profile,
        }
        return {"user": body}

    def _files_get_upload_url(self, params: Json) -> Json:
        self._need("files:write")
        filename = _required(params, "filename")
        length = _int_param(params, "length", -1)
        if length < 0:
            raise _ApiError("invalid_arguments")
        self._serial += 1
        file_id = f"F{self._serial:09d}"
        self._pending_uploads[file_id] = _Upload(file_id, filename, length, params.get("alt_txt"))
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: Json) -> Json:
        self._need("files:write")
        entries = _json_param(params, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        # The comment (and its optional blocks) is posted as the file's message, under a message's rules.
        blocks = _blocks_param(params)
        self._check_message("files.completeUploadExternal", {"text": params.get("initial_comment"), "blocks": blocks})
        files = [self._complete_file(entry) for entry in entries]
        channel_id = params.get("channel_id") or str(params.get("channels") or "").split(",")[0]
        if channel_id:
            channel = self._postable(str(channel_id))
            thread_ts = self._thread_parent(channel, params.get("thread_ts"))
            message = Message(
                self._next_ts(), channel.id, str(params.get("initial_comment") or ""), blocks or [], thread_ts,
                self.bot_user_id, self.bot_id, files=files,
            )  # fmt: skip
            self._messages[channel.id].append(message)
        elif params.get("thread_ts"):
            raise _ApiError("invalid_arguments")
        return {"files": files}

    def _complete_file(self, entry: Any) -> Json:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise _ApiError("invalid_arguments")
        pending = self._pending_uploads.get(str(entry["id"]))
        if pending is None or pending.id not in self.uploads:
            raise _ApiError("file_not_found")
        file = {
            "id": pending.id,
            "name": pending.filename,
            "title": entry.get("title") or pending.filename,
            "size": len(self.uploads[pending.id]),
            "user": self.bot_user_id,
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{pending.id}",
        }
        self._files[pending.id] = file
        return file

    def add_foreign_file(self, file_id: str, user: str) -> None:
        """A file someone else shared, which the bot's token may not delete (``cant_delete_file``)."""
        self._files[file_id] = {"id": file_id, "name": "other.pdf", "title": "other.pdf", "size": 0, "user": user}

    def file_exists(self, file_id: str) -> bool:
        return file_id in self._files or file_id in self._pending_uploads

    def _files_delete(self, params: Json) -> Json:
        # docs.slack.dev/reference/methods/files.delete: bot scope files:write; errors file_not_found ("does
        # not exist, or is not visible"), file_deleted ("already been deleted"), cant_delete_file ("does not
        # have permission"): a bot token may delete the files the bot itself uploaded. A message that shared
        # the file keeps it as a tombstone entry (`"mode": "tombstone"`, as conversations.history shows it).
        # An upload whose URL was granted but never completed is deletable too: Slack already holds a file
        # object for the id it granted.
        self._need("files:write")
        file_id = _required(params, "file")
        if file_id in self.deleted_files:
            raise _ApiError("file_deleted")
        file = self._files.get(file_id)
        if file is None and file_id not in self._pending_uploads:
            raise _ApiError("file_not_found")
        if file is not None and file.get("user") != self.bot_user_id:
            raise _ApiError("cant_delete_file")
        self._files.pop(file_id, None)
        self._pending_uploads.pop(file_id, None)
        self.uploads.pop(file_id, None)
        self.deleted_files.add(file_id)
        for messages in self._messages.values():
            for message in messages:
                message.files = [{"id": f["id"], "mode": "tombstone"} if f.get("id") == file_id else f
                                 for f in message.files]
        return {}

    def _parse_view(self, params: Json, method: str) -> Json:
        view = _json_param(params, "view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            self.refuse(method, ["invalid view type [json-pointer:/view/type]"], view)
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid view type"]})
        errors = validate_view(view)
        if errors:
            self.refuse(method, errors, view)
            raise _ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        return view

    def _take_trigger(self, params: Json) -> tuple[str, str | None]:
        trigger = _required(params, "trigger_id", "invalid_trigger_id")
        if trigger not in self._triggers:
            raise _ApiError("invalid_trigger_id")
        user, issued = self._triggers.pop(trigger)
        self._triggers[trigger] = (user, float("-inf"))  # remembered, so a second use is "exchanged"
        if issued == float("-inf"):
            raise _ApiError("exchanged_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl:
            raise _ApiError("expired_trigger_id")
        return trigger, user

    def _views_open(self, params: Json) -> Json:
        view = self._parse_view(params, "views.open")
        trigger, user = self._take_trigger(params)
        self._serial += 1
        view_id = f"V{self._serial:09d}"
        full = self._full_view(view_id, view, previous=None)
        self.views.append(View(view_id, full, user, trigger))
        return {"view": full}

    def _views_update(self, params: Json) -> Json:
        view = self._parse_view(params, "views.update")
        view_id, external_id = params.get("view_id"), params.get("external_id")
        record = next(
            (v for v in self.views if (view_id and v.id == view_id)
             or (external_id and v.view.get("external_id") == external_id)),
            None,
        )  # fmt: skip
        if record is None:
            raise _ApiError("not_found")
        if params.get("hash") and params["hash"] != record.view["hash"]:
            raise _ApiError("hash_conflict")
        record.history.append(record.view)
        record.view = self._full_view(record.id, view, previous=record.view)
        return {"view": record.view}

    def _full_view(self, view_id: str, view: Json, previous: Json | None) -> Json:
        self._serial += 1
        return {
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._serial:08x}",
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": "A0PRIVACY",
            "bot_id": self.bot_id,
            "blocks": list(view.get("blocks", [])),
        }


# --------------------------------------------------------------------------------------------------
# Terminal rendering for the demo and for failure messages

# Slack reads every ``<…>`` in mrkdwn and message text as a reference: ``<@U…>``/``<#C…>``/``<!here>`` are
# mentions, anything else is a link to its target, shown as its ``|label`` or as the target itself, without
# the brackets. So ``<email>`` typed in a help text shows as a link reading "email". Text meant literally
# must escape ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;``, which Slack shows as the characters
# ("Escaping text", https://docs.slack.dev/messaging/formatting-message-text#escaping).
_REFERENCE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def _plain(text: str, names: Mapping[str, str]) -> str:
    """Turn Slack's mrkdwn references and escapes into what a reader would see."""

    def reference(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        sigil, ref = target[:1], target[1:]
        if sigil == "!":
            return "@" + (label or ref.split("^")[0])
        if sigil in ("@", "#"):
            return sigil + (label or names.get(ref, ref))
        if target.startswith(("http:", "https:", "mailto:")):
            return f"{label} ({target})" if label else target
        return label or target  # a link to whatever was between the brackets

    return _unescape(_REFERENCE.sub(reference, text))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(obj: Any, names: Mapping[str, str]) -> str:
    """A text object as shown: ``plain_text`` is never parsed for references; ``mrkdwn`` is."""
    if not isinstance(obj, dict):
        return ""
    if obj.get("type") == "plain_text":
        return _unescape(str(obj.get("text", "")))
    return _plain(str(obj.get("text", "")), names)


def _render_element(element: Any, names: Mapping[str, str]) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "button":
        return f"[ {_text_of(element.get('text'), names)} ]"
    if kind in ("static_select", "external_select", "users_select", "conversations_select", "channels_select"):
        return f"[ {_text_of(element.get('placeholder'), names) or 'Select'} v ]"
    if kind == "overflow":
        return "[ ... ]"
    if kind in ("datepicker", "timepicker"):
        return f"[ {element.get('initial_date') or element.get('initial_time') or kind} ]"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind in ("plain_text", "mrkdwn"):
        return _text_of(element, names)
    if kind == "plain_text_input":
        return "[ ____________ ]"
    return f"[{kind}]"


def _rich_text(node: Any, names: Mapping[str, str]) -> str:
    if isinstance(node, list):
        return "".join(_rich_text(item, names) for item in node)
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "user":
        return "@" + names.get(str(node.get("user_id")), str(node.get("user_id")))
    if node.get("type") == "link":
        return str(node.get("text") or node.get("url", ""))
    return _rich_text(node.get("elements", []), names)


def _render_block(block: Json, names: Mapping[str, str]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"), names)
        return [title, "=" * len(title)]
    if kind == "divider":
        return ["-" * 40]
    if kind == "section":
        lines = _text_of(block.get("text"), names).splitlines() if block.get("text") else []
        lines += ["  " + _text_of(f, names) for f in block.get("fields") or []]
        if block.get("accessory"):
            lines.append("  " + _render_element(block["accessory"], names))
        return lines
    if kind == "context":
        return ["  " + "  |  ".join(_render_element(e, names) for e in block.get("elements", []))]
    if kind == "actions":
        return ["  ".join(_render_element(e, names) for e in block.get("elements", []))]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    if kind == "input":
        return [f"{_text_of(block.get('label'), names)}: {_render_element(block.get('element'), names)}"]
    if kind == "rich_text":
        return _rich_text(block.get("elements", []), names).splitlines()
    return [f"[{kind} block]"]


def render_message(msg: Message | Ephemeral | Mapping[str, Any], *, names: Mapping[str, str] | None = None) -> str:
    """Readable plain text for a message: blocks when present, else its text; files and edits noted."""
    names = names or {}
    if isinstance(msg, Mapping):
        text, blocks, files, edits = str(msg.get("text", "")), msg.get("blocks") or [], msg.get("files") or [], 0
    else:
        text, blocks, edits = msg.text, msg.blocks, len(msg.history)
        files = msg.files if isinstance(msg, Message) else []
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, dict):
            lines.extend(_render_block(block, names))
    if not blocks and text:
        lines.extend(_plain(text, names).splitlines())
    lines.extend(f"[file] {f.get('title') or f.get('name')}" for f in files)
    if edits:
        lines.append("(edited)")
    return "\n".join(lines)


def webhook_path(url: str) -> str:
    """The ``RecordedResponse.path`` a response_url maps to, for filtering ``FakeSlack.responses``."""
    return urlsplit(url).path.removeprefix("/webhook/")


# --------------------------------------------------------------------------------------------------
# The other direction: Slack calling the bot.
#
# ``SlackUserAgent`` posts signed slash commands, ``block_actions``, ``view_submission`` and Events API
# payloads to the bot's real HTTP endpoint, shaped as Slack documents them (slack.md §2.1-2.3), with every
# ``response_url`` and ``trigger_id`` issued by a ``FakeSlack`` so the bot's follow-ups land back in the
# fake. The HMAC is computed here rather than with slack-sdk so that drift on either side shows in tests.

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# Slack still sends the deprecated verification token in every payload; the bot must not rely on it.
LEGACY_VERIFICATION_TOKEN = "legacy-verification-token"  # noqa: S105 - a documented placeholder value


def sign_slack_request(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to each request: HMAC-SHA256 of ``v0:{ts}:{body}`` keyed by the signing secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackHttpResult:
    """What the bot answered to one Slack-originated request."""

    status: int
    text: str
    headers: Mapping[str, str]
    json: Any = None
    response_url: str | None = None
    trigger_id: str | None = None

    @property
    def response_path(self) -> str | None:
        """The ``RecordedResponse.path`` that the bot's respond() calls will be recorded under."""
        if self.response_url is None:
            return None
        return webhook_path(self.response_url)

    @property
    def rendered(self) -> str:
        return self.render()

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The answer as the user sees it: a JSON message rendered from its blocks, else the text read as
        Slack reads message text (references become links or mentions, escapes become characters)."""
        if isinstance(self.json, dict):
            return render_message(self.json, names=names)
        return _plain(self.text, names or {})


def find_action(blocks: list[dict[str, Any]], action_id: str) -> tuple[str | None, dict[str, Any]]:
    """Locate an interactive element by action_id in actions blocks or section accessories."""
    for block in blocks:
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    available = [
        e.get("action_id")
        for b in blocks
        for e in [*(b.get("elements") or []), b.get("accessory") or {}]
        if isinstance(e, dict) and e.get("action_id")
    ]
    raise LookupError(f"no element with action_id {action_id!r}; the message has {available}")


class SlackUserAgent:
    """Acts as Slack delivering a user's actions to the bot's events URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        bot_events_url: str,
        signing_secret: str,
        fake: FakeSlack,
        team_id: str = "T0001",
        api_app_id: str = "A0PRIVACY",
        *,
        socket_mode: SocketModePeer | None = None,
    ) -> None:
        self.socket_mode = socket_mode  # set: deliver over Socket Mode instead of POSTing to the events URL
        self.session = session
        self.url = bot_events_url
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self.api_app_id = api_app_id
        self._action_serial = 0

    # ---- transport -------------------------------------------------------------------------------

    async def post_raw(
        self, body: str, content_type: str = FORM, headers: Mapping[str, str] | None = None
    ) -> SlackHttpResult:
        """Send ``body`` exactly as given, unsigned unless ``headers`` carry a signature (negative tests)."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        async with self.session.post(self.url, data=body.encode(), headers=all_headers) as response:
            text = await response.text()
            return SlackHttpResult(response.status, text, dict(response.headers), _maybe_json(text))

    async def _post_signed(self, body: str, content_type: str) -> SlackHttpResult:
        if self.socket_mode is not None:
            return await self._over_socket(body, content_type)
        return await self.post_raw(body, content_type, sign_slack_request(body, self.signing_secret))

    async def _over_socket(self, body: str, content_type: str) -> SlackHttpResult:
        """The same payload Slack would POST, as a Socket Mode envelope (no signature: the socket is the trust)."""
        assert self.socket_mode is not None
        if content_type == JSON:
            kind, payload = "events_api", json.loads(body)
        else:
            form = dict(parse_qsl(body, keep_blank_values=True))
            if "payload" in form and "command" not in form:
                kind, payload = "interactive", json.loads(form["payload"])
            else:
                kind, payload = "slash_commands", dict(form)
        return _socket_result(await self.socket_mode.deliver(kind, payload))

    async def _post_payload(self, payload: dict[str, Any]) -> SlackHttpResult:
        # Interactivity arrives as a form with one field, `payload`, holding the JSON (slack.md §2.2).
        return await self._post_signed(urlencode({"payload": json.dumps(payload)}), FORM)

    # ---- identities ------------------------------------------------------------------------------

    def _user_name(self, user_id: str) -> str:
        user = self.fake.users.get(user_id)
        return user.name if user else user_id.lower()

    def _user(self, user_id: str) -> dict[str, Any]:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _channel_name(self, channel_id: str) -> str:
        channel = self.fake.channels.get(channel_id)
        if channel is None:
            return "unknown"
        return "directmessage" if channel.is_im else channel.name

    def _common(self) -> dict[str, Any]:
        return {
            "team": {"id": self.team_id, "domain": self.fake.team_domain},
            "api_app_id": self.api_app_id,
            "token": LEGACY_VERIFICATION_TOKEN,
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _action_ts(self) -> str:
        self._action_serial += 1
        return f"{int(time.time())}.{self._action_serial:06d}"

    # ---- what a user can do ----------------------------------------------------------------------

    async def command(self, user_id: str, channel_id: str, text: str, command: str = "/privacy") -> SlackHttpResult:
        """A slash command, form-encoded with the fields Slack sends (slack.md §2.1)."""
        response_url = self.fake.response_url("commands", channel=channel_id, user=user_id)
        trigger_id = self.fake.trigger_id(user_id)
        form = {
            "token": LEGACY_VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.fake.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        return self._answered("slash-command answer", await self._post_signed(urlencode(form), FORM),
                              response_url, trigger_id)

    async def click(
        self,
        user_id: str,
        message: Message | Ephemeral,
        action_id: str,
        value: str | None = None,
        *,
        block_id: str | None = None,
    ) -> SlackHttpResult:
        """A button press on a message the fake holds, as a ``block_actions`` payload (slack.md §2.2)."""
        found_block_id, element = find_action(message.blocks, action_id)
        is_ephemeral = isinstance(message, Ephemeral)
        response_url = self.fake.response_url(
            "actions", channel=message.channel, message_ts=message.ts, user=user_id, ephemeral=is_ephemeral
        )
        trigger_id = self.fake.trigger_id(user_id)
        action: dict[str, Any] = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": block_id or found_block_id,
            "action_ts": self._action_ts(),
        }
        if "text" in element:
            action["text"] = element["text"]
        if value is not None or "value" in element:
            action["value"] = element.get("value") if value is None else value
        if "style" in element:
            action["style"] = element["style"]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id),
            **self._common(),
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": is_ephemeral,
            },
            "channel": {"id": message.channel, "name": self._channel_name(message.channel)},
            "trigger_id": trigger_id,
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if isinstance(message, Message):  # Slack omits `message` for ephemeral containers
            payload["message"] = message.to_api(self.team_id)
            if message.thread_ts:
                payload["container"]["thread_ts"] = message.thread_ts
        return self._answered("block_actions answer", await self._post_payload(payload), response_url, trigger_id)

    async def submit_view(
        self,
        user_id: str,
        view: View | Mapping[str, Any],
        values: Mapping[str, Mapping[str, Mapping[str, Any]]],
    ) -> SlackHttpResult:
        """Submit a modal the bot opened; ``values`` is ``{block_id: {action_id: {"type", "value"...}}}``."""
        opened = dict(view.view if isinstance(view, View) else view)
        opened["state"] = {"values": {block: dict(actions) for block, actions in values.items()}}
        payload = {
            "type": "view_submission",
            "user": self._user(user_id),
            **self._common(),
            "trigger_id": self.fake.trigger_id(user_id),
            "view": opened,
            "response_urls": [],
        }
        result = await self._post_payload(payload)
        self._check_answer("view_submission answer", result, lambda answer: validate_view_answer(answer, opened))
        return result

    def _answered(self, kind: str, result: SlackHttpResult, response_url: str, trigger_id: str) -> SlackHttpResult:
        """A command's or click's answer, with the URLs it may answer through, checked as Slack would."""
        result.response_url, result.trigger_id = response_url, trigger_id
        self._check_answer(kind, result, validate_message)
        return result

    def _check_answer(self, kind: str, result: SlackHttpResult, validate: Callable[[Any], list[str]]) -> None:
        """Validate the HTTP answer Bolt built from ``ack(...)``, as Slack would before showing it. An
        answer Slack would refuse is recorded on the fake and fails the test here and now."""
        if result.status != 200 or not result.text.strip():
            return
        if isinstance(result.json, dict):
            answer: Any = result.json
        elif kind == "view_submission answer":
            answer = result.text  # only JSON (or nothing) is a valid answer to a submission
        else:
            answer = {"text": result.text}  # a text/plain answer is the message text (slack.md §1.6)
        errors = validate(answer)
        if errors:
            self.fake.refuse(kind, errors, answer)
            raise AssertionError(f"the bot's {kind} would be refused by Slack: {errors}")

    async def event(self, event: Mapping[str, Any], *, event_id: str | None = None) -> SlackHttpResult:
        """An Events API ``event_callback`` envelope as JSON (slack.md §2.3)."""
        self._action_serial += 1
        envelope = {
            "token": LEGACY_VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._action_serial:08d}",
            "event_time": int(time.time()),
            "event": dict(event),
            "authorizations": [
                {"team_id": self.team_id, "user_id": self.fake.bot_user_id, "is_bot": True,
                 "is_enterprise_install": False}
            ],
        }  # fmt: skip
        return await self._post_signed(json.dumps(envelope), JSON)


# --------------------------------------------------------------------------------------------------
# Socket Mode: Slack's side of the WebSocket (owned by the Socket Mode work; other sections do not depend on it).
#
# As Slack documents it (https://api.slack.com/apis/connections/socket-implement, and
# https://docs.slack.dev/apis/events-api/using-socket-mode) and as slack_sdk's client expects it
# (slack_sdk/socket_mode/async_client.py, slack_sdk/socket_mode/aiohttp/__init__.py):
# - ``apps.connections.open`` is called with the app-level token (``xapp-…``, scope ``connections:write``);
#   a bot token gets ``not_allowed_token_type``. It answers a single-use WebSocket URL (here on loopback).
# - On connect Slack sends ``{"type": "hello", "num_connections": n, ...}``; then envelopes
#   ``{"envelope_id", "type": slash_commands | interactive | events_api, "payload", "accepts_response_payload",
#   "retry_attempt", "retry_reason"}``. The app acknowledges with ``{"envelope_id", "payload"?}``; the payload
#   is what an HTTP answer's body would have been (a command's text, a view submission's response_action).
# - Slack sends ``{"type": "disconnect", "reason": "refresh_requested"}`` before it recycles a connection.
# - An envelope not acknowledged is redelivered, with ``retry_attempt`` counting up (an events_api payload
#   keeps its ``event_id``); envelopes for an app with no open connection wait for one. The stand-in
#   redelivers an unacknowledged envelope when the connection it went out on drops, under the same
#   ``envelope_id``, which is the strictest case for the app's "handled once" rule.


@dataclass
class Envelope:
    envelope_id: str
    type: str
    payload: Json
    accepts_response_payload: bool
    deliveries: list[int] = field(default_factory=list)  # the connection serial of each send
    ack: Json | None = None  # the first acknowledgement's body, once it came
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self) -> str:
        retries = len(self.deliveries)
        return json.dumps({
            "envelope_id": self.envelope_id, "type": self.type, "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
            "retry_attempt": retries, "retry_reason": "timeout" if retries else "",
        })


SANDBOX_APP_TOKEN = "xapp-1-A0PRIVACY-1-sandbox"  # noqa: S105 - a fixture value, never a real credential


class SocketModePeer:
    """Slack's Socket Mode server for one app: hands out WebSocket URLs, pushes envelopes, takes acks."""

    def __init__(self, fake: FakeSlack, app_token: str = SANDBOX_APP_TOKEN) -> None:
        self.fake = fake
        self.app_token = app_token
        self.envelopes: dict[str, Envelope] = {}
        self.duplicate_acks = 0  # acknowledgements for an envelope already acknowledged
        self.connections_opened = 0
        self._tickets: set[str] = set()
        self._open: dict[int, web.WebSocketResponse] = {}
        self._waiting: deque[Envelope] = deque()  # not yet sent on a live connection
        self._drop_after_next_send = False
        self._connected = asyncio.Condition()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_get("/socket-mode/link/", self._link)

    @property
    def connected(self) -> int:
        return len(self._open)

    # ---- what tests and the user agent do --------------------------------------------------------

    async def deliver(self, type: str, payload: Json, *, timeout: float = 10.0) -> Envelope:
        """Push an envelope (now, or when the app next connects) and wait for its first acknowledgement."""
        envelope = Envelope(secrets.token_hex(16), type, payload,
                            accepts_response_payload=type in ("slash_commands", "interactive"))
        self.envelopes[envelope.envelope_id] = envelope
        self._waiting.append(envelope)
        await self._flush()
        try:
            await asyncio.wait_for(envelope.acked.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"envelope {envelope.envelope_id} ({type}) was not acknowledged in {timeout}s; "
                                 f"sent {len(envelope.deliveries)} time(s)") from None
        return envelope

    def drop_after_next_send(self) -> None:
        """Cut the connection right after the next envelope goes out, before its ack can come back."""
        self._drop_after_next_send = True

    async def drop(self) -> None:
        """Close every open connection, as a network fault or a Slack restart would."""
        for ws in list(self._open.values()):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    async def request_refresh(self) -> None:
        """Slack's routine recycling: a disconnect frame; the app is expected to reconnect."""
        for ws in list(self._open.values()):
            await ws.send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                          "debug_info": {"host": "sandbox"}}))

    async def wait_connected(self, *, opened: int = 1, timeout: float = 10.0) -> None:
        """Until at least ``opened`` connections were made so far and one is open now."""
        async with self._connected:
            try:
                await asyncio.wait_for(self._connected.wait_for(
                    lambda: self.connections_opened >= opened and self.connected > 0), timeout)
            except TimeoutError:
                raise AssertionError(f"no Socket Mode connection #{opened} within {timeout}s") from None

    # ---- the wire ------------------------------------------------------------------------------

    async def _connections_open(self, request: web.Request) -> web.Response:
        call = RecordedCall("apps.connections.open", {}, dict(request.headers), time.time(), request.method)
        self.fake.calls.append(call)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            call.response = {"ok": False, "error": "not_authed"}
        elif token.startswith("xoxb-") or token.startswith("xoxp-"):
            call.response = {"ok": False, "error": "not_allowed_token_type"}
        elif token != self.app_token:
            call.response = {"ok": False, "error": "invalid_auth"}
        else:
            ticket = secrets.token_hex(12)
            self._tickets.add(ticket)
            host = self.fake.base_url.removeprefix("http://")
            call.response = {"ok": True, "url": f"ws://{host}/socket-mode/link/?ticket={ticket}&app_id=A0PRIVACY"}
        call.status = 200
        await self.fake._notify()
        return web.json_response(call.response)

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)  # a URL works once
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async with self._connected:
            self.connections_opened += 1
            serial = self.connections_opened
            self._open[serial] = ws
            self._connected.notify_all()
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._open),
                                      "debug_info": {"host": "sandbox", "approximate_connection_time": 18060},
                                      "connection_info": {"app_id": "A0PRIVACY"}}))
        await self._flush()
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._take_ack(message.data)
        finally:
            self._open.pop(serial, None)
            self._requeue_unacked(serial)
        return ws

    def _take_ack(self, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            return
        envelope = self.envelopes.get(str(body.get("envelope_id", "")))
        if envelope is None:
            return
        if envelope.acked.is_set():
            self.duplicate_acks += 1
            return
        envelope.ack = body
        envelope.acked.set()

    def _requeue_unacked(self, serial: int) -> None:
        for envelope in self.envelopes.values():
            if envelope.deliveries and envelope.deliveries[-1] == serial and not envelope.acked.is_set():
                self._waiting.append(envelope)

    async def _flush(self) -> None:
        while self._waiting and self._open:
            serial, ws = next(iter(self._open.items()))
            envelope = self._waiting.popleft()
            if envelope.acked.is_set():
                continue  # its ack came late, on another connection: nothing to redeliver
            envelope.deliveries.append(serial)
            await ws.send_str(envelope.frame())
            if self._drop_after_next_send:
                self._drop_after_next_send = False
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)


# --------------------------------------------------------------------------------------------------
# App Home: ``views.publish`` (https://docs.slack.dev/reference/methods/views.publish). It takes ``user_id``
# and a ``view`` of type ``home`` (up to 100 blocks), needs no scope beyond the bot token, replaces what
# that user's Home tab shows, and answers the stored view; ``hash`` guards against a stale overwrite.


class AppHomeTabs:
    """What each user's Home tab shows, and every version published."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.views: dict[str, Json] = {}
        self.history: dict[str, list[Json]] = {}
        fake._handlers["views.publish"] = self._views_publish

    def text(self, user_id: str) -> str:
        """The Home tab as a person reads it (blank when nothing was published)."""
        view = self.views.get(user_id)
        if view is None:
            return ""
        return render_message({"text": "", "blocks": view["blocks"]}, names=self.fake_names())

    def fake_names(self) -> dict[str, str]:
        return {uid: user.name for uid, user in self.fake.users.items()}

    def _views_publish(self, params: Json) -> Json:
        user_id = _required(params, "user_id")
        if user_id not in self.fake.users:
            raise _ApiError("user_not_found")
        view = self.fake._parse_view(params, "views.publish")  # validated like every view (sandbox/blockkit.py)
        if view["type"] != "home":
            self.fake.refuse("views.publish", ["must be a home view [json-pointer:/view/type]"], view)
            raise _ApiError("invalid_arguments",
                            response_metadata={"messages": ["[ERROR] views.publish takes a home view"]})
        previous = self.views.get(user_id)
        if params.get("hash") and previous is not None and params["hash"] != previous["hash"]:
            raise _ApiError("hash_conflict")
        full = self.fake._full_view(previous["id"] if previous else f"VH{user_id}", view, previous=previous)
        self.views[user_id] = full
        self.history.setdefault(user_id, []).append(full)
        return {"view": full}


def _socket_result(envelope: Envelope) -> SlackHttpResult:
    """An acknowledgement seen as the HTTP answer it stands for (so tests read both transports alike)."""
    payload = (envelope.ack or {}).get("payload")
    if payload is None:
        return SlackHttpResult(200, "", {}, None)
    if set(payload) == {"text"}:
        return SlackHttpResult(200, str(payload["text"]), {"Content-Type": "text/plain"}, None)
    return SlackHttpResult(200, json.dumps(payload), {"Content-Type": JSON}, payload)


def _maybe_json(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
