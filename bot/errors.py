"""User-facing errors. The one Bolt error handler turns these into an ephemeral answer."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is safe and useful to show to the Slack user who caused it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadCommand(UserFacingError):
    """The command was mistyped; the message shows the right form."""


class NotPermitted(UserFacingError):
    """The user may not do this (not an approver, four-eyes rule, wrong channel)."""


class Conflict(UserFacingError):
    """The thing was already decided or is in a state that does not allow this."""
