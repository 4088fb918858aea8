"""The one Mautic REST client (Mautic 5; behaviour as read in the 5.x core source, ``ApiBundle``/``LeadBundle``).

One shared `aiohttp.ClientSession` is passed in. Basic or OAuth2 client_credentials auth; retries with
exponential backoff + jitter on 5xx, 429 (Retry-After honoured) and transport errors. Mautic's loose
typing (string totals, `[]` for empty maps, merged ids) is coerced here so callers never see it.

Privacy: log lines carry method, path (ids only) and status — never query strings, bodies or error
messages, which can contain email addresses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.privacy import normalise_email

log = logging.getLogger(__name__)

BATCH_DELETE_CHUNK = 200  # Mautic's api_batch_max_limit; keeps the ?ids= URL short too
_TOKEN_MARGIN_S = 60.0  # refresh the OAuth token this long before Mautic says it expires

Sleep = Callable[[float], Awaitable[None]]


# --------------------------------------------------------------------------------------------------
# Errors


class MauticError(Exception):
    """A Mautic call that did not succeed: :class:`MauticRefused` (retrying will not help) or
    :class:`MauticUnavailable` (it may, later). ``retryable`` says which."""

    retryable = False


class MauticRefused(MauticError):
    """Mautic refused the request (4xx or a malformed answer); retrying will not help."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        type: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.details = details

    def __str__(self) -> str:
        # The message can quote submitted values (emails); keep it out of default string forms
        return f"Mautic error status={self.status} code={self.code} type={self.type}"


class MauticNotFound(MauticRefused):
    """404: the contact (or other item) does not exist."""


class MauticAuthError(MauticRefused):
    """Credentials rejected (401/403, invalid_client, API disabled)."""


class MauticUnavailable(MauticError):
    """Mautic could not be reached or kept failing (5xx, 429, timeouts) after all retries."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class ContactMerged(Exception):
    """A PATCH merged the contact into another one; `survivor` is the contact that remains (§2.6)."""

    def __init__(self, requested_id: int, survivor: Contact) -> None:
        super().__init__(f"contact {requested_id} was merged into {survivor.id}")
        self.requested_id = requested_id
        self.survivor = survivor


@dataclass(frozen=True)
class BatchDeleteResult:
    """What one batch delete did. Mautic leaves ids it cannot find out of both `contacts` and `errors`
    (ApiBundle/Helper/BatchIdToEntityHelper.php; CommonApiController::deleteEntitiesAction): the client
    looks those up (`where id in`) and counts the ones no longer there as `gone`, not refused."""

    deleted: list[int]
    gone: list[int]
    refused: dict[int, str]


class _Transient(Exception):
    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class _TokenRejected(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Where:
    """One `where[i]` condition. `val` is a list of Where for andX/orX; lists for in/notIn."""

    col: str
    expr: str
    val: str | int | datetime | Sequence[Where] | Sequence[str | int] | None = None


def _fmt_val(val: Any) -> str:
    if isinstance(val, datetime):
        # leads.* datetime columns are stored as UTC 'Y-m-d H:i:s'
        aware = val if val.tzinfo else val.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(val, bool):
        return "1" if val else "0"
    return str(val)


def _csv_item(value: Any) -> str:
    """One value of an `in` list. Mautic splits it with ``str_getcsv(html_entity_decode(val), ',', '"')``
    (CoreBundle/Entity/CommonRepository.php, buildWhereClauseFromArray): quote what holds a comma, a
    quote or blanks, doubling inner quotes, as CSV does."""
    text = _fmt_val(value)
    if any(ch in text for ch in ',"') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def exact(col: str, value: str | int) -> Where:
    """An exact-match condition that finds the same rows on every supported Mautic version.

    Mautic 5.x HTML-escapes every `where` value before the query (``InputHelper::cleanArray``, i.e.
    FILTER_SANITIZE_SPECIAL_CHARS, in ApiBundle/Controller/FetchCommonApiController.php,
    getWhereFromRequest; removed by mautic/mautic PR #14550), so `eq` on ``o'brien@example.com``
    compares with ``o&#39;brien@example.com`` and finds nothing. The `in` expression decodes entities
    first, and with one value Mautic turns it into `eq` itself: the same query on 5.x, 6.x and 7.x."""
    return Where(col, "in", [value])


def form_revision(form: Mapping[str, Any]) -> str:
    """A form's revision key: ``dateModified``, or ``dateAdded`` while it was never edited (see
    :meth:`MauticClient.form_revisions`)."""
    for key in ("dateModified", "dateAdded"):
        value = form.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return "unknown"


def where_params(conditions: Iterable[Where], prefix: str = "where") -> list[tuple[str, str]]:
    """Encode conditions as Mautic's bracketed query parameters."""
    params: list[tuple[str, str]] = []
    for i, cond in enumerate(conditions):
        key = f"{prefix}[{i}]"
        if cond.expr in ("andX", "orX"):
            if prefix == "where":
                # Mautic reads `col` of every top-level entry, composite or not: without it PHP warns
                # "Undefined array key" (CommonRepository::getEntities → convertOrmPropertiesToColumns),
                # a 500 in dev mode. Nested entries are not read that way.
                params.append((f"{key}[col]", cond.col or "id"))
            params.append((f"{key}[expr]", cond.expr))
            items = cond.val if isinstance(cond.val, list | tuple) else []
            nested = [c for c in items if isinstance(c, Where)]
            params.extend(where_params(nested, f"{key}[val]"))
            continue
        params.append((f"{key}[col]", cond.col))
        params.append((f"{key}[expr]", cond.expr))
        if cond.val is None:
            continue
        if isinstance(cond.val, list | tuple):
            params.append((f"{key}[val]", ",".join(_csv_item(v) for v in cond.val)))  # `in` takes a CSV string
        else:
            params.append((f"{key}[val]", _fmt_val(cond.val)))
    return params


@dataclass(frozen=True)
class MauticVersion:
    """The Mautic release an instance reports, and the behaviours that differ between supported lines.

    Every version difference the bot knows of is decided here and nowhere else. The API tells the
    version in the ``Mautic-Version`` header of every API answer (ApiBundle/Controller/
    FetchCommonApiController.php, ``view()``, from ``AppVersion::getVersion()``)."""

    text: str

    @property
    def parts(self) -> tuple[int, int, int]:
        numbers = [int(n) for n in re.findall(r"\d+", self.text)[:3]]
        major, minor, patch = (*numbers, 0, 0, 0)[:3]
        return major, minor, patch

    @property
    def escapes_where_values(self) -> bool:
        """5.x HTML-escapes `where` values (see :func:`exact`). PR #14550 (Feb 2025) removed that; the bot
        treats every 5.x as escaping, which costs nothing because exact look-ups use `in` on every line."""
        return self.parts[0] < 6

    @property
    def supported(self) -> bool:
        """The lines the bot is tested against: 5.2 and 6.0 LTS, and 7.x."""
        return self.parts >= (5, 0, 0) and self.parts[0] <= 7


def _parse_dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_items(value: Any) -> list[Any]:
    """Mautic sends maps keyed by id, or `[]` when empty; callers want a list either way."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return []


def _to_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Contact:
    id: int
    email: str | None
    firstname: str | None
    lastname: str | None
    last_active: datetime | None
    date_added: datetime | None
    date_identified: datetime | None
    fields_all: dict[str, Any] = field(default_factory=dict)
    dnc: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # no personal data in reprs that end up in logs or tracebacks
        return f"Contact(id={self.id})"

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Contact:
        fields = raw.get("fields")
        flat: dict[str, Any] = {}
        if isinstance(fields, dict):
            all_ = fields.get("all")
            if isinstance(all_, dict):
                flat = dict(all_)
            else:  # webhook-shaped contact: rebuild the flat map from the groups
                for group in fields.values():
                    for alias, meta in (group.items() if isinstance(group, dict) else []):
                        flat[alias] = meta.get("value") if isinstance(meta, dict) else meta

        def text(key: str) -> str | None:
            value = flat.get(key)
            return str(value) if value not in (None, "") else None

        dnc = raw.get("doNotContact")
        return cls(
            id=_to_int(raw.get("id")),
            email=text("email"),
            firstname=text("firstname"),
            lastname=text("lastname"),
            last_active=_parse_dt(raw.get("lastActive")),
            date_added=_parse_dt(raw.get("dateAdded")),
            date_identified=_parse_dt(raw.get("dateIdentified")),
            fields_all=flat,
            dnc=[d for d in _as_items(dnc) if isinstance(d, dict)],  # list, or rarely keyed by channel
            raw=raw,
        )

    def dnc_reason(self, channel: str = "email") -> int | None:
        for record in self.dnc:
            if record.get("channel") == channel:
                return _to_int(record.get("reason"), 0) or None
        return None


# --------------------------------------------------------------------------------------------------
# Client


class MauticClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        sleep: Sleep = asyncio.sleep,
        on_call: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        max_rate_limit_wait: float = 300.0,
    ) -> None:
        # OAuth2 wins when both are configured; with neither, calls fail with MauticAuthError
        # (not here, so the app can still start and `bot check` can say what is missing).
        self._oauth = bool(client_id and client_secret)
        self._basic: str | None = (
            aiohttp.encode_basic_auth(username, password) if not self._oauth and username and password else None
        )
        self._session = session
        self._base = base_url.rstrip("/")
        self._client_id, self._client_secret = client_id, client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._clock = clock  # wall clock, for the epoch in X-RateLimit-Reset
        self._max_rate_limit_wait = max_rate_limit_wait
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.version: str | None = None  # last seen Mautic-Version header
        # Told the outcome of every API call after retries (ok, not_found, refused, auth_error, unavailable):
        # the metrics hook, so the client never imports the metrics.
        self._on_call = on_call

    @property
    def mautic_version(self) -> MauticVersion | None:
        """The version the last answer reported (None before the first call)."""
        return MauticVersion(self.version) if self.version else None

    # ---- transport -------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        base = self._backoff_base * (2**attempt)
        return base + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto

    async def _auth_header(self) -> str:
        if self._basic is not None:
            return self._basic
        if not self._oauth:
            raise MauticAuthError("no Mautic credentials configured", type="not_configured")
        async with self._token_lock:  # one token fetch for many concurrent callers
            if self._token is None or time.monotonic() >= self._token_expires:
                await self._fetch_token()
            assert self._token is not None
            return f"Bearer {self._token}"

    async def _fetch_token(self) -> None:
        data = {"grant_type": "client_credentials", "client_id": self._client_id or "",
                "client_secret": self._client_secret or ""}
        try:
            async with self._session.post(
                f"{self._base}/oauth/v2/token", data=data, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await self._read_json(resp)
                if resp.status >= 500 or resp.status == 429:
                    raise _Transient("token endpoint", status=resp.status, retry_after=self._retry_after(resp))
                if resp.status != 200 or not isinstance(body, dict) or "access_token" not in body:
                    err = _error_from(resp.status, body)
                    raise MauticAuthError(err.message, status=resp.status, code=err.code, type=err.type)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from exc
        self._token = str(body["access_token"])
        lifetime = float(_to_int(body.get("expires_in"), 3600))
        self._token_expires = time.monotonic() + max(0.0, lifetime - _TOKEN_MARGIN_S)
        log.info("mautic oauth token obtained, expires_in=%s", int(lifetime))

    @staticmethod
    async def _read_json(resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        if not text:
            return None
        try:
            return await resp.json(content_type=None)
        except ValueError:
            return None

    async def _attempt(
        self, method: str, path: str, params: list[tuple[str, str]] | None, json_body: Any, form: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": await self._auth_header(), "Accept": "application/json"}
        try:
            async with self._session.request(
                method, self._base + path, params=params, json=json_body, data=form, headers=headers,
                timeout=self._timeout, allow_redirects=False,
            ) as resp:
                self.version = resp.headers.get("Mautic-Version", self.version)
                body = await self._read_json(resp)
                status = resp.status
                if status == 429 or status >= 500:
                    raise _Transient(f"http {status}", status=status, retry_after=self._retry_after(resp))
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from exc
        if status == 401 and self._oauth and _error_from(status, body).type == "invalid_grant":
            raise _TokenRejected()
        return status, body

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json_body: Any = None,
        form: Any = None,
        none_on_404: bool = False,
    ) -> Any:
        """Send with retries; return the parsed JSON body (None for 404 when `none_on_404`)."""
        try:
            body = await self._send(method, path, params=params, json_body=json_body, form=form,
                                    none_on_404=none_on_404)
        except MauticError as exc:
            self._observe(_outcome_of(exc))
            raise
        self._observe("ok" if body is not None else "not_found")
        return body

    def _observe(self, outcome: str) -> None:
        if self._on_call is not None:
            self._on_call(outcome)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None,
        json_body: Any,
        form: Any,
        none_on_404: bool,
    ) -> Any:
        attempt = 0
        refreshed = False
        while True:
            try:
                status, body = await self._attempt(method, path, params, json_body, form)
            except _TokenRejected:
                if refreshed:
                    raise MauticAuthError("access token rejected after refresh", status=401,
                                          type="invalid_grant") from None
                refreshed = True  # expired/revoked token: fetch a new one once
                self._token = None
                log.info("mautic token rejected, refreshing: %s %s", method, path)
                continue
            except _Transient as exc:
                if attempt >= self._max_retries:
                    log.warning("mautic unavailable after %d attempts: %s %s (%s)", attempt + 1, method, path, exc)
                    raise MauticUnavailable(
                        f"Mautic unavailable: {exc}", status=exc.status, attempts=attempt + 1
                    ) from exc
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                if delay > self._max_rate_limit_wait:  # the hourly window resets too late to wait here
                    log.warning("mautic rate limit resets in %.0fs: %s %s", delay, method, path)
                    raise MauticUnavailable(f"Mautic rate limit: {exc}", status=exc.status,
                                            attempts=attempt + 1) from exc
                log.info("mautic %s %s failed (%s); retry %d in %.2fs", method, path, exc, attempt + 1, delay)
                await self._sleep(delay)
                attempt += 1
                continue
            log.debug("mautic %s %s -> %d", method, path, status)
            if 200 <= status < 300:
                if body is None or not isinstance(body, dict | list):
                    raise MauticRefused("Mautic answered without a JSON body", status=status, type="bad_response")
                return body
            err = _error_from(status, body)
            if status == 404:
                if none_on_404:
                    return None
                raise MauticNotFound(err.message, status=status, code=err.code, type=err.type,
                                     details=err.details)
            log.warning("mautic %s %s -> %d type=%s", method, path, status, err.type)
            if 300 <= status < 400:  # usually a redirect to /s/login: the API or Basic auth is off
                raise MauticAuthError("Mautic redirected the API call (API or Basic auth disabled?)",
                                      status=status, type="redirect")
            cls = MauticAuthError if status in (401, 403) else MauticRefused
            raise cls(err.message, status=status, code=err.code, type=err.type, details=err.details)

    def _retry_after(self, resp: aiohttp.ClientResponse) -> float | None:
        """Seconds to wait before retrying. Mautic's rate limiter (noxlogic/RateLimitBundle, configured in
        app/config/config.php) sends `X-RateLimit-Reset`, the epoch second its window resets, and no
        `Retry-After`; a proxy in front of Mautic may send `Retry-After` instead."""
        value = resp.headers.get("Retry-After")
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None  # HTTP-date form: fall back to our own backoff
        reset = resp.headers.get("X-RateLimit-Reset")
        if reset is not None and resp.status == 429:
            try:
                return max(0.0, float(reset) - self._clock())
            except ValueError:
                return None
        return None

    # ---- contacts --------------------------------------------------------------------------------

    async def ping(self) -> str | None:
        """One cheap authenticated call (for `bot check`); returns the Mautic version if sent."""
        await self._request("GET", "/api/contacts", params=[
            ("limit", "1"), ("minimal", "1"), ("orderBy", "id"), ("orderByDir", "ASC")])
        return self.version

    async def get_contact(self, contact_id: int) -> Contact | None:
        """The contact, or None if it does not exist or was merged into another one (§2.6)."""
        found = await self._fetch_contact(contact_id)
        if found is not None and found.id != int(contact_id):
            log.info("mautic contact %d was merged into %d", contact_id, found.id)
            return None
        return found

    async def contact_or_survivor(self, contact_id: int) -> Contact | None:
        """The contact this id leads to now: itself, the contact it was merged into (Mautic follows its
        merge records on GET), or None when neither exists."""
        return await self._fetch_contact(contact_id)

    async def _fetch_contact(self, contact_id: int) -> Contact | None:
        """``GET /api/contacts/{id}`` as Mautic answers it: None for a 404, else the contact it loads,
        which for a merged-away id is the contact it was merged into."""
        body = await self._request("GET", f"/api/contacts/{int(contact_id)}", none_on_404=True)
        if body is None:
            return None
        raw = body.get("contact") if isinstance(body, dict) else None
        if not isinstance(raw, dict):
            raise MauticRefused("unexpected contact response", type="bad_response")
        return Contact.from_api(raw)

    async def find_contacts_by_email(self, email: str) -> list[Contact]:
        """Contacts whose email equals `email` (case-insensitive), never prefix matches (§2.4)."""
        wanted = normalise_email(email)
        if not wanted:
            return []
        found = []
        async for contact in self.iter_contacts([exact("email", wanted)], page_size=100, minimal=False):
            # the collation also folds accents; keep only true matches
            if contact.email is not None and normalise_email(contact.email) == wanted:
                found.append(contact)
        return found

    async def count_contacts(self, where: Sequence[Where] = ()) -> int:
        """Matching contacts (one limit=1 call). Real Mautic caches list totals for 5 s (§2.4)."""
        params = [*where_params(where), ("limit", "1"), ("minimal", "1"), ("orderBy", "id"),
                  ("orderByDir", "ASC")]
        body = await self._request("GET", "/api/contacts", params=params)
        return _to_int(body.get("total") if isinstance(body, dict) else None)

    async def iter_contacts(
        self, where: Sequence[Where] = (), *, page_size: int = 500, minimal: bool = True
    ) -> AsyncIterator[Contact]:
        """Every matching contact in id order, paged by `id > last` (stable under deletes)."""
        if page_size < 1:
            raise ValueError("page_size must be positive (limit=0 would mean 'everything')")
        last = 0
        while True:
            conditions = [*where, Where("id", "gt", last)]
            params = [*where_params(conditions), ("limit", str(page_size)), ("orderBy", "id"),
                      ("orderByDir", "ASC")]
            if minimal:
                params.append(("minimal", "1"))
            body = await self._request("GET", "/api/contacts", params=params)
            page = [Contact.from_api(c) for c in _as_items(body.get("contacts")) if isinstance(c, dict)]
            page.sort(key=lambda c: c.id)
            if not page:
                return
            if page[-1].id <= last:
                raise MauticRefused("contact paging did not advance", type="bad_response")
            for contact in page:
                yield contact
            last = page[-1].id
            # `total` counts what is left after `last`'s page started; equal → nothing more
            if _to_int(body.get("total"), len(page) + 1) <= len(page):
                return

    async def _still_itself(self, contact_id: int) -> bool:
        """True if the id is a live contact, False if it is gone; raises ContactMerged if it was merged away.

        Mautic's DELETE, PATCH and DNC calls load the contact with ``LeadModel::getEntity``, which follows
        the merge record of a merged-away id to the contact it was merged into (LeadBundle/Model/
        LeadModel.php): acting on a stale id would act on someone else. So the client looks first."""
        found = await self._fetch_contact(contact_id)
        if found is None:
            return False
        if found.id != int(contact_id):
            log.warning("mautic contact %d was merged into %d; not acting on it", contact_id, found.id)
            raise ContactMerged(int(contact_id), found)
        return True

    async def patch_contact(
        self, contact_id: int, fields: dict[str, Any], *, overwrite_with_blank: bool
    ) -> Contact:
        """PATCH fields; blanks only clear values with overwrite_with_blank.

        Raises ContactMerged if the id was merged away before the call, MauticNotFound if it is gone. On an
        email collision Mautic keeps the edited contact and deletes the other holder of the address
        (LeadApiController::preSaveEntity, ContactMerger::merge): callers check for holders first."""
        if not await self._still_itself(contact_id):
            raise MauticNotFound("Item was not found.", status=404, code=404)
        body = {**fields, "overwriteWithBlank": bool(overwrite_with_blank)}
        data = await self._request("PATCH", f"/api/contacts/{int(contact_id)}/edit", json_body=body)
        contact = Contact.from_api(data.get("contact") or {})
        if contact.id != int(contact_id):
            log.warning("mautic PATCH of contact %d merged it into %d", contact_id, contact.id)
            raise ContactMerged(int(contact_id), contact)
        return contact

    async def delete_contact(self, contact_id: int) -> bool:
        """Delete one contact; False if it was already gone. Raises ContactMerged for a merged-away id."""
        if not await self._still_itself(contact_id):
            return False
        body = await self._request("DELETE", f"/api/contacts/{int(contact_id)}/delete", none_on_404=True)
        return body is not None

    async def batch_delete(self, ids: Sequence[int]) -> BatchDeleteResult:
        """Delete many. Ids Mautic neither deleted nor refused are looked up: absent ones count as gone."""
        deleted: list[int] = []
        gone: list[int] = []
        refused: dict[int, str] = {}
        for start in range(0, len(ids), BATCH_DELETE_CHUNK):
            chunk = [int(i) for i in ids[start:start + BATCH_DELETE_CHUNK]]
            body = await self._request("DELETE", "/api/contacts/batch/delete",
                                       params=[("ids", ",".join(map(str, chunk)))])
            errors = body.get("errors") if isinstance(body, dict) else None
            error_items = errors.items() if isinstance(errors, dict) else enumerate(errors or [])
            for index, err in error_items:  # keyed by position in the request
                pos = _to_int(index, -1)
                if 0 <= pos < len(chunk):
                    refused[chunk[pos]] = str(err.get("message", "error")) if isinstance(err, dict) else str(err)
            returned = {_to_int(c.get("id")) for c in _as_items(body.get("contacts")) if isinstance(c, dict)}
            deleted.extend(cid for cid in chunk if cid in returned and cid not in refused)
            unreported = [cid for cid in chunk if cid not in returned and cid not in refused]
            if unreported:
                present = {c.id async for c in self.iter_contacts([Where("id", "in", unreported)],
                                                                  page_size=BATCH_DELETE_CHUNK)}
                gone.extend(cid for cid in unreported if cid not in present)
                refused.update({cid: "not deleted and still present" for cid in unreported if cid in present})
        return BatchDeleteResult(deleted=deleted, gone=gone, refused=refused)

    # ---- contact sub-resources (DSAR export) -----------------------------------------------------

    async def iter_activity(self, contact_id: int, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """All timeline events, one page at a time, ascending so new events can't shift pages.

        Each event type pages on its own (LeadBundle/Event/LeadTimelineEvent.php): a page holds up to
        `page_size` events of every type, and `maxPages` is that of the busiest type, so paging to
        maxPages yields everything, oldest first within each type but not in one global order."""
        page = 1
        while True:
            params = [("page", str(page)), ("limit", str(page_size)), ("order[0]", "timestamp"),
                      ("order[1]", "ASC")]
            body = await self._request("GET", f"/api/contacts/{int(contact_id)}/activity", params=params)
            events = [e for e in _as_items(body.get("events")) if isinstance(e, dict)]
            for event in events:
                yield event
            if not events or page >= _to_int(body.get("maxPages"), page):
                return
            page += 1

    async def _paged_list(self, path: str, key: str, page_size: int = 100) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = 0
        while True:
            body = await self._request("GET", path, params=[("start", str(start)), ("limit", str(page_size))])
            page = [i for i in _as_items(body.get(key)) if isinstance(i, dict)]
            items.extend(page)
            start += len(page)
            if not page or start >= _to_int(body.get("total"), start):
                return items

    async def _list(self, path: str, key: str) -> list[dict[str, Any]]:
        body = await self._request("GET", path)
        return [i for i in _as_items(body.get(key)) if isinstance(i, dict)]

    async def get_notes(self, contact_id: int) -> list[dict[str, Any]]:
        return await self._paged_list(f"/api/contacts/{int(contact_id)}/notes", "notes")

    async def get_segments(self, contact_id: int) -> list[dict[str, Any]]:
        return await self._list(f"/api/contacts/{int(contact_id)}/segments", "lists")  # root is `lists`

    async def get_campaigns(self, contact_id: int) -> list[dict[str, Any]]:
        return await self._list(f"/api/contacts/{int(contact_id)}/campaigns", "campaigns")

    async def get_companies(self, contact_id: int) -> list[dict[str, Any]]:
        return await self._list(f"/api/contacts/{int(contact_id)}/companies", "companies")

    async def get_devices(self, contact_id: int) -> list[dict[str, Any]]:
        # pages of default_pagelimit (30) unless asked (LeadApiController::getDevicesAction)
        return await self._paged_list(f"/api/contacts/{int(contact_id)}/devices", "devices")

    async def get_stats(self, table: str, where: Sequence[Where], *, page_size: int = 500) -> list[dict[str, Any]]:
        """Raw rows of a stats table (e.g. email_stats by lead_id) for a DSAR bundle.

        StatsApiController::listAction answers 200 even when it failed: `errors` for an exception, and
        `availableTables` instead of `stats` for a table it does not expose. Both raise MauticRefused.
        It applies no order of its own, so pages are ordered by id here to stay stable."""
        rows: list[dict[str, Any]] = []
        start = 0
        while True:
            params = [*where_params(where), ("order[0][col]", "id"), ("order[0][dir]", "ASC"),
                      ("start", str(start)), ("limit", str(page_size))]
            body = await self._request("GET", f"/api/stats/{table}", params=params)
            if not isinstance(body, dict) or body.get("errors"):
                err = _error_from(200, body)
                raise MauticRefused(err.message, status=200, code=err.code, type="stats_error")
            if "stats" not in body:
                raise MauticRefused(f"Mautic does not expose the stats table {table}", status=200,
                                    type="stats_table_unavailable")
            page = [r for r in _as_items(body.get("stats")) if isinstance(r, dict)]
            rows.extend(page)
            start += len(page)
            if len(page) < page_size or start >= _to_int(body.get("total"), start):
                return rows

    # ---- DNC and segments ------------------------------------------------------------------------

    async def add_dnc(
        self,
        contact_id: int,
        channel: str = "email",
        reason: int = 3,
        comments: str | None = None,
        channel_id: int | None = None,
    ) -> Contact:
        """Add Do-Not-Contact. Reason 1=unsubscribed, 2=bounced, 3=manual; Mautic never downgrades a 1.
        Raises ContactMerged for a merged-away id, MauticNotFound for a missing one."""
        if int(reason) == 0:
            raise ValueError("DNC reason must be non-zero (0 means contactable)")
        if not await self._still_itself(contact_id):
            raise MauticNotFound("Item was not found.", status=404, code=404)
        body: dict[str, Any] = {"reason": int(reason)}
        if comments is not None:
            body["comments"] = comments
        if channel_id is not None:
            body["channelId"] = channel_id
        data = await self._request("POST", f"/api/contacts/{int(contact_id)}/dnc/{channel}/add", json_body=body)
        return Contact.from_api(data.get("contact") or {})

    async def remove_dnc(self, contact_id: int, channel: str = "email") -> bool:
        """Remove Do-Not-Contact; returns whether a record existed. Raises ContactMerged for a merged id."""
        if not await self._still_itself(contact_id):
            raise MauticNotFound("Item was not found.", status=404, code=404)
        data = await self._request("POST", f"/api/contacts/{int(contact_id)}/dnc/{channel}/remove", json_body={})
        return bool(data.get("recordFound"))

    async def get_segment(self, segment_id: int) -> dict[str, Any] | None:
        """One segment (`GET /api/segments/{id}` answers `{"list": …}`), or None if it does not exist."""
        body = await self._request("GET", f"/api/segments/{int(segment_id)}", none_on_404=True)
        segment = body.get("list") if isinstance(body, dict) else None
        return segment if isinstance(segment, dict) else None

    async def add_to_segment(self, segment_id: int, contact_id: int) -> bool:
        data = await self._request("POST", f"/api/segments/{int(segment_id)}/contact/{int(contact_id)}/add",
                                   json_body={})
        return bool(_to_int(data.get("success")))

    async def remove_from_segment(self, segment_id: int, contact_id: int) -> bool:
        """Take a contact out of a segment (``POST /api/segments/{id}/contact/{leadId}/remove``).

        Mautic (ListApiController::removeLeadAction → ListModel::removeLead with manuallyRemoved) deletes a
        manual membership and marks a filter-made one ``manuallyRemoved``, so a segment rebuild does not put
        the contact back; a contact that is not a member is left as is. Either way it answers
        ``{"success": 1}``: the call is idempotent. 404 for a missing segment or contact, 403 for a segment
        the API user cannot see (unpublished: ListModel::getUserLists lists published segments only)."""
        data = await self._request("POST", f"/api/segments/{int(segment_id)}/contact/{int(contact_id)}/remove",
                                   json_body={})
        return bool(_to_int(data.get("success")))

    # ---- forms -----------------------------------------------------------------------------------

    async def list_forms(self) -> list[dict[str, Any]]:
        return await self._paged_list("/api/forms", "forms")

    async def get_form(self, form_id: int) -> dict[str, Any] | None:
        body = await self._request("GET", f"/api/forms/{int(form_id)}", none_on_404=True)
        form = body.get("form") if isinstance(body, dict) else None
        return form if isinstance(form, dict) else None

    async def form_revisions(self, form_ids: Sequence[int]) -> dict[int, str]:
        """{form id: its revision} for these forms, in one cheap call, so a form's full definition is fetched
        once per revision (the consent evidence caches it by revision).

        The revision is ``dateModified``, or ``dateAdded`` for a form never edited: Mautic sets
        ``dateModified`` on every save with changes but leaves it null on creation
        (CoreBundle/Model/FormModel.php, setTimestamps), and a change to a field is a change to its form
        (FormBundle/Entity/Form.php, isChanged). ``minimal`` swaps the ``formDetails`` serializer group for
        ``formList`` (ApiBundle/Controller/FetchCommonApiController.php, getEntitiesAction): id, name, alias,
        category and the publish dates, without fields or cached HTML. A form missing from the answer is gone.
        """
        wanted = sorted({int(i) for i in form_ids})
        if not wanted:
            return {}
        params = [*where_params([Where("id", "in", wanted)]), ("minimal", "1"), ("limit", str(len(wanted)))]
        body = await self._request("GET", "/api/forms", params=params)
        out: dict[int, str] = {}
        for form in _as_items(body.get("forms")):
            form_id = _to_int(form.get("id"), 0) if isinstance(form, dict) else 0
            if form_id in wanted:
                out[form_id] = form_revision(form)
        return out

    async def get_form_submissions(self, form_id: int, contact_id: int) -> list[dict[str, Any]]:
        body = await self._request(
            "GET", f"/api/forms/{int(form_id)}/submissions/contact/{int(contact_id)}", none_on_404=True
        )
        if body is None:
            return []
        return [s for s in _as_items(body.get("submissions")) if isinstance(s, dict)]


    # ---- set-up: the API user's permissions and the webhook (`python -m bot setup mautic`) ---------

    async def get_self(self) -> dict[str, Any]:
        """``GET /api/users/self``: the user the API calls run as (UserApiController::getSelfAction)."""
        return dict(await self._request("GET", "/api/users/self"))

    async def check_permissions(self, user_id: int, permissions: Sequence[str]) -> dict[str, bool]:
        """``POST /api/users/{id}/permissioncheck``: ``{permission: granted}`` for that user's role
        (UserApiController::isGrantedAction, ``isGranted(..., 'RETURN_ARRAY')``; admins get every one)."""
        body = await self._request("POST", f"/api/users/{int(user_id)}/permissioncheck",
                                   json_body={"permissions": list(permissions)})
        return {str(name): bool(granted) for name, granted in body.items()} if isinstance(body, dict) else {}

    async def list_hooks(self) -> list[dict[str, Any]]:
        """Every webhook the API user may see (``hooks`` is keyed by id, ``[]`` when there are none)."""
        return await self._paged_list("/api/hooks", "hooks")

    async def create_hook(self, hook: dict[str, Any]) -> dict[str, Any]:
        body = await self._request("POST", "/api/hooks/new", json_body=hook)
        return dict(body.get("hook") or {})

    async def replace_hook(self, hook_id: int, hook: dict[str, Any]) -> dict[str, Any]:
        """PUT, not PATCH: only PUT removes the triggers a body leaves out (WebhookApiController::preSaveEntity)."""
        body = await self._request("PUT", f"/api/hooks/{int(hook_id)}/edit", json_body=hook)
        return dict(body.get("hook") or {})


def _outcome_of(exc: MauticError) -> str:
    if isinstance(exc, MauticNotFound):
        return "not_found"
    if isinstance(exc, MauticAuthError):
        return "auth_error"
    if isinstance(exc, MauticUnavailable):
        return "unavailable"
    return "refused"


@dataclass(frozen=True)
class _ParsedError:
    message: str
    code: int | None
    type: str | None
    details: Any


def explain_auth_error(exc: MauticAuthError) -> str:
    """A sentence an operator can act on, for the auth failures Mautic answers with a bare type."""
    if exc.type == "unauthorized_client":
        return ("Mautic refused the client_credentials grant (unauthorized_client): Mautic 5+ gives that grant "
                "only to API credentials an administrator created (ApiBundle ClientController::newAction). Have "
                "an admin create a new OAuth2 credential, or use Basic auth (MAUTIC_USERNAME/MAUTIC_PASSWORD).")
    if exc.type == "invalid_client":
        return "Mautic does not know this client id/secret (invalid_client): check MAUTIC_CLIENT_ID/SECRET."
    if exc.type == "api_disabled":
        return "the API is disabled in Mautic: Configuration → API Settings → API enabled."
    if exc.type == "access_denied" and exc.status == 403:
        return "Basic auth is disabled in Mautic: Configuration → API Settings → Enable HTTP basic auth."
    return str(exc)


def _error_from(status: int, body: Any) -> _ParsedError:
    """Read `{"errors":[{code,message,details,type}]}` (list or index-keyed map) or legacy `{"error":…}`."""
    if isinstance(body, dict):
        errors = body.get("errors")
        first = _as_items(errors)[0] if _as_items(errors) else None
        if first is None and "error" in body:  # legacy shapes
            legacy = body["error"]
            first = legacy if isinstance(legacy, dict) else {"message": str(legacy),
                                                             "type": body.get("error")}
        if isinstance(first, dict):
            code = first.get("code")
            return _ParsedError(
                message=str(first.get("message") or f"HTTP {status}"),
                code=_to_int(code, status) if code is not None else status,
                type=str(first["type"]) if first.get("type") else None,
                details=first.get("details"),
            )
    return _ParsedError(message=f"HTTP {status}", code=status, type=None, details=None)
