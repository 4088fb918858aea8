"""Who may do what: Slack users listed by ID, or members of the user groups listed (``S…``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


@dataclass
class SlackAudience:
    """A set of users given as user IDs and user-group IDs; groups resolve through
    ``usergroups.users.list``, read afresh on every check: someone removed from an approvers' group must not
    decide anything afterwards, not even within a cache window (issue 9). Listed user IDs cost no call."""

    ids: list[str]
    slack: AsyncWebClient
    # Group members already read during one pass over many users (see Permissions.one_pass), else None.
    read: dict[str, frozenset[str]] | None = None

    @property
    def is_empty(self) -> bool:
        return not self.ids

    async def includes(self, user_id: str) -> bool:
        if user_id in self.ids:
            return True
        for group in (i for i in self.ids if i.startswith("S")):
            if user_id in await self._members(group):
                return True
        return False

    async def _members(self, group: str) -> frozenset[str]:
        if self.read is not None and group in self.read:
            return self.read[group]
        try:
            response = await self.slack.usergroups_users_list(usergroup=group)
            members = frozenset(response.get("users") or [])
        except SlackApiError as exc:
            # A group we cannot read grants nobody; say so in the log without failing the click.
            log.warning("cannot resolve user group %s: %s", group, exc.response.get("error"))
            members = frozenset()
        if self.read is not None:
            self.read[group] = members
        return members


@dataclass
class Permissions:
    approvers: SlackAudience
    requesters: SlackAudience

    def one_pass(self) -> Permissions:
        """The same rules for one pass over many users (a Home tab refresh publishes every viewer's view):
        each group is read once for the whole pass, not once per user, which kept ``usergroups.users.list``
        (Slack's Tier 2, about 20 calls a minute) from being spent on refreshes while approvers click. It lives
        as long as the pass; decisions always use the rules that read afresh."""
        read: dict[str, frozenset[str]] = {}
        return Permissions(SlackAudience(self.approvers.ids, self.approvers.slack, read),
                           SlackAudience(self.requesters.ids, self.requesters.slack, read))

    async def is_approver(self, user_id: str) -> bool:
        return await self.approvers.includes(user_id)

    async def may_file(self, user_id: str) -> bool:
        """Empty PRIVACY_REQUESTERS means anyone in the privacy channel; approvers may always file. The same
        people may list requests and forms (``/privacy requests``, ``status``, ``forms``)."""
        if self.requesters.is_empty:
            return True
        return await self.requesters.includes(user_id) or await self.approvers.includes(user_id)
