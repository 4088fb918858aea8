"""The one Slack messenger: every post, update, ephemeral and upload the bot makes goes through here,
under one failure policy.

- 429: wait ``Retry-After`` (capped) and try again.
- 5xx, timeouts and connection errors: try again with exponential backoff and jitter.
- After ``attempts`` tries: the give-up hook is told, and :class:`SlackUnavailable` is raised, which the
  job runner retries later with its own backoff (so work is delayed, never dropped).
- Any other Slack error (``channel_not_found``, ``invalid_blocks``…) is :class:`SlackRefused`: retrying
  the same call cannot help.

Callers that must not fail because Slack is briefly down (a listener whose decision is already
committed) pass ``best_effort=True`` and get ``None`` instead of an exception.

A post given ``once=<key>`` is made exactly once however often it is retried, across crashes and replicas:
the intent is committed first (``slack_posts``, keyed by ``key``), the message carries the key in its
``metadata``, and its ts is committed after. A later call with the key returns the recorded message; one that
finds an intent without a ts (the process died mid-post, or Slack's answer was lost) first looks for the
message by its metadata (``conversations.history``/``conversations.replies`` with ``include_all_metadata``)
and posts only if it is not there. The same look-up runs before retrying a post whose answer was a 5xx or
never came, since Slack may have posted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from storage import slack_posts
from storage.db import SessionFactory, unit_of_work

log = logging.getLogger(__name__)

GiveUpHook = Callable[[str, BaseException], None]
# Told after every call the messenger makes: (method, outcome), outcome one of "ok", "refused", "unavailable".
CallObserver = Callable[[str, str], None]
# What a keyed post carries in its metadata (event_payload {"key": …}), to be found again after a crash.
POST_EVENT_TYPE = "privacy_bot_post"
# How far before its intent a keyed post is looked for (clock skew between this host and Slack).
LOOKUP_SLACK = timedelta(minutes=2)
LOOKUP_PAGES = 10  # of 200 messages each: a privacy channel over a few minutes holds far fewer


class SlackError(Exception):
    """A Web API call that did not succeed; ``method`` names it, ``error`` is Slack's error code."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method}: {error}")
        self.method, self.error = method, error


class SlackUnavailable(SlackError):
    """Slack kept answering 429/5xx or did not answer at all: try again later."""


class SlackRefused(SlackError):
    """Slack refused the call (``ok: false``); the same call will be refused again."""


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


@dataclass
class SlackMessenger:
    client: AsyncWebClient
    attempts: int = 3
    retry_after_cap: float = 30.0
    backoff_base: float = 1.0
    on_give_up: GiveUpHook | None = None
    _observers: list[CallObserver] = field(default_factory=list)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    # Where keyed posts record their intent and ts (the bot's database); without it ``once`` is refused.
    sessions: SessionFactory | None = None

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """Serialise the calls made under ``key`` in this process (two edits of one message in flight
        could land out of order). A key's lock is dropped once nobody holds or waits for it."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def post(self, channel: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, best_effort: bool = False, once: str | None = None,
                   **extra: Any) -> Posted | None:
        """``chat.postMessage`` with link and media unfurling off (nothing the bot posts should be fetched).

        ``once``: an idempotency key ("alert:12"); the message is posted at most once for it, ever (see the
        module's docstring). Not inside a unit of work: the intent is committed in one of its own.
        """
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False,
                                  **extra}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        if once is not None:
            return await self._post_once(once, kwargs, best_effort)
        response = await self.call("chat.postMessage", best_effort=best_effort, **kwargs)
        if response is None:
            return None
        return Posted(str(response["channel"]), str(response["ts"]))

    async def _post_once(self, key: str, kwargs: dict[str, Any], best_effort: bool) -> Posted | None:
        if self.sessions is None:
            raise RuntimeError("a keyed post needs the messenger's sessions")
        channel, thread_ts = str(kwargs["channel"]), kwargs.get("thread_ts")
        async with unit_of_work(self.sessions) as session:
            intent, first = await slack_posts.intend(session, key, channel, thread_ts, _now())
        if intent.ts is not None:
            return Posted(intent.channel, intent.ts)
        since = intent.intended_at - LOOKUP_SLACK

        async def look_up() -> Posted | None:
            found = await self._find(key, channel, thread_ts, since)
            if found is not None:
                log.info("slack post %s found already posted (ts %s), not posting again", key, found.ts)
                await self._record(key, found)
            return found

        if not first:  # an earlier attempt may have posted before it died or lost Slack's answer
            try:
                found = await look_up()
            except SlackError as exc:
                if not best_effort:
                    raise
                log.warning("slack post %s: could not look for an earlier copy (%s)", key, exc.error)
                return None
            if found is not None:
                return found
        kwargs = {**kwargs, "metadata": {"event_type": POST_EVENT_TYPE, "event_payload": {"key": key}}}
        response = await self._with_policy("chat.postMessage", self.client.chat_postMessage, kwargs, best_effort,
                                           recheck=look_up)
        if response is None:
            return None
        if isinstance(response, Posted):
            return response
        posted = Posted(str(response["channel"]), str(response["ts"]))
        await self._record(key, posted)
        return posted

    async def _record(self, key: str, posted: Posted) -> None:
        assert self.sessions is not None
        async with unit_of_work(self.sessions) as session:
            await slack_posts.record_posted(session, key, posted.channel, posted.ts, _now())

    async def _find(self, key: str, channel: str, thread_ts: str | None, since: datetime) -> Posted | None:
        """The bot's message carrying ``key`` in its metadata, posted after ``since``; None if there is none."""
        params: dict[str, Any] = {"channel": channel, "oldest": f"{since.timestamp():.6f}",
                                  "include_all_metadata": True, "limit": 200}
        cursor = None
        for _page in range(LOOKUP_PAGES):
            if cursor:
                params["cursor"] = cursor
            if thread_ts is not None:  # a reply: its thread (channels:history, or groups:history when private)
                response = await self.call("conversations.replies", ts=thread_ts, **params)
            else:
                response = await self.call("conversations.history", **params)
            assert response is not None
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == POST_EVENT_TYPE and payload.get("key") == key:
                    return Posted(str(response.get("channel") or channel), str(message["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        log.warning("slack post %s: not found in %d pages; posting again", key, LOOKUP_PAGES)
        return None

    async def update(self, channel: str, ts: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
                     best_effort: bool = False, **extra: Any) -> bool:
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text, **extra}
        if blocks is not None:
            kwargs["blocks"] = blocks
        return await self.call("chat.update", best_effort=best_effort, **kwargs) is not None

    async def post_ephemeral(self, channel: str, user: str, *, text: str,
                             blocks: list[dict[str, Any]] | None = None, best_effort: bool = False) -> bool:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        return await self.call("chat.postEphemeral", best_effort=best_effort, **kwargs) is not None

    async def upload(self, channel: str, *, filename: str, content: bytes, title: str,
                     initial_comment: str | None = None, thread_ts: str | None = None,
                     before_upload: Callable[[str], Awaitable[None]] | None = None) -> str:
        """Upload a file (files v2: getUploadURLExternal, the upload, completeUploadExternal); its file id.

        The three steps are made here rather than through the SDK's ``files_upload_v2`` so that
        ``before_upload`` learns the file id Slack grants before any byte leaves: a caller that must be
        able to delete the file later records the id durably there, and a crash in the middle still
        leaves the id behind. The content stays in memory throughout (no temporary file).
        """
        grant = await self.call("files.getUploadURLExternal", filename=filename, length=len(content))
        assert grant is not None
        file_id, upload_url = str(grant["file_id"]), str(grant["upload_url"])
        if before_upload is not None:
            await before_upload(file_id)

        async def send_bytes(**kwargs: Any) -> Any:
            # The SDK's own step 2 (a POST of the bytes to the granted URL), as files_upload_v2 makes it.
            client = self.client
            result = await client._upload_file(url=upload_url, data=content, logger=log, timeout=client.timeout,
                                               proxy=client.proxy, ssl=client.ssl)
            if result.status == 429 or result.status >= 500:
                raise aiohttp.ClientError(f"the upload URL answered {result.status}")  # retried below
            if result.status != 200:
                raise SlackRefused("files.upload", str(result.status))
            return result

        await self._with_policy("files.upload", send_bytes, {}, False)
        files = [{"id": file_id, "title": title}]
        kwargs: dict[str, Any] = {"files": files, "channel_id": channel}
        if initial_comment is not None:
            kwargs["initial_comment"] = initial_comment
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        await self.call("files.completeUploadExternal", **kwargs)
        return file_id

    async def delete_file(self, file_id: str) -> bool:
        """``files.delete``; True when the file is gone, also when it was gone already (``file_not_found``,
        ``file_deleted``: a second delete after a crash is no failure). ``cant_delete_file`` and other
        refusals raise :class:`SlackRefused`."""
        try:
            await self.call("files.delete", file=file_id)
        except SlackRefused as exc:
            if exc.error in ("file_not_found", "file_deleted"):
                return True
            raise
        return True

    async def call(self, method: str, *, best_effort: bool = False, **kwargs: Any) -> AsyncSlackResponse | None:
        """Any Web API method (``"views.open"``, ``"usergroups.users.list"``) under the same policy."""
        # The SDK's own method (chat_postMessage for chat.postMessage) knows how each one is sent.
        return await self._with_policy(method, getattr(self.client, method.replace(".", "_")), kwargs, best_effort)

    async def _with_policy(self, method: str, send: Callable[..., Awaitable[Any]], kwargs: dict[str, Any],
                           best_effort: bool, recheck: Callable[[], Awaitable[Any]] | None = None) -> Any:
        try:
            response = await self._attempt(method, send, kwargs, recheck)
        except SlackError as exc:
            self._observe(method, "unavailable" if isinstance(exc, SlackUnavailable) else "refused")
            if not best_effort:
                raise
            log.warning("slack %s failed, going on without it: %s", method, exc.error)
            return None
        self._observe(method, "ok")
        return response

    def observe(self, observer: CallObserver) -> None:
        """Tell ``observer`` about every call from now on (metrics count them; App Home hears of changes), so
        the messenger imports neither."""
        self._observers.append(observer)

    def _observe(self, method: str, outcome: str) -> None:
        for observer in self._observers:
            observer(method, outcome)

    async def _attempt(self, method: str, send: Callable[..., Awaitable[Any]], kwargs: dict[str, Any],
                       recheck: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Send under the policy. ``recheck`` runs before a retry that follows an answer that may hide success
        (a 5xx, a timeout, a dropped connection; not a 429, which Slack sends before doing anything): what it
        returns, if not None, is the outcome."""
        last: BaseException | None = None
        ambiguous = False
        for attempt in range(1, self.attempts + 1):
            if ambiguous and recheck is not None:
                try:
                    found = await recheck()
                except SlackError:
                    found = None  # the look-up failed too; the retry below is the best left to do
                if found is not None:
                    return found
            try:
                return await send(**kwargs)
            except SlackApiError as exc:
                status = getattr(exc.response, "status_code", None) or 200
                error = str(exc.response.get("error") or status) if exc.response is not None else "unknown"
                if status == 429:
                    headers = getattr(exc.response, "headers", None) or {}
                    delay = min(_seconds(headers.get("Retry-After") or headers.get("retry-after")),
                                self.retry_after_cap)
                    ambiguous = False
                elif status >= 500:
                    delay, ambiguous = self._backoff(attempt), True
                else:
                    raise SlackRefused(method, error) from exc
                last = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                delay, last, ambiguous = self._backoff(attempt), exc, True
            if attempt < self.attempts:
                await self.sleep(delay)
        assert last is not None
        if self.on_give_up is not None:
            self.on_give_up(method, last)
        raise SlackUnavailable(method, type(last).__name__) from last

    def _backoff(self, attempt: int) -> float:
        return self.backoff_base * 2 ** (attempt - 1) * (0.5 + random.random() / 2)  # noqa: S311 - jitter


def _now() -> datetime:
    # Wall time, not the service's clock (tests turn that): it is compared with Slack's message timestamps.
    return datetime.now(UTC)


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0
