"""One typed model for what the bot reads back from Slack: a button's value, a modal's
``private_metadata``, and who clicked where. Parsed here, once; listeners receive typed values.

Values are opaque ids only (a request, alert, purge or digest number), never personal data: Slack keeps
message payloads, and anyone in the channel can read a button's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def ref_value(ref_id: int) -> str:
    """The value to put on a button or in ``private_metadata`` for the thing numbered ``ref_id``."""
    return str(int(ref_id))


def parse_ref(value: Any) -> int | None:
    """The id a value carries, or None when it is not one of ours (stale, edited or forged)."""
    text = str(value or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
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
        action = (body.get("actions") or [{}])[0] or {}
        container = body.get("container") or {}
        return cls(
            user_id=str((body.get("user") or {}).get("id") or ""),
            action_id=str(action.get("action_id") or ""),
            ref=parse_ref(action.get("value")),
            channel_id=str((body.get("channel") or {}).get("id") or container.get("channel_id") or ""),
            message_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
            trigger_id=body.get("trigger_id"),
        )


@dataclass(frozen=True)
class Submission:
    """A ``view_submission`` payload, read once: who submitted, the id in ``private_metadata``, the inputs."""

    user_id: str
    ref: int | None
    values: dict[str, dict[str, Any]]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Submission:
        view = body.get("view") or {}
        return cls(
            user_id=str((body.get("user") or {}).get("id") or ""),
            ref=parse_ref(view.get("private_metadata")),
            values=((view.get("state") or {}).get("values") or {}),
        )

    def text(self, block_id: str, action_id: str) -> str:
        """A plain-text input's value, stripped ("" when absent)."""
        return str(((self.values.get(block_id) or {}).get(action_id) or {}).get("value") or "").strip()

    def choices(self, block_id: str, action_id: str) -> list[str]:
        """The values of a checkboxes input's ticked options."""
        selected = ((self.values.get(block_id) or {}).get(action_id) or {}).get("selected_options") or []
        return [str(option.get("value") or "") for option in selected]

    def day(self, block_id: str, action_id: str) -> str:
        """A datepicker's ``selected_date`` (YYYY-MM-DD), "" when none."""
        return str(((self.values.get(block_id) or {}).get(action_id) or {}).get("selected_date") or "")

    def choice(self, block_id: str, action_id: str) -> str:
        """The value of a radio-buttons or static-select input's selected option ("" when none)."""
        selected = ((self.values.get(block_id) or {}).get(action_id) or {}).get("selected_option") or {}
        return str(selected.get("value") or "")
