"""What the request modals submit, read into the inputs of a decision (pure: a Submission in, keyword
arguments for :func:`bot.requests.service.decide` out, or :class:`InvalidInput` naming the input to flag)."""

from __future__ import annotations

from typing import Any

from bot.errors import BadCommand
from bot.requests.blocks import REASON_MAX
from bot.requests.commands import parse_identity, parse_notice
from bot.requests.ids import IdentityInput, NoticeInput, ReasonInput
from bot.slack.buttons import Submission


class InvalidInput(Exception):
    """A modal input that cannot be accepted; ``block`` is where Slack shows ``message``."""

    def __init__(self, block: str, message: str) -> None:
        super().__init__(message)
        self.block, self.message = block, message


def reason(submitted: Submission) -> dict[str, Any]:
    reason = submitted.text(ReasonInput.BLOCK, ReasonInput.ACTION)
    if len(reason) < 3:
        raise InvalidInput(ReasonInput.BLOCK, "A reason is required (at least a few words).")
    return {"reason": reason[:REASON_MAX]}


def reason_and_notice(submitted: Submission) -> dict[str, Any]:
    """The Extend modal: a reason, and when the requester was told (Art. 12(3) asks for the notice)."""
    inputs = reason(submitted)
    try:
        inputs["notified_on"] = parse_notice(
            confirmed=NoticeInput.TOLD in submitted.choices(NoticeInput.CONFIRM_BLOCK, NoticeInput.CONFIRM_ACTION),
            told_on=submitted.day(NoticeInput.DATE_BLOCK, NoticeInput.DATE_ACTION))
    except BadCommand as exc:
        raise InvalidInput(NoticeInput.CONFIRM_BLOCK, exc.message) from None
    return inputs


def identity(submitted: Submission) -> dict[str, Any]:
    try:
        return {"identity": parse_identity(submitted.choice(IdentityInput.METHOD_BLOCK, IdentityInput.METHOD_ACTION),
                                           submitted.text(IdentityInput.NOTE_BLOCK, IdentityInput.NOTE_ACTION))}
    except BadCommand as exc:
        raise InvalidInput(IdentityInput.NOTE_BLOCK, exc.message) from None
