"""Names the intake feature shares between its parts: job kinds, decisions, and the Slack ids that the
Block Kit builders put on alerts and the dismiss modal and the listeners match on.

The Slack strings keep their original ``consent_`` spelling on purpose: alerts already posted carry
them, and a click on an old message must still reach its listener.
"""

from __future__ import annotations

from enum import StrEnum


class IntakeJob(StrEnum):
    """Durable job kinds (stored in the job queue, so renaming one strands queued jobs)."""

    PROCESS = "intake.process"  # split deliveries into inbox rows, apply pending rows
    POST_ALERT = "intake.post_alert"
    REFRESH_ALERT = "intake.refresh_alert"  # show a burst's folded count on its lead message
    APPLY_DECISION = "intake.apply_decision"  # carry a decided alert out in Mautic, then tell the thread
    SWEEP = "intake.sweep"  # give rows whose process job failed for good another job


class Decision(StrEnum):
    """What an approver decided about an alert (stored in ``consent_alerts.decision``)."""

    DNC = "dnc"
    RECONSENT = "reconsent"
    DISMISS = "dismiss"


class AlertAction(StrEnum):
    """``action_id`` of the alert buttons; each button's value is the alert id."""

    DNC = "consent_dnc"
    RECONSENT = "consent_reconsent"
    DISMISS = "consent_dismiss"


DECISION_OF: dict[AlertAction, Decision] = {
    AlertAction.DNC: Decision.DNC,
    AlertAction.RECONSENT: Decision.RECONSENT,
    AlertAction.DISMISS: Decision.DISMISS,
}


class DismissModal(StrEnum):
    """The dismiss modal: its ``callback_id`` and the reason input's block and action ids."""

    CALLBACK = "consent_dismiss_modal"
    REASON_BLOCK = "reason"
    REASON_INPUT = "reason_input"


def alert_actions_block(alert_id: int) -> str:
    """``block_id`` of an alert's button row."""
    return f"consent_alert_{alert_id}"
