"""One typed model for what the bot reads back from Slack: a button's value, a modal's
``private_metadata``, and who clicked where. Parsed here, once; listeners receive typed values.

Values are opaque ids only (a request, alert, purge or digest number), never personal data: Slack keeps
message payloads, and anyone in the channel can read a button's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.values import MAX_ID


def ref_value(ref_id: int) -> str:
    """The value to put on a button or in ``private_metadata`` for the thing numbered ``ref_id``."""
    return str(int(ref_id))


def parse_ref(value: Any) -> int | None:
    """The id a value carries, or None when it is not one of ours (stale, edited or forged)."""
    text = str(value or "").strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) > MAX_ID:
        return None  # an id past the integer columns is none of ours, and would fail the query
    return int(text)


@dataclass(frozen=True)
class Click:
    """A ``block_actions`` payload, read once: who clicked what, where."""

    user_id: str
    action_id: str
    ref: int | None  # the id the button's value carries (None if it carries none we understand)
    channel_id: str
    message_ts: str | None
    trigger_id: str | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Click:
        actions = body.get("actions")
        action = _dict(actions[0] if isinstance(actions, list) and actions else None)
        container = _dict(body.get("container"))
        message_ts = container.get("message_ts") or _dict(body.get("message")).get("ts")
        trigger_id = body.get("trigger_id")
        return cls(
            user_id=str(_dict(body.get("user")).get("id") or ""),
            action_id=str(action.get("action_id") or ""),
            ref=parse_ref(action.get("value")),
            channel_id=str(_dict(body.get("channel")).get("id") or container.get("channel_id") or ""),
            message_ts=str(message_ts) if message_ts else None,
            trigger_id=str(trigger_id) if trigger_id else None,
        )


def _dict(value: Any) -> dict[str, Any]:
    """A payload part as a mapping; anything else (Slack never sends it, a forger might) reads as empty."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Submission:
    """A ``view_submission`` payload, read once: who submitted, the id in ``private_metadata``, the inputs."""

    user_id: str
    ref: int | None
    values: dict[str, dict[str, Any]]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Submission:
        view = _dict(body.get("view"))
        return cls(
            user_id=str(_dict(body.get("user")).get("id") or ""),
            ref=parse_ref(view.get("private_metadata")),
            values=_dict(_dict(view.get("state")).get("values")),
        )

    def _input(self, block_id: str, action_id: str) -> dict[str, Any]:
        return _dict(_dict(self.values.get(block_id)).get(action_id))

    def text(self, block_id: str, action_id: str) -> str:
        """A plain-text input's value, stripped ("" when absent)."""
        return str(self._input(block_id, action_id).get("value") or "").strip()

    def choices(self, block_id: str, action_id: str) -> list[str]:
        """The values of a checkboxes input's ticked options."""
        selected = self._input(block_id, action_id).get("selected_options")
        return [str(_dict(option).get("value") or "") for option in (selected if isinstance(selected, list) else [])]

    def day(self, block_id: str, action_id: str) -> str:
        """A datepicker's ``selected_date`` (YYYY-MM-DD), "" when none."""
        return str(self._input(block_id, action_id).get("selected_date") or "")

    def choice(self, block_id: str, action_id: str) -> str:
        """The value of a radio-buttons or static-select input's selected option ("" when none)."""
        return str(_dict(self._input(block_id, action_id).get("selected_option")).get("value") or "")
