"""A faithful local stand-in for Mautic 5's REST API and its webhook sender.

Used by the tests, `python -m bot demo` and the benchmarks. Behaviour follows Mautic's core source
(`github:mautic/mautic`, branch 5.x, 5.1.0: `ApiBundle`, `LeadBundle`, `WebhookBundle`). The § numbers in
comments are the sections of the project's Mautic notes (§1 webhooks, §2 REST), which cite file and line there.
The quirks are deliberate: string list totals, `contacts` keyed by id, `{}` for an empty contact list
but `[]` for other empty maps, prefix-LIKE `search=email:`, accent/case-insensitive `eq`, `limit=0` = all,
default order `last_active DESC`, merges on PATCH, GET of a merged id answering with the survivor.

Nothing here is global and nothing listens until `start()` (or `async with`) is called.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import csv
import hashlib
import heapq
import hmac
import html
import itertools
import json
import math
import random
import re
import secrets
import socket
import time
import unicodedata
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

MAUTIC_VERSION = "5.1.0"  # the default; FakeMautic(version=…) plays another supported line
DEFAULT_SITE_URL = "https://mautic.example.com"
_NULL = -(2**63)  # "NULL" marker in the compact epoch-second columns of the bulk store
_ID_BOUND_EXPRS = {"gt", "gte", "lt", "lte", "eq"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------------------------------
# Small helpers


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(dt: datetime | None) -> str | None:
    """PHP 'c' format: seconds precision with an explicit offset (§2.3)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.replace(microsecond=0).isoformat()


def _epoch(dt: datetime | None) -> int:
    if dt is None:
        return _NULL
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _from_epoch(value: int) -> datetime | None:
    return None if value == _NULL else datetime.fromtimestamp(value, UTC)


def _collate(value: str) -> str:
    """utf8mb4_unicode_ci approximation: case- and accent-insensitive comparison key (§2.4)."""
    if value.isascii():
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE → regex; `%` and `_` are wildcards, matched on the collation key."""
    out = []
    for ch in _collate(pattern):
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _parse_when(value: Any) -> int:
    """A `where` value for a datetime column: 'Y-m-d H:i:s' (UTC, as stored) or ISO with offset."""
    parsed = datetime.fromisoformat(str(value).strip())
    return _epoch(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _php_int(value: Any, default: int) -> int:
    """PHP's (int) cast: leading digits or 0; missing → default."""
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    match = re.match(r"\s*([+-]?\d+)", str(value))
    return int(match.group(1)) if match else 0


def parse_php_query(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Parse `where[0][val][1][col]=x` style keys into nested dicts, as PHP's $_GET does."""
    root: dict[str, Any] = {}
    for key, value in items:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\]]*\])*)", key)
        if not match:
            root[key] = value
            continue
        parts = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        node = root
        for index, part in enumerate(parts):
            name = part if part != "" else str(len(node))
            if index == len(parts) - 1:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = {}
                    node[name] = child
                node = child
    return root


def escapes_where_values(version: str) -> bool:
    """The stand-in's one version switch, the same rule as the client's ``MauticVersion``: Mautic 5.x passes
    `where` through ``InputHelper::cleanArray`` (CoreBundle/Helper/InputHelper.php, ``clean()`` =
    FILTER_SANITIZE_SPECIAL_CHARS; called in ApiBundle/Controller/FetchCommonApiController.php,
    getWhereFromRequest, and CoreBundle/Controller/Api/StatsApiController.php); PR #14550 removed it."""
    digits = re.match(r"\d+", version)
    return digits is None or int(digits.group(0)) < 6


def php_special_chars(value: str) -> str:
    """PHP's FILTER_SANITIZE_SPECIAL_CHARS: `'"<>&` and characters below 32 become numeric entities."""
    return "".join(f"&#{ord(ch)};" if ch in "'\"<>&" or ord(ch) < 32 else ch for ch in value)


def _in_values(raw: Any) -> list[str]:
    """`in`/`notIn` values as Mautic reads them: ``str_getcsv(html_entity_decode($val), ',', '"')``
    (CoreBundle/Entity/CommonRepository.php, buildWhereClauseFromArray)."""
    if isinstance(raw, list):
        return [str(x) for x in raw]
    row = next(csv.reader([html.unescape(str(raw))], quotechar='"'), [])
    return row or [""]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k)))
        return [value[k] for k in keys]
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


class _ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None, *, details: bool = True) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.details = status, message, type_, details


def _error_body(status: int, message: str, type_: str | None = None, *, details: bool = True) -> dict[str, Any]:
    """§2.8: controller errors carry `details` + `type`; auth/OAuth errors have no `details`."""
    err: dict[str, Any] = {"code": status, "message": message}
    if details:
        err["details"] = []
    err["type"] = type_
    return {"errors": [err]}


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers
    )


# --------------------------------------------------------------------------------------------------
# Data model


_CORE_FIELDS: list[tuple[str, str, str, str]] = [
    # alias, label, type, group — the fields a stock Mautic 5 ships with
    ("title", "Title", "lookup", "core"),
    ("firstname", "First Name", "text", "core"),
    ("lastname", "Last Name", "text", "core"),
    ("company", "Primary company", "text", "core"),
    ("position", "Position", "text", "core"),
    ("email", "Email", "email", "core"),
    ("mobile", "Mobile", "tel", "core"),
    ("phone", "Phone", "tel", "core"),
    ("points", "Points", "number", "core"),
    ("fax", "Fax", "tel", "core"),
    ("address1", "Address Line 1", "text", "core"),
    ("address2", "Address Line 2", "text", "core"),
    ("city", "City", "text", "core"),
    ("state", "State", "region", "core"),
    ("zipcode", "Zip Code", "text", "core"),
    ("country", "Country", "country", "core"),
    ("preferred_locale", "Preferred Locale", "locale", "core"),
    ("timezone", "Preferred Timezone", "timezone", "core"),
    ("last_active", "Date Last Active", "datetime", "core"),
    ("attribution_date", "Attribution Date", "datetime", "core"),
    ("attribution", "Attribution", "number", "core"),
    ("website", "Website", "url", "core"),
    ("facebook", "Facebook", "text", "social"),
    ("twitter", "Twitter", "text", "social"),
    ("linkedin", "LinkedIn", "text", "social"),
]
_DATE_COLUMNS = {"last_active", "date_added", "date_modified", "date_identified"}
_INT_COLUMNS = {"id", "points"}
_GROUPS = ("core", "social", "personal", "professional")


@dataclass
class _Contact:
    id: int
    values: dict[str, Any]
    date_added: datetime
    date_modified: datetime
    last_active: datetime | None = None
    date_identified: datetime | None = None
    points: int = 0
    dnc: list[dict[str, Any]] = field(default_factory=list)
    ip_addresses: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)
    campaigns: dict[int, dict[str, Any]] = field(default_factory=dict)
    companies: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    activity: list[dict[str, Any]] = field(default_factory=list)
    activity_generated: int = 0


class _BulkStore:
    """Up to millions of contacts in parallel arrays (~25 bytes each); dicts exist only for pages served."""

    def __init__(self, start_id: int, n: int, domain: str) -> None:
        self.start = start_id
        self.n = n
        self.domain = domain
        self.last_active = array("q", bytes(8 * n))
        self.date_added = array("q", bytes(8 * n))
        self.alive = bytearray(b"\x01" * n)

    def index(self, cid: int) -> int | None:
        i = cid - self.start
        return i if 0 <= i < self.n and self.alive[i] else None

    def email(self, i: int) -> str:
        return f"bulk{self.start + i}@{self.domain}"


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received, for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    query_string: str
    json: Any
    form: dict[str, str] | None
    auth: str | None  # "basic" | "bearer" | None
    time: float


@dataclass
class _Fault:
    prefix: str
    method: str | None
    status: int
    retry_after: int | None
    times: int | None
    applied: bool = False


@dataclass
class _Slow:
    prefix: str
    seconds: float
    times: int | None


@dataclass(frozen=True)
class _Cond:
    col: str
    expr: str
    val: Any  # str | list[str] | list[_Cond] (andX/orX) | None


@dataclass
class _MatchCache:
    """Sorted ids matching one filter (without id bounds), kept in step with every mutation."""

    pred_regular: Callable[[int], bool]
    pred_bulk: Callable[[int], bool] | None
    ids: array[int]


# --------------------------------------------------------------------------------------------------
# Webhooks over the API (`/api/hooks`) and the API user's permissions (`/api/users/self`, permissioncheck).
# Kept apart from the contact API above: `python -m bot setup mautic` is its one client. Behaviour follows
# Mautic 5.x: WebhookBundle/Config/config.php (standard entity routes under /hooks),
# WebhookBundle/Controller/Api/WebhookApiController.php (root keys `hook`/`hooks`; `triggers` adds events,
# and only a PUT removes the ones it leaves out), WebhookBundle/Entity/Webhook.php (API fields: id, name,
# description, webhookUrl, secret, eventsOrderbyDir, category, triggers; name and webhookUrl required),
# WebhookBundle/Model/WebhookModel.php::saveEntity (a null secret becomes a new 64-hex key),
# ApiBundle/Controller/CommonApiController.php (POST new → 201; PATCH of a missing id → 404, PUT creates;
# PUT clears what it leaves out), CoreBundle/Entity/CommonRepository.php::getEntities (INDEX BY id, so a
# non-empty list is keyed by id, and `[]` when empty; default order name ASC, WebhookRepository),
# UserBundle/Controller/Api/UserApiController.php (getSelfAction, isGrantedAction with RETURN_ARRAY), and
# CoreBundle/Security/Permissions/AbstractPermissions.php (viewown … full; `full` grants every level).

_ACCESS_DENIED = "You do not have access to the requested area/action."


class _HooksApi:
    """Mixin of FakeMautic: `/api/hooks` list/get/new/edit and the API user's role."""

    hooks: dict[int, dict[str, Any]]
    # None: the API user is an administrator (every permission granted); else the role's permissions.
    role_permissions: set[str] | None

    def _init_hooks(self) -> None:
        self.hooks = {}
        self.role_permissions = None
        self._next_hook_id = 1

    def _hook_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/users/self", self._h_users_self)
        r.add_post(r"/api/users/{uid:\d+}/permissioncheck", self._h_permission_check)
        r.add_get("/api/hooks", self._h_hooks)
        r.add_post("/api/hooks/new", self._h_hook_new)
        r.add_get(r"/api/hooks/{hid:\d+}", self._h_hook_get)
        r.add_put(r"/api/hooks/{hid:\d+}/edit", self._h_hook_edit)
        r.add_patch(r"/api/hooks/{hid:\d+}/edit", self._h_hook_edit)

    def granted(self, permission: str) -> bool:
        """Whether the API user's role has `bundle:level:permission` (`view` = viewown or viewother)."""
        if self.role_permissions is None:
            return True
        bundle, level, perm = permission.split(":")
        held = self.role_permissions
        if f"{bundle}:{level}:full" in held or permission in held:
            return True
        return perm == "view" and bool({f"{bundle}:{level}:viewown", f"{bundle}:{level}:viewother"} & held)

    def _require(self, permission: str) -> None:
        if not self.granted(permission):
            raise _ApiError(403, _ACCESS_DENIED)

    async def _h_users_self(self, request: web.Request) -> web.Response:
        admin = self.role_permissions is None
        return _json({"id": 1, "username": "api", "firstName": "API", "lastName": "User", "email": "api@example.com",
                      "role": {"id": 1, "name": "Administrator" if admin else "Privacy bot", "isAdmin": admin}})

    async def _h_permission_check(self, request: web.Request) -> web.Response:
        if int(request.match_info["uid"]) != 1:
            raise _ApiError(404, "Item was not found.")
        asked = _as_list((await FakeMautic._body(request)).get("permissions"))
        if not asked:
            raise _ApiError(400, "No permissions to check")
        return _json({str(p): self.granted(str(p)) for p in asked})

    def _hook_view(self, hook: dict[str, Any]) -> dict[str, Any]:
        return {k: (list(v) if k == "triggers" else v) for k, v in hook.items()}

    async def _h_hooks(self, request: web.Request) -> web.Response:
        self._require("webhook:webhooks:view")
        ordered = sorted(self.hooks.values(), key=lambda h: (str(h["name"] or "").lower(), h["id"]))
        start = _php_int(request.query.get("start"), 0)
        limit = _php_int(request.query.get("limit"), 30)
        page = ordered[start:start + limit] if limit > 0 else ordered[start:]
        hooks: Any = {str(h["id"]): self._hook_view(h) for h in page} or []
        return _json({"total": len(ordered), "hooks": hooks})

    def _hook_or_404(self, request: web.Request) -> dict[str, Any] | None:
        return self.hooks.get(int(request.match_info["hid"]))

    async def _h_hook_get(self, request: web.Request) -> web.Response:
        self._require("webhook:webhooks:view")
        hook = self._hook_or_404(request)
        if hook is None:
            raise _ApiError(404, "Item was not found.")
        return _json({"hook": self._hook_view(hook)})

    async def _h_hook_new(self, request: web.Request) -> web.Response:
        self._require("webhook:webhooks:create")
        return self._save_hook(None, await FakeMautic._body(request), clear_missing=True)

    async def _h_hook_edit(self, request: web.Request) -> web.Response:
        hook = self._hook_or_404(request)
        body = await FakeMautic._body(request)
        if hook is None:
            if request.method == "PATCH":
                raise _ApiError(404, "Item was not found.")
            self._require("webhook:webhooks:create")  # PUT of a missing id creates one
            return self._save_hook(None, body, clear_missing=True)
        self._require("webhook:webhooks:editother")
        return self._save_hook(hook, body, clear_missing=request.method == "PUT")

    def _save_hook(self, hook: dict[str, Any] | None, body: dict[str, Any], *, clear_missing: bool) -> web.Response:
        now = _iso(_utcnow())
        draft = dict(hook) if hook else {
            "isPublished": True, "dateAdded": now, "dateModified": None, "createdBy": 1, "createdByUser": "API User",
            "modifiedBy": None, "modifiedByUser": None, "id": None, "name": None, "description": None,
            "webhookUrl": None, "secret": None, "eventsOrderbyDir": None, "category": None, "triggers": []}
        for key in ("name", "description", "webhookUrl", "secret", "eventsOrderbyDir"):
            if key in body:
                draft[key] = body[key] if body[key] not in ("",) else None
            elif clear_missing and hook is not None:
                draft[key] = None
        if "isPublished" in body:
            draft["isPublished"] = str(body["isPublished"]).lower() in ("1", "true", "yes", "on")
        elif clear_missing and hook is not None:
            draft["isPublished"] = False
        triggers = [str(t) for t in _as_list(body.get("triggers"))]
        kept = [] if clear_missing else list(draft["triggers"])
        draft["triggers"] = kept + [t for t in dict.fromkeys(triggers) if t not in kept]
        errors = {}
        if not draft["name"]:
            errors["name"] = ["A name is required."]
        if not draft["webhookUrl"] or not re.match(r"^https?://[^/\s]+", str(draft["webhookUrl"])):
            errors["webhookUrl"] = ["A valid URL is required."]
        if draft["eventsOrderbyDir"] not in (None, "ASC", "DESC"):
            errors["eventsOrderbyDir"] = ["The value you selected is not a valid choice."]
        if errors:
            message = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
            body_error = {"errors": [{"code": 400, "message": message, "details": errors}]}
            return _json(body_error, 400)
        if draft["secret"] is None:  # WebhookModel::saveEntity → EncryptionHelper::generateKey()
            draft["secret"] = secrets.token_hex(32)
        created = hook is None
        if created:
            draft["id"] = self._next_hook_id
            self._next_hook_id += 1
        else:
            draft["dateModified"], draft["modifiedBy"], draft["modifiedByUser"] = now, 1, "API User"
        self.hooks[draft["id"]] = draft
        headers = {"Location": f"/api/hooks/{draft['id']}"} if created else None
        return _json({"hook": self._hook_view(draft)}, 201 if created else 200, headers)


# --------------------------------------------------------------------------------------------------
# The fake


class FakeMautic(_HooksApi):
    """aiohttp fake of Mautic 5's API on 127.0.0.1 with a random port."""

    def __init__(
        self,
        *,
        username: str | None = "api",
        password: str | None = "secret",  # noqa: S107 - the fake's documented default login
        client_id: str | None = None,
        client_secret: str | None = None,
        site_url: str = DEFAULT_SITE_URL,
        version: str = MAUTIC_VERSION,
        client_credentials_grant: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.username, self.password = username, password
        self.version = version  # sent as Mautic-Version; decides the 5.x `where` escaping
        # Mautic ≥5 adds the client_credentials grant only to credentials an admin creates
        # (ApiBundle/Controller/ClientController.php, newAction); others get `unauthorized_client`.
        self.client_credentials_grant = client_credentials_grant
        self.wall_clock = wall_clock  # for X-RateLimit-Reset (an epoch second)
        self.client_id, self.client_secret = client_id, client_secret
        self.site_url = site_url
        self.token_lifetime = 3600
        self.calls: list[RecordedCall] = []
        self._tokens: dict[str, float] = {}  # access token → expiry (monotonic)
        self._contacts: dict[int, _Contact] = {}
        self._regular_ids: list[int] = []  # sorted ids present in _contacts
        self._bulk: _BulkStore | None = None
        self._merged: dict[int, int] = {}  # merged-away id → survivor id
        self._next_id = 1
        self._field_defs: dict[str, dict[str, Any]] = {}
        for alias, label, type_, group in _CORE_FIELDS:
            self.define_field(alias, label=label, type=type_, group=group)
        self._segments: dict[int, dict[str, Any]] = {}
        self._forms: dict[int, dict[str, Any]] = {}
        self._submissions: list[dict[str, Any]] = []
        self._email_stats: list[dict[str, Any]] = []
        self._counters = itertools.count(1)
        self._faults: list[_Fault] = []
        self._slow: list[_Slow] = []
        self._caches: OrderedDict[tuple[Any, ...], _MatchCache] = OrderedDict()
        self._cond: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._init_hooks()  # /api/hooks and the API user's role: the section above FakeMautic

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._cond = asyncio.Condition()
        app = web.Application(middlewares=[self._middleware], client_max_size=20 * 1024 * 1024)
        self._routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMautic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeMautic is not started")
        return f"http://127.0.0.1:{self._port}"

    # ---- seeding ---------------------------------------------------------------------------------

    def define_field(
        self, alias: str, *, label: str | None = None, type: str = "text", group: str = "core"
    ) -> None:
        """Register a contact field (custom fields are `leads` columns usable in `where`)."""
        if alias in self._field_defs:
            return
        self._field_defs[alias] = {
            "id": str(len(self._field_defs) + 1),
            "label": label or alias.replace("_", " ").title(),
            "alias": alias,
            "type": type,
            "group": group,
            "object": "lead",
            "is_fixed": "1" if any(alias == a for a, *_ in _CORE_FIELDS) else "0",
            "properties": "a:0:{}",
            "default_value": None,
        }

    def add_contact(
        self,
        *,
        email: str | None = None,
        firstname: str | None = None,
        lastname: str | None = None,
        last_active: datetime | None = None,
        date_added: datetime | None = None,
        date_identified: datetime | None = None,
        fields: dict[str, Any] | None = None,
        segments: Iterable[int] = (),
        dnc: Iterable[dict[str, Any] | tuple[str, int]] = (),
        tags: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        points: int = 0,
    ) -> int:
        """Create a contact; returns its id. `dnc` items: {"channel","reason","comments"} or (channel, reason)."""
        cid = self._new_id()
        added = date_added or _utcnow()
        values: dict[str, Any] = {"email": email, "firstname": firstname, "lastname": lastname}
        for alias, value in (fields or {}).items():
            self._ensure_field(alias, value)
            values[alias] = value
        identified = date_identified or (added if (email or firstname or lastname) else None)
        contact = _Contact(
            id=cid, values=values, date_added=added, date_modified=added,
            last_active=last_active, date_identified=identified, points=points,
        )
        contact.tags = [{"id": next(self._counters), "tag": t, "description": None} for t in tags]
        contact.ip_addresses = [
            {"ipAddress": ip, "id": next(self._counters), "ipDetails": None} for ip in ip_addresses
        ]
        for item in dnc:
            channel, reason, comments = (
                (item[0], item[1], "") if isinstance(item, tuple)
                else (item.get("channel", "email"), int(item.get("reason", 3)), item.get("comments", ""))
            )
            contact.dnc.append(self._dnc_record(channel, reason, comments, added))
        self._store(contact)
        for sid in segments:
            self._join_segment(sid, contact)
        self._touch(cid)
        return cid

    def seed_bulk(
        self,
        n: int,
        *,
        stale_fraction: float = 0.3,
        never_active_fraction: float = 0.1,
        seed: int = 0,
        now: datetime | None = None,
        stale_days: int = 1095,
        domain: str = "bulk.example.com",
    ) -> range:
        """Add n compact contacts `bulk<id>@<domain>`; returns their id range.

        `stale_fraction` have last_active older than `stale_days`; `never_active_fraction` have
        last_active NULL (half of those added before the cutoff, half after); the rest were active
        recently. Deterministic for a given seed.
        """
        if self._bulk is not None:
            raise RuntimeError("seed_bulk may be called once per FakeMautic")
        rng = random.Random(seed)  # noqa: S311 - synthetic data, must be reproducible
        now_s = _epoch(now or _utcnow())
        day = 86400
        cutoff = now_s - stale_days * day
        bulk = _BulkStore(self._next_id, n, domain)
        la, da = bulk.last_active, bulk.date_added
        rand, randint = rng.random, rng.randint
        for i in range(n):
            r = rand()
            if r < never_active_fraction:
                la[i] = _NULL
                da[i] = cutoff - randint(1, 2000) * day if rand() < 0.5 else cutoff + randint(1, 1000) * day
            elif r < never_active_fraction + stale_fraction:
                la[i] = cutoff - randint(1, 2000) * day - randint(0, day)
                da[i] = la[i] - randint(0, 1000) * day
            else:
                la[i] = now_s - randint(0, stale_days - 1) * day
                da[i] = la[i] - randint(0, 2000) * day
        self._bulk = bulk
        self._next_id += n
        self._caches.clear()
        return range(bulk.start, bulk.start + n)

    def add_segment(self, id: int, name: str, alias: str | None = None, *, published: bool = True) -> None:
        self._segments[id] = {
            "id": id, "name": name, "alias": alias or re.sub(r"\W+", "-", name.lower()).strip("-"),
            "description": None, "isPublished": published, "isGlobal": True, "isPreferenceCenter": False,
            "dateAdded": _iso(_utcnow()),
        }

    def add_note(self, contact_id: int, text: str, *, type: str = "general", when: datetime | None = None) -> int:
        contact = self._materialise(contact_id)
        note_id = next(self._counters)
        contact.notes.append({
            "id": note_id, "text": text, "type": type, "dateTime": _iso(when or _utcnow()),
            "lead": {"id": contact_id},
        })
        return note_id

    def add_activity(self, contact_id: int, events: Iterable[dict[str, Any]]) -> None:
        """Append timeline events; missing keys get Mautic-like defaults (§2.5)."""
        contact = self._materialise(contact_id)
        for event in events:
            eid = next(self._counters)
            full = {
                "event": event.get("event", "page.hit"),
                "eventId": event.get("eventId", f"{event.get('event', 'page.hit').split('.')[0]}{eid}"),
                "eventLabel": event.get("eventLabel", "Page hit"),
                "eventType": event.get("eventType", "Page hit"),
                "timestamp": event.get("timestamp") or _iso(_utcnow()),
                "contactId": str(contact_id),
                "details": event.get("details", {}),
            }
            full.update({k: v for k, v in event.items() if k not in full})
            contact.activity.append(full)

    def set_activity_generator(self, contact_id: int, total: int) -> None:
        """Give a contact `total` synthetic timeline events, generated per page and never stored."""
        self._materialise(contact_id).activity_generated = total

    def add_campaign(self, contact_id: int, campaign_id: int, name: str) -> None:
        self._materialise(contact_id).campaigns[campaign_id] = {
            "id": campaign_id, "name": name, "dateAdded": _iso(_utcnow()),
            "manuallyRemoved": False, "manuallyAdded": True, "listMembership": [],
        }

    def add_company(self, contact_id: int, name: str, **extra: Any) -> None:
        self._materialise(contact_id).companies.append({
            "id": str(next(self._counters)), "companyname": name, "is_primary": "1",
            "date_associated": _utcnow().strftime("%Y-%m-%d %H:%M:%S"), **extra,
        })

    def add_device(self, contact_id: int, device: str = "desktop", os: str = "Linux") -> None:
        self._materialise(contact_id).devices.append({
            "id": next(self._counters), "device": device, "deviceOsName": os, "deviceBrand": None,
            "dateAdded": _iso(_utcnow()),
        })

    def add_form(
        self, id: int, name: str, *, alias: str | None = None, fields: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Add a form. Each field dict needs `alias` and `type`; the rest gets Mautic defaults."""
        form_fields = []
        for order, spec in enumerate(fields, start=1):
            form_fields.append({
                "id": spec.get("id", next(self._counters)),
                "label": spec.get("label", spec["alias"].replace("_", " ").title()),
                "showLabel": True,
                "alias": spec["alias"],
                "type": spec["type"],
                "defaultValue": spec.get("defaultValue"),
                "isRequired": spec.get("isRequired", False),
                "validationMessage": None,
                "helpMessage": spec.get("helpMessage"),
                "order": order,
                "properties": spec.get("properties", []),
                "labelAttributes": None,
                "inputAttributes": None,
                "containerAttributes": None,
                "leadField": spec.get("leadField"),
                "saveResult": spec.get("saveResult", True),
                "isAutoFill": False,
                "showWhenValueExists": None,
                "showAfterXSubmissions": None,
            })
        self._forms[id] = {
            "id": id, "name": name, "alias": alias or re.sub(r"\W+", "", name.lower())[:10],
            "description": None, "isPublished": True, "category": None, "formType": "standalone",
            # dateModified stays null until the form is edited (CoreBundle/Model/FormModel.php, setTimestamps).
            "dateAdded": _iso(_utcnow()), "dateModified": None, "createdBy": 1, "createdByUser": "Admin User",
            "modifiedBy": None, "modifiedByUser": None, "fields": form_fields, "actions": [],
        }

    def edit_form_field(self, form_id: int, alias: str, **changes: Any) -> None:
        """Edit one field as the form builder does: the form is saved with changes, so its dateModified moves
        on (FormBundle/Entity/Form.php isChanged records field changes; FormModel::setTimestamps stamps it)."""
        form = self._forms[form_id]
        field = next(f for f in form["fields"] if f["alias"] == alias)
        field.update(changes)
        stamp = _utcnow()
        previous = form["dateModified"] or form["dateAdded"]
        if previous and _iso(stamp) <= previous:  # a second edit within the same second still moves it on
            stamp = datetime.fromisoformat(previous) + timedelta(seconds=1)
        form["dateModified"] = _iso(stamp)
        form["modifiedBy"], form["modifiedByUser"] = 1, "Admin User"

    def add_submission(
        self,
        form_id: int,
        contact_id: int,
        results: dict[str, Any],
        *,
        when: datetime | None = None,
        ip: str = "*.*.*.*",
        referer: str = "https://example.com/signup",
    ) -> int:
        form = self._forms[form_id]
        sub_id = next(self._counters)
        self._submissions.append({
            "id": sub_id,
            "ipAddress": {"ipAddress": ip, "id": next(self._counters), "ipDetails": None},
            "form": {k: form[k] for k in ("id", "name", "alias", "category")},
            "lead": {"id": contact_id},
            "trackingId": secrets.token_hex(20),
            "dateSubmitted": _iso(when or _utcnow()),
            "referer": referer,
            "page": None,
            "results": dict(results) or [],
        })
        return sub_id

    def add_email_stat(
        self, contact_id: int, *, email_id: int = 1, sent: datetime | None = None, read: bool = False
    ) -> int:
        stat_id = next(self._counters)
        contact = self.contact(contact_id)
        email = contact["fields"]["all"].get("email") if contact else None
        self._email_stats.append({
            "id": str(stat_id), "email_id": str(email_id), "lead_id": str(contact_id),
            "email_address": email, "ip_id": None,
            "date_sent": (sent or _utcnow()).strftime("%Y-%m-%d %H:%M:%S"),
            "is_read": "1" if read else "0", "is_failed": "0", "viewed_in_browser": "0",
            "date_read": None, "tracking_hash": secrets.token_hex(10), "retry_count": "0",
            "source": "email", "source_id": str(email_id), "open_count": "1" if read else "0",
        })
        return stat_id

    # ---- inspection ------------------------------------------------------------------------------

    def contact(self, id: int) -> dict[str, Any] | None:
        """The contact as `GET /api/contacts/{id}` would serialise it (no merge redirect), or None."""
        return self._serialise(id, minimal=False, single=True) if self._exists(id) else None

    def segment_ids(self, id: int) -> list[int]:
        """The segments a contact is in, as `GET /api/contacts/{id}/segments` lists them (manually removed
        memberships left out)."""
        contact = self._contacts.get(id)
        return sorted(k for k, v in contact.segments.items() if not v["manuallyRemoved"]) if contact else []

    def join_by_filter(self, id: int, segment_id: int) -> None:
        """A membership made by the segment's filters (manuallyAdded false), as a segment rebuild makes it."""
        contact = self._materialise(id)
        self._join_segment(segment_id, contact)
        contact.segments[segment_id]["manuallyAdded"] = False

    @property
    def contacts(self) -> Mapping[int, dict[str, Any]]:
        """Read-only, lazily serialised view of every live contact, keyed by id."""
        return _ContactsView(self)

    def merged_into(self, id: int) -> int | None:
        return self._merged.get(id)

    def webhook_contact(self, id: int) -> dict[str, Any]:
        """The contact as a lead webhook carries it (§1.3): no `fields.all`, empty groups as `[]`."""
        data = self._serialise(id, minimal=False, single=False)
        fields = {g: (v or []) for g, v in data["fields"].items() if g != "all"}
        data["fields"] = fields
        data["utmtags"], data["stage"], data["frequencyRules"] = [], None, []
        return data

    async def wait_for(
        self, method: str, path_prefix: str, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedCall]:
        """Wait (by condition, not polling) until `count` matching calls were received."""
        if self._cond is None:
            raise RuntimeError("FakeMautic is not started")

        def matching() -> list[RecordedCall]:
            return [c for c in self.calls if c.method == method.upper() and c.path.startswith(path_prefix)]

        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                seen = ", ".join(f"{c.method} {c.path}" for c in self.calls[-20:]) or "none"
                raise AssertionError(
                    f"expected {count} x {method} {path_prefix}*, got {len(matching())}; last calls: {seen}"
                ) from None
            return matching()

    # ---- fault injection -------------------------------------------------------------------------

    def fail(
        self,
        path_prefix: str,
        *,
        status: int = 500,
        retry_after: int | None = None,
        times: int | None = 1,
        method: str | None = None,
        applied: bool = False,
    ) -> None:
        """Answer the next `times` matching requests (None = forever) with `status` in Mautic's shape.

        With `applied`, Mautic does the work first and only the answer is lost (a proxy's 504 after a slow
        call, a dropped connection): the client cannot tell, and retries something already done."""
        self._faults.append(_Fault(path_prefix, method.upper() if method else None, status, retry_after, times,
                                   applied))

    def slow(self, path_prefix: str, seconds: float, *, times: int | None = None) -> None:
        """Delay matching requests by `seconds` before answering."""
        self._slow.append(_Slow(path_prefix, seconds, times))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._slow.clear()

    def expire_tokens(self) -> None:
        """Make every issued OAuth2 access token expired (to exercise the client's refresh)."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    # ---- webhooks (Mautic as sender) -------------------------------------------------------------

    async def send_webhook(
        self,
        session: aiohttp.ClientSession,
        url: str,
        payload: dict[str, Any] | bytes,
        secret: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        return await send_webhook(
            session, url, payload, secret, extra_headers=extra_headers, site_url=self.site_url
        )

    # ---- internals: storage ----------------------------------------------------------------------

    def _new_id(self) -> int:
        cid = self._next_id
        self._next_id += 1
        return cid

    def _ensure_field(self, alias: str, value: Any) -> None:
        if alias not in self._field_defs:
            type_ = "boolean" if isinstance(value, bool) else "number" if isinstance(value, int) else "text"
            self.define_field(alias, type=type_)

    def _store(self, contact: _Contact) -> None:
        if contact.id not in self._contacts:
            bisect.insort(self._regular_ids, contact.id)
        self._contacts[contact.id] = contact

    def _exists(self, cid: int) -> bool:
        return cid in self._contacts or (self._bulk is not None and self._bulk.index(cid) is not None)

    def _materialise(self, cid: int) -> _Contact:
        """Turn a compact bulk contact into a full record (before any per-contact mutation)."""
        if cid in self._contacts:
            return self._contacts[cid]
        bulk = self._bulk
        i = bulk.index(cid) if bulk is not None else None
        if bulk is None or i is None:
            raise KeyError(f"no contact {cid}")
        added = _from_epoch(bulk.date_added[i]) or _utcnow()
        contact = _Contact(
            id=cid, values={"email": bulk.email(i), "firstname": "Bulk", "lastname": str(cid)},
            date_added=added, date_modified=added, last_active=_from_epoch(bulk.last_active[i]),
            date_identified=added,
        )
        bulk.alive[i] = 0
        self._store(contact)
        return contact

    def _delete(self, cid: int) -> None:
        if cid in self._contacts:
            del self._contacts[cid]
            self._regular_ids.pop(bisect.bisect_left(self._regular_ids, cid))
        elif self._bulk is not None and (i := self._bulk.index(cid)) is not None:
            self._bulk.alive[i] = 0
        for cache in self._caches.values():
            pos = bisect.bisect_left(cache.ids, cid)
            if pos < len(cache.ids) and cache.ids[pos] == cid:
                del cache.ids[pos]

    def _touch(self, cid: int) -> None:
        """Re-evaluate one contact against every cached filter after it changed."""
        for cache in self._caches.values():
            matches = self._exists(cid) and self._eval(cache, cid)
            pos = bisect.bisect_left(cache.ids, cid)
            present = pos < len(cache.ids) and cache.ids[pos] == cid
            if matches and not present:
                cache.ids.insert(pos, cid)
            elif present and not matches:
                del cache.ids[pos]

    def _eval(self, cache: _MatchCache, cid: int) -> bool:
        if cid in self._contacts:
            return cache.pred_regular(cid)
        if self._bulk is not None and cache.pred_bulk is not None:
            i = self._bulk.index(cid)
            return i is not None and cache.pred_bulk(i)
        return False

    def _dnc_record(self, channel: str, reason: int, comments: str | None, when: datetime) -> dict[str, Any]:
        return {
            "id": next(self._counters), "dateAdded": _iso(when), "reason": reason,
            "comments": comments or "", "channel": channel, "channelId": None,
        }

    def _join_segment(self, sid: int, contact: _Contact) -> None:
        if sid not in self._segments:
            self.add_segment(sid, f"Segment {sid}")
        seg = self._segments[sid]
        contact.segments[sid] = {
            "id": sid, "name": seg["name"], "alias": seg["alias"], "dateAdded": _iso(_utcnow()),
            "manuallyAdded": True, "manuallyRemoved": False,
        }

    # ---- internals: column access & filters ------------------------------------------------------

    def _kind(self, col: str) -> str:
        if col in _DATE_COLUMNS:
            return "date"
        if col in _INT_COLUMNS or self._field_defs.get(col, {}).get("type") == "number":
            return "int"
        return "str"

    def _regular_getter(self, col: str) -> Callable[[int], Any]:
        contacts = self._contacts
        if col == "id":
            return lambda cid: cid
        if col in _DATE_COLUMNS:
            attr = {"last_active": "last_active", "date_added": "date_added",
                    "date_modified": "date_modified", "date_identified": "date_identified"}[col]

            def date_of(cid: int) -> int | None:
                value = _epoch(getattr(contacts[cid], attr))
                return None if value == _NULL else value

            return date_of
        if col == "points":
            return lambda cid: contacts[cid].points
        return lambda cid: contacts[cid].values.get(col)

    def _bulk_getter(self, col: str) -> Callable[[int], Any]:
        """Column reader over bulk indexes; columns bulk rows lack read as NULL."""
        bulk = self._bulk
        assert bulk is not None
        start = bulk.start
        if col == "id":
            return lambda i: start + i
        if col in ("last_active", "date_added", "date_identified", "date_modified"):
            arr = bulk.last_active if col == "last_active" else bulk.date_added
            return lambda i: None if arr[i] == _NULL else arr[i]
        if col == "email":
            return bulk.email
        if col == "firstname":
            return lambda i: "Bulk"
        if col == "lastname":
            return lambda i: str(start + i)
        if col == "points":
            return lambda i: 0
        return lambda i: None

    def _coerce(self, kind: str, value: Any) -> Any:
        try:
            if kind == "date":
                return _parse_when(value)
            if kind == "int":
                return int(str(value).strip())
        except ValueError as exc:
            raise _ApiError(400, f"Invalid value for filter: {exc}") from None
        return str(value)

    def _compile(self, cond: _Cond, getter: Callable[[str], Callable[[int], Any]]) -> Callable[[int], bool]:
        expr = cond.expr
        if expr in ("andX", "orX"):
            parts = [self._compile(c, getter) for c in cond.val]
            if expr == "andX":
                return lambda k: all(p(k) for p in parts)
            return lambda k: any(p(k) for p in parts)
        get = getter(cond.col)
        kind = self._kind(cond.col)
        if expr == "isNull":
            return lambda k: get(k) is None
        if expr == "isNotNull":
            return lambda k: get(k) is not None
        if expr == "isEmpty":
            return lambda k: get(k) in (None, "")
        if expr == "isNotEmpty":
            return lambda k: get(k) not in (None, "")
        if expr in ("like", "notLike"):
            rx = _like_regex(str(cond.val))
            want = expr == "like"
            return lambda k: (v := get(k)) is not None and bool(rx.fullmatch(_collate(str(v)))) == want
        if expr in ("in", "notIn"):
            raw = _in_values(cond.val)
            if kind == "str":
                members = {_collate(str(x).strip()) for x in raw}
                key: Callable[[Any], Any] = lambda v: _collate(str(v))  # noqa: E731
            else:
                members = {self._coerce(kind, x) for x in raw}
                key = lambda v: v  # noqa: E731
            want = expr == "in"
            return lambda k: (v := get(k)) is not None and (key(v) in members) == want
        if expr not in ("eq", "neq", "lt", "lte", "gt", "gte"):
            raise _ApiError(400, f"Invalid where expression: {expr}")
        target = self._coerce(kind, cond.val)
        if kind == "str":
            target = _collate(target)
            norm: Callable[[Any], Any] = lambda v: _collate(str(v))  # noqa: E731
        elif kind == "int":
            norm = int
        else:
            norm = lambda v: v  # noqa: E731
        compare: Callable[[Any, Any], bool] = {
            "eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        }[expr]
        # SQL three-valued logic: any comparison with NULL is not true
        return lambda k: (v := get(k)) is not None and compare(norm(v), target)

    def _parse_conds(self, raw: Any, *, top: bool = True) -> list[_Cond]:
        conds = []
        for item in _as_list(raw):
            if not isinstance(item, dict) or "expr" not in item:
                raise _ApiError(400, "Invalid where parameter")
            expr = item["expr"]
            if top and "col" not in item and "column" not in item:
                # CommonRepository::convertOrmPropertiesToColumns reads $f['column'] when `col` is absent:
                # "Undefined array key", which Symfony turns into a 500 in dev mode (composite entries too).
                raise _ApiError(500, 'Warning: Undefined array key "column"')
            if expr in ("andX", "orX"):
                conds.append(_Cond("", expr, self._parse_conds(item.get("val"), top=False)))
            else:
                val = item.get("val")
                if isinstance(val, str) and escapes_where_values(self.version):
                    val = php_special_chars(val)
                conds.append(_Cond(str(item.get("col", "")), expr, _as_list(val) if isinstance(val, dict) else val))
        return conds

    def _cache_for(self, conds: list[_Cond]) -> _MatchCache:
        key = tuple(repr(c) for c in conds)
        cache = self._caches.get(key)
        if cache is not None:
            self._caches.move_to_end(key)
            return cache
        regular = [self._compile(c, self._regular_getter) for c in conds]

        def pred_regular(cid: int) -> bool:
            return all(p(cid) for p in regular)

        pred_bulk: Callable[[int], bool] | None = None
        bulk_ids: Iterator[int] = iter(())
        bulk = self._bulk
        if bulk is not None:
            bulk_preds = [self._compile(c, self._bulk_getter) for c in conds]
            if len(bulk_preds) == 1:
                pred_bulk = bulk_preds[0]
            else:
                def pred_bulk(i: int) -> bool:
                    return all(p(i) for p in bulk_preds)
            alive, start, pb = bulk.alive, bulk.start, pred_bulk
            bulk_ids = (start + i for i in range(bulk.n) if alive[i] and pb(i))
        regular_ids = (cid for cid in self._regular_ids if pred_regular(cid))
        ids = array("q", heapq.merge(regular_ids, bulk_ids))
        cache = _MatchCache(pred_regular, pred_bulk, ids)
        self._caches[key] = cache
        while len(self._caches) > 16:
            self._caches.popitem(last=False)
        return cache

    def _value(self, cid: int, col: str) -> Any:
        if cid in self._contacts:
            return self._regular_getter(col)(cid)
        assert self._bulk is not None
        return self._bulk_getter(col)(cid - self._bulk.start)

    def _query_contacts(self, query: dict[str, Any]) -> tuple[int, list[int]]:
        """Return (total matching, ids of the requested page) for GET /api/contacts."""
        conds = self._parse_conds(query.get("where")) if "where" in query else []
        search = str(query.get("search", "")).strip()
        if search:
            conds.append(self._search_cond(search))
        lo, hi = 0, 2**62
        rest = []
        for cond in conds:  # id bounds become bisect ranges over the cached, sorted match list
            if cond.col == "id" and cond.expr in _ID_BOUND_EXPRS and str(cond.val).strip().lstrip("-").isdigit():
                v = int(str(cond.val))
                if cond.expr in ("gt", "gte"):
                    lo = max(lo, v + 1 if cond.expr == "gt" else v)
                if cond.expr in ("lt", "lte"):
                    hi = min(hi, v - 1 if cond.expr == "lt" else v)
                if cond.expr == "eq":
                    lo, hi = max(lo, v), min(hi, v)
            else:
                rest.append(cond)
        cache = self._cache_for(rest)
        a, b = bisect.bisect_left(cache.ids, lo), bisect.bisect_right(cache.ids, hi)
        total = max(0, b - a)
        start = max(0, _php_int(query.get("start"), 0))
        limit = _php_int(query.get("limit"), 30)
        order_by = str(query.get("orderBy") or "")
        direction = str(query.get("orderByDir") or "ASC").upper()
        if not order_by:
            order_by, direction = "last_active", "DESC"  # LeadRepository default (§2.4)
        order_by = order_by.split(".")[-1]
        if order_by == "id":
            if direction == "DESC":
                stop = b - start
                first = max(a, stop - limit) if limit > 0 else a
                page = list(reversed(cache.ids[first:stop])) if stop > first else []
            else:
                first = a + start
                end = min(b, first + limit) if limit > 0 else b
                page = list(cache.ids[first:end]) if end > first else []
            return total, page
        candidates = (cache.ids[j] for j in range(a, b))
        get = self._value

        def sort_key(cid: int) -> tuple[Any, ...]:
            v = get(cid, order_by)
            return (v is not None, v, -cid if direction == "DESC" else cid)

        if limit > 0 and start + limit <= 5000:
            pick = heapq.nlargest if direction == "DESC" else heapq.nsmallest
            ordered = pick(start + limit, candidates, key=sort_key)
        else:
            ordered = sorted(candidates, key=sort_key, reverse=direction == "DESC")
        return total, ordered[start:(start + limit) if limit > 0 else None]

    def _search_cond(self, search: str) -> _Cond:
        command, _, term = search.partition(":")
        if command.strip().lower() != "email" or not term:
            raise _ApiError(400, "This fake supports only the email: search command")
        term = term.strip()
        if term.startswith("+"):
            return _Cond("email", "like", term[1:])  # strict: no trailing wildcard
        return _Cond("email", "like", term + "%")  # §2.4: a prefix LIKE, not an exact match

    # ---- internals: serialisation ----------------------------------------------------------------

    def _field_value(self, alias: str, value: Any, *, single: bool) -> Any:
        type_ = self._field_defs.get(alias, {}).get("type")
        if value is None:
            return None
        if type_ == "number":
            try:
                return int(value)
            except (TypeError, ValueError):
                return value
        if type_ == "boolean":
            flag = 1 if value in (True, 1, "1", "yes", "true") else 0
            return flag if single else str(flag)  # single GET casts booleans to int; lists keep "1"
        return str(value)

    def _serialise(self, cid: int, *, minimal: bool, single: bool) -> dict[str, Any]:
        if cid in self._contacts:
            contact = self._contacts[cid]
        else:  # bulk row: build a transient record, store nothing
            bulk = self._bulk
            assert bulk is not None
            i = cid - bulk.start
            added = _from_epoch(bulk.date_added[i]) or _utcnow()
            contact = _Contact(
                id=cid, values={"email": bulk.email(i), "firstname": "Bulk", "lastname": str(cid)},
                date_added=added, date_modified=added, last_active=_from_epoch(bulk.last_active[i]),
                date_identified=added,
            )
        groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        flat: dict[str, Any] = {"id": cid}
        values = dict(contact.values)
        values["points"] = contact.points
        values["last_active"] = (
            contact.last_active.strftime("%Y-%m-%d %H:%M:%S") if contact.last_active else None
        )
        for alias, meta in self._field_defs.items():
            value = self._field_value(alias, values.get(alias), single=single)
            normalized = ("Yes" if value in (1, "1") else "No") if meta["type"] == "boolean" and value is not None \
                else value
            groups.setdefault(meta["group"], {})[alias] = {**meta, "value": value, "normalizedValue": normalized}
            flat[alias] = value
        fields: dict[str, Any] = {g: (v if v else []) for g, v in groups.items()}
        fields["all"] = flat
        data: dict[str, Any] = {
            "isPublished": True,
            "dateAdded": _iso(contact.date_added),
            "dateModified": _iso(contact.date_modified),
            "createdBy": None, "createdByUser": None, "modifiedBy": None, "modifiedByUser": None,
            "id": cid, "points": contact.points, "color": None, "fields": fields,
        }
        if minimal:  # leadList group: no activity dates, IPs, tags or DNC (§2.3)
            return data
        data.update({
            "lastActive": _iso(contact.last_active),
            "owner": None,
            "ipAddresses": [dict(ip) for ip in contact.ip_addresses],
            "tags": [dict(t) for t in contact.tags],
            "utmtags": [],
            "stage": None,
            "dateIdentified": _iso(contact.date_identified),
            "preferredProfileImage": "gravatar",
            "doNotContact": [dict(d) for d in contact.dnc],
            "frequencyRules": [],
        })
        return data

    # ---- HTTP: middleware ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self._record(request)
        try:
            response = await self._dispatch(request, handler)
        except _ApiError as exc:
            response = _json(_error_body(exc.status, exc.message, exc.type, details=exc.details), exc.status)
        except web.HTTPNotFound:
            response = _json(_error_body(404, "Requested URL not found: " + request.path), 404)
        except web.HTTPMethodNotAllowed:
            response = _json(_error_body(405, "Method not allowed"), 405)
        response.headers["Mautic-Version"] = self.version
        return response

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for slow in self._slow:
            if request.path.startswith(slow.prefix) and slow.times != 0:
                if slow.times is not None:
                    slow.times -= 1
                await asyncio.sleep(slow.seconds)
                break
        for fault in self._faults:
            if fault.times == 0 or not request.path.startswith(fault.prefix):
                continue
            if fault.method and fault.method != request.method:
                continue
            if fault.times is not None:
                fault.times -= 1
            if fault.applied:
                if request.path.startswith("/api"):
                    self._authenticate(request)
                await handler(request)
            return self._fault_response(fault)
        if request.path.startswith("/api"):
            self._authenticate(request)
        return await handler(request)

    def _fault_response(self, fault: _Fault) -> web.Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        if fault.status == 429:  # rate limiter body has no `type` (§2.8)
            # noxlogic/RateLimitBundle (app/config/config.php `noxlogic_rate_limit`) sends X-RateLimit-*
            # headers, Reset being the epoch second the window ends, and no Retry-After.
            reset = int(self.wall_clock()) + (fault.retry_after if fault.retry_after is not None else 3600)
            limit_headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                             "X-RateLimit-Reset": str(reset)}
            body = {"errors": [{"code": 429, "message": "You exceeded the rate limit of 100 API calls per hour.",
                                "details": []}]}
            return _json(body, 429, limit_headers)
        message = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                   504: "Gateway Timeout"}.get(fault.status, "Error")
        return _json(_error_body(fault.status, message), fault.status, headers)

    async def _record(self, request: web.Request) -> None:
        raw = await request.read()
        body_json: Any = None
        form: dict[str, str] | None = None
        if raw and request.content_type == "application/json":
            try:
                body_json = json.loads(raw)
            except ValueError:
                body_json = None
        elif raw and request.content_type == "application/x-www-form-urlencoded":
            form = dict((await request.post()).items())  # type: ignore[arg-type]
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        header = request.headers.get("Authorization", "")
        auth = "basic" if header.startswith("Basic ") else "bearer" if header.startswith("Bearer ") else None
        call = RecordedCall(request.method, request.path, query, request.query_string, body_json, form, auth,
                            time.monotonic())
        self.calls.append(call)
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = request.query.get("access_token")
        if header.startswith("Basic "):
            if self.username is None:
                raise _ApiError(403, "Basic authentication is disabled.", "access_denied", details=False)
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, pw = "", ""
            ok = hmac.compare_digest(user, self.username) and hmac.compare_digest(pw, self.password or "")
            if not ok:
                raise _ApiError(401, "API authorization denied.", "access_denied", details=False)
            return
        if header.startswith("Bearer "):
            token = header[7:].strip()
        if token:
            expiry = self._tokens.get(token)
            if expiry is None:
                raise _ApiError(401, "The access token provided is invalid.", "invalid_grant", details=False)
            if expiry <= time.monotonic():
                raise _ApiError(401, "The access token provided has expired.", "invalid_grant", details=False)
            return
        raise _ApiError(401, "API authorization denied.", "access_denied", details=False)

    # ---- HTTP: routes ----------------------------------------------------------------------------

    def _routes(self, r: web.UrlDispatcher) -> None:
        cid = r"{id:\d+}"
        r.add_post("/oauth/v2/token", self._h_token)
        r.add_get("/api/contacts", self._h_list)
        r.add_post("/api/contacts/new", self._h_create)
        r.add_delete("/api/contacts/batch/delete", self._h_batch_delete)
        r.add_get(f"/api/contacts/{cid}", self._h_get)
        r.add_patch(f"/api/contacts/{cid}/edit", self._h_patch)
        r.add_delete(f"/api/contacts/{cid}/delete", self._h_delete)
        r.add_get(f"/api/contacts/{cid}/activity", self._h_activity)
        r.add_get(f"/api/contacts/{cid}/notes", self._h_notes)
        r.add_get(f"/api/contacts/{cid}/segments", self._h_contact_segments)
        r.add_get(f"/api/contacts/{cid}/campaigns", self._h_contact_campaigns)
        r.add_get(f"/api/contacts/{cid}/companies", self._h_contact_companies)
        r.add_get(f"/api/contacts/{cid}/devices", self._h_contact_devices)
        r.add_post(f"/api/contacts/{cid}/dnc/{{channel}}/add", self._h_dnc_add)
        r.add_post(f"/api/contacts/{cid}/dnc/{{channel}}/remove", self._h_dnc_remove)
        r.add_get("/api/segments", self._h_segments)
        r.add_get(r"/api/segments/{sid:\d+}", self._h_segment)
        r.add_post(r"/api/segments/{sid:\d+}/contact/{id:\d+}/add", self._h_segment_add)
        r.add_post(r"/api/segments/{sid:\d+}/contact/{id:\d+}/remove", self._h_segment_remove)
        r.add_get("/api/forms", self._h_forms)
        r.add_get(r"/api/forms/{fid:\d+}", self._h_form)
        r.add_get(r"/api/forms/{fid:\d+}/submissions/contact/{id:\d+}", self._h_form_submissions)
        r.add_get("/api/stats/{table}", self._h_stats)
        self._hook_routes(r)  # the /api/hooks section above FakeMautic

    def _follow_merges(self, cid: int) -> int:
        seen: set[int] = set()
        while cid in self._merged and cid not in seen:  # merge_records redirect (§2.6)
            seen.add(cid)
            cid = self._merged[cid]
        return cid

    def _contact_or_404(self, request: web.Request) -> int:
        """The contact a route acts on. Every contact route loads it with ``LeadModel::getEntity``
        (LeadBundle/Model/LeadModel.php), which follows a merged-away id to the contact it was merged
        into: DELETE, PATCH and DNC on a stale id act on the survivor."""
        cid = self._follow_merges(int(request.match_info["id"]))
        if not self._exists(cid):
            raise _ApiError(404, "Item was not found.")
        return cid

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        """Mautic reads JSON and form bodies alike."""
        if request.content_type == "application/json":
            raw = await request.read()
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                raise _ApiError(400, "Request body is not valid JSON") from None
            if not isinstance(data, dict):
                raise _ApiError(400, "Request body must be an object")
            return data
        return parse_php_query((await request.post()).items())  # type: ignore[arg-type]

    async def _h_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            raise _ApiError(400, "Invalid grant_type parameter or parameter missing", "unsupported_grant_type",
                            details=False)
        cid, csecret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if (
            self.client_id is None
            or not hmac.compare_digest(cid, self.client_id)
            or not hmac.compare_digest(csecret, self.client_secret or "")
        ):
            raise _ApiError(400, "The client credentials are invalid", "invalid_client", details=False)
        if not self.client_credentials_grant:
            raise _ApiError(400, "The grant type is unauthorized for this client_id", "unauthorized_client",
                            details=False)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.token_lifetime
        return _json({"access_token": token, "expires_in": self.token_lifetime, "token_type": "bearer",
                      "scope": None})

    async def _h_list(self, request: web.Request) -> web.Response:
        query = parse_php_query(request.query.items())
        total, ids = self._query_contacts(query)
        minimal = str(query.get("minimal", "")).lower() in ("1", "true")
        contacts = {str(i): self._serialise(i, minimal=minimal, single=False) for i in ids}
        return _json({"total": str(total), "contacts": contacts})  # `{}` when empty, total a string

    async def _h_get(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        return _json({"contact": self._serialise(cid, minimal=False, single=True)})

    def _find_by_email(self, email: str, exclude: int | None = None) -> int | None:
        key = _collate(email.strip())
        for cid in self._regular_ids:
            value = self._contacts[cid].values.get("email")
            if cid != exclude and value and _collate(str(value)) == key:
                return cid
        if self._bulk is not None:
            match = re.fullmatch(r"bulk(\d+)@" + re.escape(self._bulk.domain), key)
            if match and int(match.group(1)) != exclude and self._bulk.index(int(match.group(1))) is not None:
                return int(match.group(1))
        return None

    def _apply_values(self, contact: _Contact, body: dict[str, Any], *, overwrite_blank: bool) -> None:
        for key, value in body.items():
            if key in ("overwriteWithBlank", "id", "doNotContact", "tags", "ipAddress", "lastActive",
                       "owner", "stage"):
                continue
            if not overwrite_blank and (value is None or value == "" or value == 0 or value == "0"):
                continue  # §2.6: blanks and numeric 0 are dropped unless overwriteWithBlank
            if key == "points":
                contact.points = _php_int(value, 0)
                continue
            self._ensure_field(key, value)
            contact.values[key] = None if value == "" else value
        if body.get("lastActive"):
            contact.last_active = datetime.fromisoformat(str(body["lastActive"]))
        for tag in body.get("tags") or []:
            tag = str(tag)
            if tag.startswith("-"):
                contact.tags = [t for t in contact.tags if t["tag"] != tag[1:]]
            elif all(t["tag"] != tag for t in contact.tags):
                contact.tags.append({"id": next(self._counters), "tag": tag, "description": None})
        for item in body.get("doNotContact") or []:
            self._set_dnc(contact, str(item.get("channel", "email")), _php_int(item.get("reason"), 3),
                          item.get("comments"))
        contact.date_modified = _utcnow()
        if contact.date_identified is None and any(contact.values.get(k) for k in ("email", "firstname", "lastname")):
            contact.date_identified = contact.date_modified

    async def _h_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        overwrite = bool(body.get("overwriteWithBlank"))
        existing = self._find_by_email(str(body["email"])) if body.get("email") else None
        if existing is not None:  # unique identifier matched: update, 200 (§2.2)
            contact = self._materialise(existing)
            self._apply_values(contact, body, overwrite_blank=overwrite)
            self._touch(existing)
            return _json({"contact": self._serialise(existing, minimal=False, single=True)})
        now = _utcnow()
        contact = _Contact(id=self._new_id(), values={}, date_added=now, date_modified=now)
        self._apply_values(contact, body, overwrite_blank=overwrite)
        self._store(contact)
        self._touch(contact.id)
        return _json({"contact": self._serialise(contact.id, minimal=False, single=True)}, 201,
                     {"Location": f"{self.base_url}/api/contacts/{contact.id}"})

    async def _h_patch(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        body = await self._body(request)
        overwrite = bool(body.get("overwriteWithBlank"))
        new_email = body.get("email")
        other = self._find_by_email(str(new_email), exclude=cid) if new_email else None
        contact = self._materialise(cid)
        self._apply_values(contact, body, overwrite_blank=overwrite)
        if other is None:
            self._touch(cid)
            return _json({"contact": self._serialise(cid, minimal=False, single=True)})
        # The unique identifier now matches another contact: LeadApiController::preSaveEntity calls
        # ContactMerger::merge($entity, $existing) — the *edited* contact wins and keeps its id, the other
        # holder of the address is deleted and its id now redirects here. Field data: the newest value
        # wins (mergeFieldData), and the edited contact was modified just now.
        loser = self._materialise(other)
        for key, value in loser.values.items():
            if contact.values.get(key) in (None, "") and value not in (None, ""):
                contact.values[key] = value
        contact.dnc.extend(d for d in loser.dnc if all(d["channel"] != c["channel"] for c in contact.dnc))
        contact.segments.update({k: v for k, v in loser.segments.items() if k not in contact.segments})
        contact.points += loser.points
        self._delete(other)
        self._merged[other] = cid
        for old, into in list(self._merged.items()):
            if into == other:
                self._merged[old] = cid
        self._touch(cid)
        return _json({"contact": self._serialise(cid, minimal=False, single=True)})

    async def _h_delete(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        data = self._serialise(cid, minimal=False, single=True)
        self._delete(cid)
        data["id"] = None  # serialised after Doctrine removal (§2.2)
        return _json({"contact": data})

    async def _h_batch_delete(self, request: web.Request) -> web.Response:
        raw = request.query.get("ids", "")
        ids = [x.strip() for x in raw.split(",") if x.strip()]
        contacts: list[dict[str, Any]] = []
        errors: dict[str, dict[str, Any]] = {}
        for value in ids:
            cid = _php_int(value, 0)
            if not self._exists(cid):
                # BatchIdToEntityHelper + getEntities(ids): an id with no row is simply absent from the
                # result — in neither `contacts` nor `errors` (ApiBundle/Helper/BatchIdToEntityHelper.php,
                # CommonApiController::deleteEntitiesAction). Merged-away ids are not followed here.
                continue
            contacts.append(self._serialise(cid, minimal=False, single=True))  # serialised before delete
            self._delete(cid)
        body: dict[str, Any] = {"contacts": contacts}
        if errors:
            body["errors"] = errors
        return _json(body)

    async def _h_activity(self, request: web.Request) -> web.Response:
        """LeadApiController::getActivityAction → LeadModel::getEngagements. Every event type's subscriber
        pages its own events with the same start/limit, and the page is their union sorted by timestamp
        (LeadBundle/Event/LeadTimelineEvent.php getEvents): a page can hold up to limit x types events,
        and `maxPages` is computed on the busiest type alone (getMaxPage), `total` on all of them."""
        cid = self._contact_or_404(request)
        query = parse_php_query(request.query.items())
        page = max(1, _php_int(query.get("page"), 1))
        limit = max(1, _php_int(query.get("limit"), 25))
        order = _as_list(query.get("order")) or ["timestamp", "DESC"]
        direction = str(order[1] if len(order) > 1 else "DESC").upper()
        contact = self._contacts.get(cid)
        generated = contact.activity_generated if contact else 0
        base = _utcnow() - timedelta(minutes=generated + 1)
        # per type: (how many, the i-th oldest); synthetic events alternate two types by position
        kinds: dict[str, tuple[int, Callable[[int], dict[str, Any]]]] = {}
        if generated:
            kinds["email.read"] = ((generated + 1) // 2, lambda i: self._synthetic_event(cid, 2 * i, base))
        if generated > 1:
            kinds["page.hit"] = (generated // 2, lambda i: self._synthetic_event(cid, 2 * i + 1, base))
        stored_by_kind: dict[str, list[dict[str, Any]]] = {}
        for event in sorted(contact.activity if contact else [], key=lambda e: e["timestamp"]):
            stored_by_kind.setdefault(event["event"], []).append(event)
        for kind, stored in stored_by_kind.items():
            synth_count, synth = kinds.get(kind, (0, lambda i: {}))

            def nth(i: int, synth_count: int = synth_count, synth: Callable[[int], dict[str, Any]] = synth,
                    stored: list[dict[str, Any]] = stored) -> dict[str, Any]:
                return synth(i) if i < synth_count else stored[i - synth_count]

            kinds[kind] = (synth_count + len(stored), nth)
        offset = (page - 1) * limit
        events: list[dict[str, Any]] = []
        for count, event_at in kinds.values():
            if direction == "ASC":
                positions = range(offset, min(offset + limit, count))
            else:
                positions = range(count - 1 - offset, max(count - 1 - offset - limit, -1), -1)
            events.extend(event_at(i) for i in positions)
        events.sort(key=lambda e: str(e["timestamp"]), reverse=direction != "ASC")
        largest = max((count for count, _ in kinds.values()), default=0)
        types = {e["event"]: e["eventType"] for e in events}
        return _json({
            "events": events,
            "filters": {"search": "", "includeEvents": [], "excludeEvents": []},
            "order": ["timestamp", direction],
            "types": types or [],
            "total": sum(count for count, _ in kinds.values()),
            "page": page,
            "limit": limit,
            "maxPages": math.ceil(largest / limit) if largest else 1,
        })

    @staticmethod
    def _synthetic_event(cid: int, pos: int, base: datetime) -> dict[str, Any]:
        kind = ("page.hit", "Page hit") if pos % 2 else ("email.read", "Email read")
        return {
            "event": kind[0], "eventId": f"gen{cid}-{pos}", "eventLabel": f"{kind[1]} #{pos}",
            "eventType": kind[1], "timestamp": _iso(base + timedelta(minutes=pos)), "contactId": str(cid),
            "details": {"seq": str(pos)},
        }

    async def _h_notes(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        notes = self._contacts[cid].notes if cid in self._contacts else []
        start = _php_int(request.query.get("start"), 0)
        limit = _php_int(request.query.get("limit"), 30)
        return _json({"total": len(notes), "notes": notes[start:(start + limit) if limit > 0 else None]})

    async def _h_contact_segments(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        # LeadListRepository::getLeadLists leaves out memberships marked manuallyRemoved.
        segs = {k: v for k, v in (self._contacts[cid].segments if cid in self._contacts else {}).items()
                if not v["manuallyRemoved"]}
        return _json({"total": len(segs), "lists": {str(k): v for k, v in segs.items()} or []})

    async def _h_contact_campaigns(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        camps = self._contacts[cid].campaigns if cid in self._contacts else {}
        return _json({"total": len(camps), "campaigns": {str(k): v for k, v in camps.items()} or []})

    async def _h_contact_companies(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        companies = self._contacts[cid].companies if cid in self._contacts else []
        return _json({"total": len(companies), "companies": companies})

    async def _h_contact_devices(self, request: web.Request) -> web.Response:
        # LeadApiController::getDevicesAction: start/limit (default_pagelimit 30), newest first
        cid = self._contact_or_404(request)
        devices = self._contacts[cid].devices if cid in self._contacts else []
        ordered = sorted(devices, key=lambda d: (str(d["dateAdded"]), d["id"]), reverse=True)
        start = max(0, _php_int(request.query.get("start"), 0))
        limit = _php_int(request.query.get("limit"), 30)
        return _json({"total": len(devices), "devices": ordered[start:(start + limit) if limit > 0 else None]})

    def _set_dnc(self, contact: _Contact, channel: str, reason: int, comments: str | None) -> None:
        existing = next((d for d in contact.dnc if d["channel"] == channel), None)
        if reason == 0:
            contact.dnc = [d for d in contact.dnc if d["channel"] != channel]
        elif existing is None:
            contact.dnc.append(self._dnc_record(channel, reason, comments, _utcnow()))
        elif existing["reason"] != reason and existing["reason"] != 1:
            # §2.7: a different reason updates the record, but never one the contact set themselves (1)
            existing.update(reason=reason, comments=comments or "", dateAdded=_iso(_utcnow()))

    async def _h_dnc_add(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        body = await self._body(request)
        reason = _php_int(body.get("reason"), 3)
        if reason == 0:
            raise _ApiError(400, "Invalid reason code given")
        contact = self._materialise(cid)
        self._set_dnc(contact, request.match_info["channel"], reason, body.get("comments"))
        self._touch(cid)
        return _json({"contact": self._serialise(cid, minimal=False, single=True)})

    async def _h_dnc_remove(self, request: web.Request) -> web.Response:
        cid = self._contact_or_404(request)
        channel = request.match_info["channel"]
        contact = self._contacts.get(cid)
        found = contact is not None and any(d["channel"] == channel for d in contact.dnc)
        if found and contact is not None:
            self._set_dnc(contact, channel, 0, None)
            self._touch(cid)
        return _json({"recordFound": found, "contact": self._serialise(cid, minimal=False, single=True)})

    async def _h_segments(self, request: web.Request) -> web.Response:
        segs = list(self._segments.values())
        return _json({"total": len(segs), "lists": segs})

    async def _h_segment(self, request: web.Request) -> web.Response:
        segment = self._segments.get(int(request.match_info["sid"]))
        if segment is None:
            raise _ApiError(404, "Item was not found.")
        return _json({"list": segment})

    def _segment_and_contact(self, request: web.Request) -> tuple[int, int]:
        """ListApiController::addLeadAction / removeLeadAction: 404 for a missing segment or contact; the
        segment must be among ListModel::getUserLists(), which lists published segments only → 403."""
        sid = int(request.match_info["sid"])
        if sid not in self._segments:
            raise _ApiError(404, "Item was not found.")
        cid = self._contact_or_404(request)
        if not self._segments[sid]["isPublished"]:
            raise _ApiError(403, "You do not have access to the requested area/action.")
        return sid, cid

    async def _h_segment_add(self, request: web.Request) -> web.Response:
        sid, cid = self._segment_and_contact(request)
        self._join_segment(sid, self._materialise(cid))
        self._touch(cid)
        return _json({"success": 1})

    async def _h_segment_remove(self, request: web.Request) -> web.Response:
        # ListApiController::removeLeadAction: 404 for a missing segment or contact, 403 for one outside
        # ListModel::getUserLists() (published only), then LeadModel::removeFromLists(…, manuallyRemoved=true):
        # ListModel::removeLead deletes a manual membership, marks a filter-made one manuallyRemoved (so a
        # rebuild does not re-add it), skips a non-member; the answer is {"success": 1} in every case.
        sid, cid = self._segment_and_contact(request)
        contact = self._materialise(cid)
        membership = contact.segments.get(sid)
        if membership is not None:
            if membership["manuallyAdded"]:
                del contact.segments[sid]
            else:
                membership["manuallyRemoved"] = True
            self._touch(cid)
        return _json({"success": 1})

    async def _h_forms(self, request: web.Request) -> web.Response:
        """GET /api/forms: `where` on id (`in`/`eq`), paging, and `minimal` (the `formList` serializer group:
        id, name, alias, category and the publish dates; FetchCommonApiController::getEntitiesAction)."""
        query = parse_php_query(request.query.items())
        forms = list(self._forms.values())
        for cond in self._parse_conds(query.get("where")) if "where" in query else []:
            if cond.col != "id" or cond.expr not in ("in", "eq"):
                raise _ApiError(400, f"the stand-in filters forms by id only, not {cond.col} {cond.expr}")
            values = cond.val if isinstance(cond.val, list) else str(cond.val).split(",")
            wanted = {_php_int(v, -1) for v in values}
            forms = [f for f in forms if f["id"] in wanted]
        total = len(forms)
        start = max(0, _php_int(query.get("start"), 0))
        forms = forms[start:start + _php_int(query.get("limit"), 30)]
        if str(query.get("minimal", "")).lower() in ("1", "true"):
            keep = ("id", "name", "alias", "category", "isPublished", "dateAdded", "dateModified", "createdBy",
                    "createdByUser", "modifiedBy", "modifiedByUser")
            forms = [{k: f[k] for k in keep if k in f} for f in forms]
        return _json({"total": total, "forms": forms})

    async def _h_form(self, request: web.Request) -> web.Response:
        form = self._forms.get(int(request.match_info["fid"]))
        if form is None:
            raise _ApiError(404, "Item was not found.")
        return _json({"form": form})

    async def _h_form_submissions(self, request: web.Request) -> web.Response:
        fid, cid = int(request.match_info["fid"]), int(request.match_info["id"])
        if fid not in self._forms:
            raise _ApiError(404, "Item was not found.")
        subs = [s for s in self._submissions if s["form"]["id"] == fid and s["lead"]["id"] == cid]
        return _json({"total": len(subs), "submissions": subs})

    async def _h_stats(self, request: web.Request) -> web.Response:
        """CoreBundle/Controller/Api/StatsApiController.php, listAction: always 200 — `availableTables` for a
        table no subscriber serves, `errors` when the query throws; rows in whatever order the database
        returns without an ORDER BY (CommonRepository::getRows adds none unless `order` is given)."""
        table = request.match_info["table"]
        rows: list[dict[str, Any]]
        if table == "email_stats":
            rows = self._email_stats
        elif table == "form_submissions":
            rows = [{"id": str(s["id"]), "form_id": str(s["form"]["id"]), "ip_id": str(s["ipAddress"]["id"]),
                     "lead_id": str(s["lead"]["id"]), "tracking_id": s["trackingId"],
                     "date_submitted": s["dateSubmitted"], "referer": s["referer"], "page_id": None}
                    for s in self._submissions]
        else:
            return _json({"availableTables": ["email_stats", "form_submissions"],
                          "tableColumns": {"email_stats": ["id", "email_id", "lead_id", "email_address"],
                                           "form_submissions": ["id", "form_id", "lead_id"]}})
        query = parse_php_query(request.query.items())
        try:
            for cond in self._parse_conds(query.get("where")) if "where" in query else []:
                if cond.expr != "eq":
                    raise ValueError("This stand-in's stats endpoint supports only eq filters")
                if rows and cond.col not in rows[0]:  # Doctrine's exception, reported inside a 200
                    raise ValueError(f"An exception occurred while executing a query: SQLSTATE[42S22]: Column "
                                     f"not found: 1054 Unknown column 't.{cond.col}' in 'where clause'")
                rows = [r for r in rows if str(r.get(cond.col)) == str(cond.val)]
        except (ValueError, _ApiError) as exc:
            return _json({"errors": [{"message": str(exc), "code": 0}]})
        order = [o for o in _as_list(query.get("order")) if isinstance(o, dict) and o.get("col")]
        if order:
            col, desc = str(order[0]["col"]), str(order[0].get("dir", "ASC")).upper() == "DESC"
            rows = sorted(rows, key=lambda r: _php_int(r.get(col), 0) if col == "id" else str(r.get(col)),
                          reverse=desc)
        else:  # no ORDER BY: each query may come back in another order
            rows = list(rows)
            random.Random(len(self.calls)).shuffle(rows)  # noqa: S311 - a stand-in, not crypto
        start, limit = _php_int(query.get("start"), 0), _php_int(query.get("limit"), 100)
        return _json({"total": str(len(rows)), "stats": rows[start:start + limit]})


class _ContactsView(Mapping[int, dict[str, Any]]):
    def __init__(self, fake: FakeMautic) -> None:
        self._fake = fake

    def __getitem__(self, key: int) -> dict[str, Any]:
        data = self._fake.contact(key)
        if data is None:
            raise KeyError(key)
        return data

    def __iter__(self) -> Iterator[int]:
        fake = self._fake
        bulk = fake._bulk
        bulk_ids: Iterable[int] = (
            (bulk.start + i for i in range(bulk.n) if bulk.alive[i]) if bulk is not None else ()
        )
        return heapq.merge(list(fake._regular_ids), bulk_ids)

    def __len__(self) -> int:
        bulk = self._fake._bulk
        return len(self._fake._contacts) + (sum(bulk.alive) if bulk is not None else 0)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self._fake._exists(key)


# --------------------------------------------------------------------------------------------------
# Webhook sender role (§1.2-1.4)


def sign_webhook(body: bytes, secret: str) -> str:
    """Webhook-Signature: base64 of HMAC-SHA256 over the raw body; the secret's text is the key."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def encode_like_php(payload: Any) -> bytes:
    """PHP json_encode with default flags: no spaces, `/` → `\\/`, non-ASCII → \\uXXXX."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("/", "\\/").encode("ascii")  # `/` only occurs inside JSON strings


async def send_webhook(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any] | bytes,
    secret: str,
    *,
    extra_headers: Mapping[str, str] | None = None,
    site_url: str = DEFAULT_SITE_URL,
) -> tuple[int, str]:
    """POST a delivery exactly as Mautic's webhook client does; returns (status, response text)."""
    body = payload if isinstance(payload, bytes) else encode_like_php(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Origin-Base-URL": site_url,
        "Webhook-Signature": sign_webhook(body, secret),
        **(extra_headers or {}),
    }
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
        return response.status, await response.text()


def merge_payloads(*payloads: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Combine builder outputs into one queued-mode delivery (events grouped by type, §1.2)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for payload in payloads:
        for key, events in payload.items():
            merged.setdefault(key, []).extend(events)
    return merged


def _ts(timestamp: datetime | str | None) -> str:
    if isinstance(timestamp, str):
        return timestamp
    return _iso(timestamp or _utcnow()) or ""


def _field(alias: str, label: str, type_: str, value: Any, fid: int) -> dict[str, Any]:
    return {"id": str(fid), "label": label, "alias": alias, "type": type_, "group": "core", "object": "lead",
            "is_fixed": "1", "properties": "a:0:{}", "default_value": None, "value": value,
            "normalizedValue": value}


def webhook_contact_payload(
    contact_id: int | None,
    email: str | None,
    *,
    firstname: str | None = None,
    lastname: str | None = None,
    dnc: list[dict[str, Any]] | None = None,
    date_added: datetime | str | None = None,
    last_active: datetime | str | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A full lead-webhook contact object (§1.3 key order; no `fields.all`; empty groups `[]`)."""
    core = {
        "firstname": _field("firstname", "First Name", "text", firstname, 2),
        "lastname": _field("lastname", "Last Name", "text", lastname, 3),
        "email": _field("email", "Email", "email", email, 6),
    }
    for n, (alias, value) in enumerate((extra_fields or {}).items(), start=40):
        core[alias] = {**_field(alias, alias.replace("_", " ").title(), "text", value, n), "is_fixed": "0"}
    added = _ts(date_added)
    return {
        "isPublished": True, "dateAdded": added, "dateModified": added, "createdBy": None,
        "createdByUser": None, "modifiedBy": None, "modifiedByUser": None, "id": contact_id, "points": 0,
        "color": None, "fields": {"core": core, "social": [], "personal": [], "professional": []},
        "lastActive": _ts(last_active) if last_active else None, "owner": None,
        "ipAddresses": [{"ipAddress": "*.*.*.*", "id": 7, "ipDetails": None}], "tags": [], "utmtags": [],
        "stage": None, "dateIdentified": added, "preferredProfileImage": "gravatar",
        "doNotContact": dnc or [], "frequencyRules": [],
    }


def _status_word(reason: int) -> str:
    return {0: "contactable", 2: "bounced", 3: "manual"}.get(reason, "unsubscribed")  # §1.1


def channel_subscription_event(
    contact: dict[str, Any],
    *,
    channel: str = "email",
    old_status: str = "contactable",
    new_status: str = "unsubscribed",
    timestamp: datetime | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """`mautic.lead_channel_subscription_changed`; `contact` from webhook_contact_payload/FakeMautic."""
    return {"mautic.lead_channel_subscription_changed": [{
        "contact": contact, "channel": channel, "old_status": old_status, "new_status": new_status,
        "timestamp": _ts(timestamp),
    }]}


def unsubscribe_event(
    contact_id: int, email: str, *, reason: int = 1, channel: str = "email",
    timestamp: datetime | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Convenience: a DNC add with its record in the contact, as Mautic sends on unsubscribe."""
    ts = _ts(timestamp)
    dnc = [{"id": 11, "dateAdded": ts, "reason": reason, "comments": "User unsubscribed.", "channel": channel,
            "channelId": None}]
    contact = webhook_contact_payload(contact_id, email, dnc=dnc)
    return channel_subscription_event(contact, channel=channel, new_status=_status_word(reason), timestamp=ts)


def contact_delete_event(
    contact_id: int,
    contact: dict[str, Any] | None = None,
    *,
    email: str | None = None,
    timestamp: datetime | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """`mautic.lead_post_delete`: top-level `id`, snapshot with `id: null` (§1.3)."""
    snapshot = dict(contact) if contact else webhook_contact_payload(None, email)
    snapshot["id"] = None
    return {"mautic.lead_post_delete": [{"id": contact_id, "contact": snapshot, "timestamp": _ts(timestamp)}]}


def contact_save_event(
    contact: dict[str, Any], *, new: bool = False, timestamp: datetime | str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """`mautic.lead_post_save_new` ("just identified") or `_update` (whole contact, no diff)."""
    key = "mautic.lead_post_save_new" if new else "mautic.lead_post_save_update"
    return {key: [{"contact": contact, "timestamp": _ts(timestamp)}]}


def form_submission_event(
    *,
    contact_id: int,
    email: str,
    results: dict[str, Any],
    form_id: int = 4,
    form_name: str = "Newsletter",
    form_alias: str = "newsletter",
    submission_id: int = 13,
    ip: str = "*.*.*.*",
    referer: str = "https://example.com/signup",
    date_submitted: datetime | str | None = None,
    timestamp: datetime | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """`mautic.form_on_submit`: contact under `lead` (trimmed), `results` keyed by form-field alias."""
    submitted = _ts(date_submitted)
    lead_fields = {"core": {"email": _field("email", "Email", "email", email, 6)}, "social": [],
                   "personal": [], "professional": []}
    return {"mautic.form_on_submit": [{
        "submission": {
            "id": submission_id,
            "ipAddress": {"ipAddress": ip, "id": 7, "ipDetails": None},
            "form": {"id": form_id, "name": form_name, "alias": form_alias, "category": None},
            "lead": {"id": contact_id, "points": 0, "color": None, "fields": lead_fields},
            "trackingId": hashlib.sha1(f"{submission_id}".encode(), usedforsecurity=False).hexdigest(),
            "dateSubmitted": submitted,
            "referer": referer,
            "page": None,
            "results": dict(results) or [],
        },
        "timestamp": _ts(timestamp) if timestamp else submitted,
    }]}


def flat_contact(contact: dict[str, Any]) -> dict[str, Any]:
    """A serialised contact (`fields` groups) as the flat row the mailer holds; a flat one unchanged."""
    fields = contact.get("fields")
    if not isinstance(fields, dict):
        return dict(contact)
    flat: dict[str, Any] = {"id": str(contact.get("id"))}
    for group in fields.values():
        for alias, meta in (group.items() if isinstance(group, dict) else []):
            flat[alias] = meta.get("value") if isinstance(meta, dict) else meta
    return flat


def email_send_event(
    *,
    contact: dict[str, Any],
    email_id: int = 1,
    email_name: str = "Newsletter October",
    subject: str = "Our October news",
    content: str = "<html><body>Hello</body></html>",
    timestamp: datetime | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """`mautic.email_on_send` with the default `webhook_email_details` (content + tokens included).

    `contact` is the mailer's flat contact row, as EmailBundle/EventListener/WebhookSubscriber.php sends it
    (`EmailSendEvent::getLead()`: `{"id": "26", "email": …}`, strings as fetched); a serialised contact
    (with `fields`) given here is flattened to that shape."""
    id_hash = secrets.token_hex(10)
    contact = flat_contact(contact)
    return {"mautic.email_on_send": [{
        "email": {"id": email_id, "name": email_name, "subject": subject, "emailType": "list",
                  "isPublished": True, "language": "en"},
        "contact": contact,
        "contentHash": hashlib.md5(content.encode(), usedforsecurity=False).hexdigest(),
        "idHash": id_hash,
        "subject": subject,
        "source": ["email", email_id],
        "headers": {"List-Unsubscribe": f"<{DEFAULT_SITE_URL}/email/unsubscribe/{id_hash}>"},
        "content": content,
        "tokens": {"{unsubscribe_url}": f"{DEFAULT_SITE_URL}/email/unsubscribe/{id_hash}"},
        "timestamp": _ts(timestamp),
    }]}
