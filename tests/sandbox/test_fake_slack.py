"""The Slack stand-in, exercised through the real slack-sdk client and a real Bolt app, so that the fake
stays faithful to what both sides of the wire actually send and expect."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.slack import (
    DEFAULT_SCOPES,
    FakeSlack,
    Message,
    SlackUserAgent,
    render_message,
    sign_slack_request,
    validate_blocks,
)

SECRET = "test-signing-secret"
CHANNEL = "C0PRIVACY"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK sends traffic to any proxy in the environment, bypassing NO_PROXY (slack.md §1.11).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "SLACK_CLIENT_ID",
                 "SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    # The fake's directory methods need scopes the bot's manifest no longer asks for (it calls none of them).
    async with FakeSlack(scopes=[*DEFAULT_SCOPES, "users:read", "users:read.email", "channels:read",
                                 "groups:read"]) as slack:
        slack.add_user("U0ALICE", "alice", "alice@example.com")
        slack.add_user("U0BOB", "bob", "bob@example.com")
        slack.add_user("U0CAROL", "carol", "carol@example.com")
        slack.add_channel(CHANNEL, "privacy", members=["U0ALICE", "U0BOB"])
        yield slack


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url)


def actions_block(block_id: str = "req-42", value: str = "42") -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            {"type": "button", "action_id": "approve", "value": value, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": "reject", "value": value, "style": "danger",
             "text": {"type": "plain_text", "text": "Reject"}},
        ],
    }  # fmt: skip


async def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# ---- Web API: messages ---------------------------------------------------------------------------


async def test_post_thread_and_update_flow(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel=CHANNEL, text="Review request #42", blocks=[actions_block()])
    reply = await client.chat_postMessage(channel=CHANNEL, text="details", thread_ts=first["ts"])
    second = await client.chat_postMessage(channel=CHANNEL, text="another")
    updated = await client.chat_update(channel=CHANNEL, ts=first["ts"], text="Approved #42", blocks=[])

    assert first["channel"] == CHANNEL and first["message"]["bot_id"] == fake.bot_id
    assert float(first["ts"]) < float(reply["ts"]) < float(second["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]
    assert [m.ts for m in fake.messages(CHANNEL)] == [first["ts"], second["ts"]]  # replies stay in thread
    assert [m.text for m in fake.thread(CHANNEL, first["ts"])] == ["details"]
    assert updated["text"] == "Approved #42" and updated["ts"] == first["ts"]
    message = fake.message(CHANNEL, first["ts"])
    assert (message.text, message.blocks, message.edits) == ("Approved #42", [], 1)
    assert message.history[0].blocks == [actions_block()]


async def test_form_and_query_params_are_merged_like_slack(fake: FakeSlack) -> None:
    # Slack also takes form bodies, with structured arguments as JSON strings, and params in the query.
    form = {"channel": CHANNEL, "text": "hi", "blocks": json.dumps([actions_block()])}
    auth = {"Authorization": f"Bearer {fake.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.api_url + "chat.postMessage", data=form, headers=auth) as posted:
            ts = (await posted.json())["ts"]
        async with http.post(
            fake.api_url + "chat.postMessage",
            params={"channel": CHANNEL},
            data={"text": "x", "blocks": "[{"},
            headers=auth,
        ) as broken:
            bad_json = await broken.json()
        async with http.get(
            fake.api_url + "chat.getPermalink", params={"channel": CHANNEL, "message_ts": ts}, headers=auth
        ) as r:
            permalink = (await r.json())["permalink"]

    assert fake.message(CHANNEL, ts).blocks == [actions_block()]
    assert bad_json == {"ok": False, "error": "invalid_blocks_format"}
    assert permalink.endswith(f"/archives/{CHANNEL}/p{ts.replace('.', '')}")


async def test_update_rejects_unknown_and_foreign_messages(fake: FakeSlack, client: AsyncWebClient) -> None:
    human = fake.post_as_user(CHANNEL, "U0ALICE", "hello")

    missing = await api_error(client.chat_update(channel=CHANNEL, ts="1.000001", text="x"))
    foreign = await api_error(client.chat_update(channel=CHANNEL, ts=human.ts, text="x"))

    assert missing.response["error"] == "message_not_found"
    assert foreign.response["error"] == "cant_update_message"
    assert fake.message(CHANNEL, human.ts).text == "hello"


async def test_channel_membership_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C0PUBLIC", "general", members=["U0ALICE"], bot_is_member=False)
    fake.add_channel("G0SECRET", "legal", members=["U0ALICE"], is_private=True, bot_is_member=False)

    assert (await client.chat_postMessage(channel="C0PUBLIC", text="hi"))["ok"]  # chat:write.public
    hidden = await api_error(client.chat_postMessage(channel="G0SECRET", text="hi"))
    unknown = await api_error(client.chat_postMessage(channel="C0NOPE", text="hi"))
    with pytest.warns(UserWarning, match="text"):  # the SDK itself warns about a missing text
        empty = await api_error(client.chat_postMessage(channel=CHANNEL, text=""))
    fake.scopes.remove("chat:write.public")
    not_in = await api_error(client.chat_postMessage(channel="C0PUBLIC", text="hi"))

    assert hidden.response["error"] == "channel_not_found"  # private channels are invisible to outsiders
    assert unknown.response["error"] == "channel_not_found"
    assert empty.response["error"] == "no_text"
    assert not_in.response["error"] == "not_in_channel"
    assert len(fake.messages("C0PUBLIC")) == 1


async def test_invalid_blocks_are_rejected_with_slack_style_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    too_many = [{"type": "divider"} for _ in range(51)]
    long_button = actions_block()
    long_button["elements"][0]["text"]["text"] = "A" * 76

    many = await api_error(client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_many))
    button = await api_error(client.chat_postMessage(channel=CHANNEL, text="x", blocks=[long_button]))

    assert many.response["error"] == "invalid_blocks"
    assert many.response["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]
    assert button.response["errors"] == [
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"
    ]
    assert fake.messages(CHANNEL) == []
    assert validate_blocks(too_many[:50]) == []


def test_block_limits_cover_sections_ids_and_confirm_dialogs() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001},
               "fields": [{"type": "mrkdwn", "text": "f"}] * 11}  # fmt: skip
    confirm = actions_block()
    confirm["block_id"] = "b" * 256
    confirm["elements"][1]["confirm"] = {
        "title": {"type": "plain_text", "text": "t" * 101}, "text": {"type": "mrkdwn", "text": "x" * 301},
        "confirm": {"type": "plain_text", "text": "Yes"}, "deny": {"type": "plain_text", "text": "No"},
    }  # fmt: skip
    confirm["elements"].extend({"type": "button", "action_id": f"b{i}", "text": {"type": "plain_text", "text": "b"}}
                               for i in range(24))  # fmt: skip

    errors = validate_blocks([section, confirm])

    assert errors == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        "must be less than 256 characters [json-pointer:/blocks/1/block_id]",
        "no more than 25 items allowed [json-pointer:/blocks/1/elements]",
        "must be less than 101 characters [json-pointer:/blocks/1/elements/1/confirm/title/text]",
        "must be less than 301 characters [json-pointer:/blocks/1/elements/1/confirm/text/text]",
    ]


async def test_ephemeral_messages_need_a_member_and_cannot_be_updated(fake: FakeSlack, client: AsyncWebClient) -> None:
    sent = await client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="only you")
    outsider = await api_error(client.chat_postEphemeral(channel=CHANNEL, user="U0CAROL", text="x"))
    update = await api_error(client.chat_update(channel=CHANNEL, ts=sent["message_ts"], text="x"))

    assert [(e.user, e.text, e.message_ts) for e in fake.ephemerals] == [("U0ALICE", "only you", sent["message_ts"])]
    assert outsider.response["error"] == "user_not_in_channel"
    assert update.response["error"] == "message_not_found"
    assert fake.messages(CHANNEL) == []


# ---- Web API: auth, directory, files -------------------------------------------------------------


async def test_auth_is_required_and_auth_test_reports_scopes(fake: FakeSlack, client: AsyncWebClient) -> None:
    result = await client.auth_test()
    wrong = await api_error(AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test())
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.api_url + "auth.test") as anonymous:
            no_token = await anonymous.json()
        async with http.get(fake.api_url + "nope.nope", headers={"Authorization": f"Bearer {fake.token}"}) as r:
            unknown = await r.json()

    assert (result["user_id"], result["bot_id"], result["team_id"]) == ("UBOT", "B0BOT", "T0001")
    assert "users:read.email" in result.headers["x-oauth-scopes"].split(",")
    assert wrong.response["error"] == "invalid_auth"
    assert (anonymous.status, no_token) == (200, {"ok": False, "error": "not_authed"})
    assert unknown == {"ok": False, "error": "unknown_method"}
    assert [c.method for c in fake.calls] == ["auth.test", "auth.test", "auth.test", "nope.nope"]


async def test_users_and_usergroups(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_usergroup("S0PRIVACY", ["U0ALICE", "U0BOB"])

    members = await client.usergroups_users_list(usergroup="S0PRIVACY")
    no_group = await api_error(client.usergroups_users_list(usergroup="S0NOPE"))
    alice = await client.users_info(user="U0ALICE")
    no_user = await api_error(client.users_info(user="U0NOPE"))
    fake.scopes.remove("users:read.email")
    without_email_scope = await client.users_info(user="U0ALICE")

    assert members["users"] == ["U0ALICE", "U0BOB"]
    assert no_group.response["error"] == "no_such_subteam"
    assert alice["user"]["profile"]["email"] == "alice@example.com"
    assert no_user.response["error"] == "user_not_found"
    assert "email" not in without_email_scope["user"]["profile"]  # Slack hides it without users:read.email


async def test_conversations_members_pages_with_cursor(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C0BIG", "big", members=[f"U{i:04d}" for i in range(5)])

    # The SDK's iterator reuses one response object per page, so copy each page out as it arrives.
    pages = [list(page["members"]) async for page in await client.conversations_members(channel="C0BIG", limit=2)]
    bad_cursor = await api_error(client.conversations_members(channel="C0BIG", cursor="%%%"))

    assert pages == [["U0000", "U0001"], ["U0002", "U0003"], ["U0004", "UBOT"]]
    assert fake.calls_to("conversations.members")[2].response["response_metadata"]["next_cursor"] == ""  # type: ignore[index]
    assert bad_cursor.response["error"] == "invalid_cursor"


async def test_files_upload_v2_end_to_end(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="export ready")

    result = await client.files_upload_v2(
        channel=CHANNEL, content=b"email\na@x\n", filename="export.csv", title="Export",
        initial_comment="here it is", thread_ts=parent["ts"],
    )  # fmt: skip

    file_id = result["file"]["id"]
    assert fake.uploads == {file_id: b"email\na@x\n"}
    assert result["files"][0]["title"] == "Export"
    [shared] = fake.thread(CHANNEL, parent["ts"])
    assert (shared.text, [f["id"] for f in shared.files]) == ("here it is", [file_id])
    upload_call = fake.calls_to("files.getUploadURLExternal")[0]
    assert upload_call.params == {"filename": "export.csv", "length": "10"}


async def test_upload_sink_checks_length_and_completion_needs_the_bytes(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    grant = await client.files_getUploadURLExternal(filename="a.txt", length=3)
    async with aiohttp.ClientSession() as http:
        async with http.post(grant["upload_url"], data=b"toolong") as short:
            mismatch = short.status
    missing = await api_error(client.files_completeUploadExternal(files=[{"id": grant["file_id"]}]))
    async with aiohttp.ClientSession() as http:
        async with http.post(grant["upload_url"], data=b"abc") as ok:
            body = (ok.status, ok.content_type, await ok.text())

    assert mismatch == 400
    assert missing.response["error"] == "file_not_found"
    assert body == (200, "text/plain", "OK - 3")


# ---- fault injection and waiting ------------------------------------------------------------------


async def test_rate_limit_then_success_with_retry_handler(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The handler sleeps Retry-After + random(); pin the jitter so the retry is immediate.
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    fake.fail("chat.postMessage", status=429, retry_after=0)
    plain = AsyncWebClient(token=fake.token, base_url=fake.api_url)
    limited = await api_error(plain.chat_postMessage(channel=CHANNEL, text="first"))
    fake.fail("chat.postMessage", retry_after=0)
    retrying = AsyncWebClient(
        token=fake.token, base_url=fake.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
    )

    result = await retrying.chat_postMessage(channel=CHANNEL, text="second")

    assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "0")
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]
    assert result["ok"] and [m.text for m in fake.messages(CHANNEL)] == ["second"]


async def test_error_and_server_faults_are_one_shot(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail("users.info", error="ratelimited_by_policy", times=2)
    fake.fail("conversations.info", status=503)

    errors = [await api_error(client.users_info(user="U0ALICE")) for _ in range(2)]
    async with aiohttp.ClientSession() as http, http.get(
        fake.api_url + "conversations.info", params={"channel": CHANNEL},
        headers={"Authorization": f"Bearer {fake.token}"},
    ) as down:  # fmt: skip
        outage = (down.status, down.content_type)

    assert [e.response["error"] for e in errors] == ["ratelimited_by_policy"] * 2
    assert outage == (503, "text/html")
    assert (await client.users_info(user="U0ALICE"))["ok"]
    assert (await client.conversations_info(channel=CHANNEL))["channel"]["name"] == "privacy"


async def test_slow_method_trips_client_timeout(fake: FakeSlack) -> None:
    fake.slow("auth.test", 0.3)
    # The SDK annotates `timeout` as int but hands it to aiohttp, which takes seconds as a float.
    impatient = AsyncWebClient(token=fake.token, base_url=fake.api_url, timeout=0.05)  # type: ignore[arg-type]

    with pytest.raises(asyncio.TimeoutError):
        await impatient.auth_test()


async def test_wait_for_times_out_with_summary(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.auth_test()
    started = time.monotonic()

    with pytest.raises(AssertionError, match=r"chat\.postMessage.*got 0.*auth\.test\(ok\)"):
        await fake.wait_for("chat.postMessage", timeout=0.1)

    assert time.monotonic() - started < 2


async def test_wait_for_wakes_on_the_call_it_waits_for(fake: FakeSlack, client: AsyncWebClient) -> None:
    waiter = asyncio.create_task(
        fake.wait_for("chat.postMessage", 2, where=lambda c: c.params.get("text") != "skip", timeout=2)
    )
    for text in ("one", "skip", "two"):
        await client.chat_postMessage(channel=CHANNEL, text=text)

    calls = await waiter

    assert [c.params["text"] for c in calls] == ["one", "two"]


# ---- response_url sink and views ------------------------------------------------------------------


async def test_response_url_sink_records_and_edits_the_bound_message(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="pending", blocks=[actions_block()])
    url = fake.response_url("actions", channel=CHANNEL, message_ts=posted["ts"], user="U0ALICE")

    await AsyncWebhookClient(url).send(text="approved", replace_original=True)
    await AsyncWebhookClient(url).send(text="just you")
    [first, second] = await fake.wait_for_response(2)

    assert first.path.startswith("actions/") and first.replace_original and first.text == "approved"
    assert fake.message(CHANNEL, posted["ts"]).text == "approved"
    assert second.response_type is None and fake.ephemerals[-1].text == "just you"


async def test_views_open_update_and_trigger_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    trigger = fake.trigger_id("U0ALICE")
    modal = {"type": "modal", "callback_id": "erase", "private_metadata": "req-7",
             "title": {"type": "plain_text", "text": "Erase contact"},
             "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Erase?"}}]}  # fmt: skip

    opened = await client.views_open(trigger_id=trigger, view=modal)
    reused = await api_error(client.views_open(trigger_id=trigger, view=modal))
    bogus = await api_error(client.views_open(trigger_id="1.2.3", view=modal))
    updated = await client.views_update(view_id=opened["view"]["id"], view={**modal, "private_metadata": "v2"})
    conflict = await api_error(
        client.views_update(view_id=opened["view"]["id"], view=modal, hash=opened["view"]["hash"])
    )

    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "erase"
    assert (reused.response["error"], bogus.response["error"]) == ("exchanged_trigger_id", "invalid_trigger_id")
    assert updated["view"]["private_metadata"] == "v2"
    assert conflict.response["error"] == "hash_conflict"
    assert [(v.user, v.private_metadata, len(v.history)) for v in fake.views] == [("U0ALICE", "v2", 1)]


def test_render_message_shows_blocks_as_a_terminal_would() -> None:
    message = Message("1.1", CHANNEL, "fallback", blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": "Erasure request"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Requested by <@U0ALICE>"},
         "fields": [{"type": "mrkdwn", "text": "*Email*\na@x.com"}]},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ledger #9"}]},
        actions_block(),
    ])  # fmt: skip

    text = render_message(message, names={"U0ALICE": "alice"})

    assert text.splitlines() == [
        "Erasure request", "===============", "Requested by @alice", "  *Email*", "a@x.com",
        "-" * 40, "  ledger #9", "[ Approve ]  [ Reject ]",
    ]  # fmt: skip
    assert render_message({"text": "plain &lt;ok&gt;"}) == "plain <ok>"


# ---- the client role against a real Bolt app -------------------------------------------------------


def signature_is_valid(body: str, headers: dict[str, str]) -> bool:
    return SignatureVerifier(SECRET).is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])


def test_signer_matches_slack_sdk() -> None:
    body = "command=%2Fprivacy&text=erase+payload%40example.com"
    headers = sign_slack_request(body, SECRET, timestamp=1_700_000_000)

    assert headers["X-Slack-Signature"] == SignatureVerifier(SECRET).generate_signature(
        timestamp="1700000000", body=body
    )
    assert signature_is_valid(body, sign_slack_request(body, SECRET))
    assert not signature_is_valid(body + "x", sign_slack_request(body, SECRET))
    assert not signature_is_valid(body, sign_slack_request(body, SECRET, int(time.time()) - 301))


def build_bolt_app(fake: FakeSlack) -> web.Application:
    """A minimal bot, mounted the way slack.md §1.1 describes, to prove Bolt accepts our payloads."""
    bolt = AsyncApp(client=AsyncWebClient(token=fake.token, base_url=fake.api_url), signing_secret=SECRET)

    @bolt.command("/privacy")
    async def on_command(ack: Any, respond: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack(f"working on {command['text']}")
        if command["text"] == "form":
            await client.views_open(trigger_id=command["trigger_id"], view={
                "type": "modal", "callback_id": "rectify", "private_metadata": "req-9",
                "title": {"type": "plain_text", "text": "Rectify"}, "submit": {"type": "plain_text", "text": "Save"},
                "blocks": [{"type": "input", "block_id": "field", "label": {"type": "plain_text", "text": "Field"},
                            "element": {"type": "plain_text_input", "action_id": "value"}}],
            })  # fmt: skip
            return
        await respond(text=f"queued {command['text']} for <@{command['user_id']}>")
        await client.chat_postMessage(channel=command["channel_id"], text="Approve?", blocks=[actions_block()])

    @bolt.action("approve")
    async def on_approve(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        container = body["container"]
        await client.chat_update(
            channel=container["channel_id"], ts=container["message_ts"],
            text=f"approved {action['value']} by {body['user']['id']}", blocks=[],
        )  # fmt: skip

    @bolt.view("rectify")
    async def on_submit(ack: Any, view: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        value = view["state"]["values"]["field"]["value"]["value"]
        await client.chat_postMessage(channel=CHANNEL, text=f"{view['private_metadata']}: {value}")

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", slack_events)
    return app


@pytest.fixture
async def agent(fake: FakeSlack, aiohttp_server: Any) -> AsyncIterator[SlackUserAgent]:
    server = await aiohttp_server(build_bolt_app(fake))
    async with aiohttp.ClientSession() as session:
        yield SlackUserAgent(session, str(server.make_url("/slack/events")), SECRET, fake)


async def test_command_then_click_through_a_real_bolt_app(fake: FakeSlack, agent: SlackUserAgent) -> None:
    command = await agent.command("U0ALICE", CHANNEL, "erase a@x.com")
    [reply] = await fake.wait_for_response(where=lambda r: r.path == command.response_path)
    await fake.wait_for("chat.postMessage")
    [prompt] = fake.messages(CHANNEL)

    click = await agent.click("U0BOB", prompt, "approve")
    await fake.wait_for("chat.update")

    assert (command.status, command.text) == (200, "working on erase a@x.com")
    assert reply.text == "queued erase a@x.com for <@U0ALICE>" and reply.response_type is None
    assert [e.user for e in fake.ephemerals] == ["U0ALICE"]  # an ephemeral reply to the invoking user
    assert click.status == 200
    assert fake.message(CHANNEL, prompt.ts).text == "approved 42 by U0BOB"


async def test_modal_round_trip_through_a_real_bolt_app(fake: FakeSlack, agent: SlackUserAgent) -> None:
    await agent.command("U0ALICE", CHANNEL, "form")
    await fake.wait_for("views.open")
    [view] = fake.views

    submitted = await agent.submit_view(
        "U0ALICE", view, {"field": {"value": {"type": "plain_text_input", "value": "name=Ann"}}}
    )
    await fake.wait_for("chat.postMessage")

    assert submitted.status == 200
    assert [m.text for m in fake.messages(CHANNEL)] == ["req-9: name=Ann"]


async def test_unsigned_and_tampered_requests_are_refused(agent: SlackUserAgent) -> None:
    body = "command=%2Fprivacy&text=help&user_id=U0ALICE&channel_id=C0PRIVACY"

    unsigned = await agent.post_raw(body)
    tampered = await agent.post_raw(body + "x", headers=sign_slack_request(body, SECRET))
    stale = await agent.post_raw(body, headers=sign_slack_request(body, SECRET, int(time.time()) + 301))

    assert [(r.status, r.json) for r in (unsigned, tampered, stale)] == [(401, {"error": "invalid request"})] * 3
