"""Keyed posts (``messenger.post(..., once=key)``) reach Slack exactly once: across a retry, a 5xx that hid a
successful post, and a crash between the post and its commit, the message is found again by the key in its
metadata instead of being posted twice. The Slack stand-in keeps and returns metadata as Slack does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.slack.messenger import POST_EVENT_TYPE, SlackMessenger, SlackUnavailable
from sandbox.harness import PRIVACY_CHANNEL
from sandbox.slack import FakeSlack
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.migrate import migrate
from storage.slack_posts import SlackPost


async def _no_wait(_seconds: float) -> None:
    return None


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[SessionFactory]:
    engine = make_engine(db_url)
    await migrate(engine)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as http:
        yield AsyncWebClient(token=slack.token, base_url=slack.api_url, session=http, retry_handlers=[])


def _messenger(client: AsyncWebClient, sessions: SessionFactory, attempts: int = 3) -> SlackMessenger:
    return SlackMessenger(client, sleep=_no_wait, attempts=attempts, sessions=sessions)


async def _row(sessions: SessionFactory, key: str) -> SlackPost:
    async with unit_of_work(sessions) as session:
        return (await session.exec(select(SlackPost).where(SlackPost.key == key))).one()


async def test_a_keyed_post_is_made_once_and_carries_its_key(slack: FakeSlack, client: AsyncWebClient,
                                                             sessions: SessionFactory) -> None:
    messenger = _messenger(client, sessions)
    first = await messenger.post(PRIVACY_CHANNEL, text="alert", once="alert:1")
    again = await messenger.post(PRIVACY_CHANNEL, text="alert", once="alert:1")
    other = await messenger.post(PRIVACY_CHANNEL, text="another", once="alert:2")
    assert first is not None and again == first and other is not None and other.ts != first.ts
    assert [m.text for m in slack.messages(PRIVACY_CHANNEL)] == ["alert", "another"]
    assert slack.messages(PRIVACY_CHANNEL)[0].metadata == {"event_type": POST_EVENT_TYPE,
                                                           "event_payload": {"key": "alert:1"}}
    assert (await _row(sessions, "alert:1")).ts == first.ts
    assert slack.calls_to("conversations.history") == []  # nothing to look for on a first attempt


async def test_a_5xx_after_slack_posted_is_not_posted_again(slack: FakeSlack, client: AsyncWebClient,
                                                           sessions: SessionFactory) -> None:
    """Slack posted, but its edge answered 500: before retrying, the messenger finds the message."""
    slack.fail("chat.postMessage", status=500, after_handling=True)
    posted = await _messenger(client, sessions).post(PRIVACY_CHANNEL, text="digest", once="digest:7")
    (message,) = slack.messages(PRIVACY_CHANNEL)
    assert posted is not None and posted.ts == message.ts
    assert len(slack.calls_to("chat.postMessage")) == 1
    (lookup,) = slack.calls_to("conversations.history")
    assert str(lookup.params["include_all_metadata"]).lower() in {"true", "1"}


async def test_after_a_crash_between_post_and_commit_the_message_is_found_not_reposted(
        slack: FakeSlack, client: AsyncWebClient, sessions: SessionFactory) -> None:
    # The first process posts and dies before recording the ts (here: Slack's answer never arrived).
    slack.fail("chat.postMessage", status=503, after_handling=True)
    with pytest.raises(SlackUnavailable):
        await _messenger(client, sessions, attempts=1).post(PRIVACY_CHANNEL, text="request #3", once="request:3")
    assert (await _row(sessions, "request:3")).ts is None
    # The job is retried (by the restarted process): it finds the message and records it.
    posted = await _messenger(client, sessions).post(PRIVACY_CHANNEL, text="request #3", once="request:3")
    (message,) = slack.messages(PRIVACY_CHANNEL)
    assert posted is not None and posted.ts == message.ts
    assert (await _row(sessions, "request:3")).ts == message.ts
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_post_that_never_reached_slack_is_posted_on_the_retry(slack: FakeSlack, client: AsyncWebClient,
                                                                     sessions: SessionFactory) -> None:
    slack.fail("chat.postMessage", status=503)  # refused before Slack did anything
    with pytest.raises(SlackUnavailable):
        await _messenger(client, sessions, attempts=1).post(PRIVACY_CHANNEL, text="alert", once="alert:9")
    posted = await _messenger(client, sessions).post(PRIVACY_CHANNEL, text="alert", once="alert:9")
    assert posted is not None and [m.ts for m in slack.messages(PRIVACY_CHANNEL)] == [posted.ts]
    assert len(slack.calls_to("conversations.history")) == 1


async def test_a_thread_reply_is_looked_for_in_its_thread(slack: FakeSlack, client: AsyncWebClient,
                                                         sessions: SessionFactory) -> None:
    messenger = _messenger(client, sessions)
    parent = await messenger.post(PRIVACY_CHANNEL, text="request #4")
    assert parent is not None
    slack.fail("chat.postMessage", status=500, after_handling=True)
    reply = await messenger.post(PRIVACY_CHANNEL, text="done", thread_ts=parent.ts, once="job:5:access-done")
    (message,) = slack.thread(PRIVACY_CHANNEL, parent.ts)
    assert reply is not None and reply.ts == message.ts
    assert len(slack.calls_to("conversations.replies")) == 1


async def test_the_stand_in_returns_metadata_only_when_asked(slack: FakeSlack, client: AsyncWebClient) -> None:
    metadata = {"event_type": "task_created", "event_payload": {"id": "TK-1"}}
    posted = await client.chat_postMessage(channel=PRIVACY_CHANNEL, text="one", metadata=metadata)
    await client.chat_postMessage(channel=PRIVACY_CHANNEL, text="two")
    await client.chat_postMessage(channel=PRIVACY_CHANNEL, text="reply", thread_ts=posted["ts"])
    plain = await client.conversations_history(channel=PRIVACY_CHANNEL)
    full = await client.conversations_history(channel=PRIVACY_CHANNEL, include_all_metadata=True)
    after = await client.conversations_history(channel=PRIVACY_CHANNEL, oldest=posted["ts"])
    replies = await client.conversations_replies(channel=PRIVACY_CHANNEL, ts=posted["ts"], include_all_metadata=True)
    assert [m["text"] for m in full["messages"]] == ["two", "one"]  # newest first, replies not listed
    assert all("metadata" not in m for m in plain["messages"])
    assert full["messages"][1]["metadata"] == metadata
    assert [m["text"] for m in after["messages"]] == ["two"]  # oldest is exclusive
    assert [m["text"] for m in replies["messages"]] == ["one", "reply"]
    slack.scopes.remove("channels:history")
    with pytest.raises(SlackApiError) as refused:
        await client.conversations_history(channel=PRIVACY_CHANNEL)
    assert refused.value.response["error"] == "missing_scope"
