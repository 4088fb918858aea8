"""The ids Slack hands back to the requests feature: the request message's buttons, the reason modals
and the reason input inside them.

The Block Kit builders put these on the blocks and the listeners register on them, both from here, so
the two cannot drift apart. Each is a ``str`` enum, so it goes into a payload as its plain value.
"""

from __future__ import annotations

from enum import StrEnum


class RequestButton(StrEnum):
    """``action_id`` of each button on a request message; its value is the request id (``ref_value``)."""

    VERIFY = "request_verify"
    APPROVE = "request_approve"
    REJECT = "request_reject"
    EXTEND = "request_extend"
    RETRY = "request_retry"
    ACKNOWLEDGE = "request_acknowledge"
    RESPOND = "request_respond"
    LIFT = "request_lift"
    RELEASE = "request_release"
    # On an erasure's clean-up checklist; their value is the checklist line's id, not the request's.
    CLEANUP_DONE = "request_cleanup_done"
    CLEANUP_NOT_APPLICABLE = "request_cleanup_na"


class RequestModal(StrEnum):
    """``callback_id`` of the modals that ask for a reason; ``private_metadata`` carries the request id."""

    REJECT = "request_reject_modal"
    EXTEND = "request_extend_modal"
    VERIFY = "request_verify_modal"


class NoticeInput(StrEnum):
    """The Extend modal's proof that the requester was told: a required checkbox and the day it was sent."""

    CONFIRM_BLOCK = "notice_confirm"
    CONFIRM_ACTION = "notice_confirm_box"
    DATE_BLOCK = "notice_date"
    DATE_ACTION = "notice_date_pick"
    TOLD = "told"  # the checkbox option's value


class IdentityInput(StrEnum):
    """The identity modal's inputs: the method (radio buttons) and, for "other", what it was."""

    METHOD_BLOCK = "identity_method"
    METHOD_ACTION = "identity_method_choice"
    NOTE_BLOCK = "identity_note"
    NOTE_ACTION = "identity_note_input"


class ReasonInput(StrEnum):
    """Where a reason modal's one text input sits: its ``block_id`` and its element's ``action_id``."""

    BLOCK = "reason"
    ACTION = "reason_input"
