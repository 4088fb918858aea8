"""Every Block Kit builder, fed hostile text wherever it takes text, produces no markup it did not mean:
no mention, no link, no bare ``&`` from outside text survives in a text Slack parses (mrkdwn objects and a
message's ``text``). Builders are found by walking the builder modules, so a new one is covered too."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.digests import blocks as digest_blocks
from bot.home import blocks as home_blocks
from bot.intake import blocks as intake_blocks
from bot.requests import blocks as request_blocks
from bot.slack import blocks as kit
from bot.slack import help as help_texts
from storage.erasure_cleanup import CleanupLine

HOSTILE = "<!channel> <https://evil.example|Download> & <@U0EVIL> x@evil.example|<!here>"
# What may never appear in a parsed text: the hostile markup, intact, or an ampersand that is not an escape.
_SURVIVORS = ("<!channel>", "<!here>", "<https://evil.example", "<@U0EVIL>", "|Download>")
_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")
MODULES = [intake_blocks, request_blocks, digest_blocks, home_blocks, help_texts]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _fabricate(hint: Any, name: str = "") -> Any:
    """A value of type ``hint`` whose every text is HOSTILE (numbers and dates are plain)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return HOSTILE
    if hint is bool:
        return True
    if hint is int:
        return 7
    if hint is float:
        return 1.5
    if hint is datetime:
        return NOW
    if hint is date:
        return NOW.date()
    if hint is timedelta:
        return timedelta(days=30)
    if hint is Any or hint is object:
        return HOSTILE
    if origin in (typing.Union, types.UnionType):
        return _fabricate(next(a for a in args if a is not type(None)), name)
    if origin is typing.Literal:
        return args[0]
    if origin in (list, Sequence, set, frozenset):
        return [_fabricate(args[0], name)] if args else [HOSTILE]
    if origin is tuple:
        return tuple(_fabricate(a, name) for a in args if a is not Ellipsis)
    if origin in (dict, Mapping):
        return {_fabricate(args[0], name): _fabricate(args[1], name)} if args else {HOSTILE: HOSTILE}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: _fabricate(hints[f.name], f.name) for f in dataclasses.fields(hint) if f.init})
    raise TypeError(f"no hostile value for {hint!r} ({name})")


# Arguments whose shape a type hint does not say (dicts read by key); each still carries hostile text.
_SHAPED: dict[str, Any] = {
    "lines": [CleanupLine(id=1, request_id=1, seq=1, place="recipient", recipient=HOSTILE),
              CleanupLine(id=2, request_id=1, seq=2, place="email_stats", state="done", decided_by=HOSTILE,
                          decided_at=NOW)],
    "counted": {"email_stats": 3, HOSTILE: None},
    "notes": [{"id": HOSTILE, "type": HOSTILE, "date": HOSTILE, "contact_id": 1}],
    "mautic_url": "https://mautic.example",
    "counts": {"contacts": [{"id": 1, "found": True, "fields": 3, "dnc": 0, "segments": 1, "campaigns": 0,
                             "companies": 0, "notes": 0, "timeline": 2}], "bot_items": {HOSTILE: 1}},
    "rows": [{"id": 1, "changes": [{"field": HOSTILE, "before": HOSTILE, "after": HOSTILE, "applied": True}]}],
    "leftovers": {"1": {HOSTILE: 2, "audit_log": None}},
    "purged": {HOSTILE: 1},
    "history": [(NOW, HOSTILE, HOSTILE, "refused", HOSTILE)],
    "details": {"form_id": HOSTILE, "channel": HOSTILE, "new_status": HOSTILE, "via": HOSTILE,
                "withdrawn_text": HOSTILE, "problem": HOSTILE},
    "link": "https://bot.example/exports/abc",
    "contact_url": "https://mautic.example/s/contacts/view/1",
    "workspace_url": "https://team.slack.com/",
    "state": "stopped",
    "subcommands": [types.SimpleNamespace(usage=HOSTILE, example=HOSTILE, summary=HOSTILE, approvers_only=False,
                                                       members_only=True)],
}
# Fields of the dataclasses builders take that hold a code, not text (an enum value stored as a string).
_SHAPED_FIELDS: dict[str, Any] = {"regime": "gdpr", "verification_method": "other",
                                  "link": _SHAPED["link"], "contact_url": _SHAPED["contact_url"],
                                  "workspace_url": _SHAPED["workspace_url"], "details": _SHAPED["details"]}
# Not builders: helpers that take or return plain strings by design.
_NOT_BUILDERS = {"escape", "truncate", "when", "cut_lines", "packed_sections", "digest_queued", "forms_queued",
                 "wrong_channel_text", "message_link", "reply", "progress_reply", "summary_text"}


def _variants(hint: Any, name: str) -> Iterator[Any]:
    """The fabricated value, and for a dataclass with an enum field one value per member (each state of a
    request draws different lines and buttons)."""
    if name in _SHAPED:
        yield _SHAPED[name]
        return
    value = _fabricate(hint, name)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = typing.get_type_hints(type(value))
        for f in dataclasses.fields(value):
            if f.name in _SHAPED_FIELDS and f.init:
                value = dataclasses.replace(value, **{f.name: _SHAPED_FIELDS[f.name]})
        for f in dataclasses.fields(value):
            field_hint = hints[f.name]
            if isinstance(field_hint, type) and issubclass(field_hint, enum.Enum):
                for member in field_hint:
                    yield dataclasses.replace(value, **{f.name: member})
                return
    yield value


def _builders() -> Iterator[tuple[str, Callable[..., Any]]]:
    for module in MODULES:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_") and name not in _NOT_BUILDERS:
                yield f"{module.__name__.rsplit('.', 2)[-2]}.{name}", function


def _calls(function: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    hints = typing.get_type_hints(function)
    params = [p for p in inspect.signature(function).parameters.values()
              if p.default is inspect.Parameter.empty or p.name in _SHAPED or hints.get(p.name) is str]
    base = {p.name: next(_variants(hints[p.name], p.name)) for p in params}
    yield base
    for p in params:
        for variant in list(_variants(hints[p.name], p.name))[1:]:
            yield {**base, p.name: variant}


def _parsed_texts(message: Any, *, parsed: bool = True) -> Iterator[str]:
    """Every text Slack reads as markup: mrkdwn text objects, and the ``text`` of a message."""
    if isinstance(message, list) and all(isinstance(line, str) for line in message):
        yield from message  # lines a builder hands to another for a context or section
        return
    if isinstance(message, str):
        if parsed:
            yield message
        return
    if isinstance(message, dict):
        is_mrkdwn = message.get("type") == "mrkdwn"
        for key, value in message.items():
            if key == "text" and isinstance(value, str):
                if is_mrkdwn or "blocks" in message or message.get("type") is None:
                    yield value
            elif key in ("private_metadata", "value", "action_id", "block_id", "callback_id", "url"):
                continue
            else:
                yield from _parsed_texts(value, parsed=False)
    elif isinstance(message, list | tuple):
        for item in message:
            yield from _parsed_texts(item, parsed=False)


BUILDERS = sorted(_builders())


def test_the_walk_finds_the_builders() -> None:
    names = {name for name, _ in BUILDERS}
    assert {"intake.alert_message", "requests.request_message", "digests.compliance_digest", "home.home_view",
            "slack.help_message", "requests.requests_list", "intake.consent_history_message"} <= names


@pytest.mark.parametrize(("name", "builder"), BUILDERS, ids=[name for name, _ in BUILDERS])
def test_no_hostile_markup_survives(name: str, builder: Callable[..., Any]) -> None:
    texts = 0
    for kwargs in _calls(builder):
        message = builder(**kwargs)
        for text in _parsed_texts(message):
            texts += 1
            for survivor in _SURVIVORS:
                assert survivor not in text, f"{name} lets {survivor!r} through: {text[:300]!r}"
            assert not _BARE_AMPERSAND.search(text), f"{name} lets a bare & through: {text[:300]!r}"
    assert texts, f"{name} produced no text to check"


def test_escape_is_the_one_helper() -> None:
    assert home_blocks.escape is kit.escape
    assert kit.escape("<!channel> & <x|y>") == "&lt;!channel&gt; &amp; &lt;x|y&gt;"
