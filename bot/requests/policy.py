"""The Art. 15(1) information that goes into ``summary.html``: purposes, categories, recipients,
retention, source, and who to contact. Read from the ``access_summary`` section of the YAML file named
by PRIVACY_POLICY_FILE (the same file the consent feature reads its rules from); what it does not
say falls back to the defaults below, written for a typical Mautic marketing set-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessPolicy:
    controller: str = "the organisation that runs this Mautic instance"
    contact: str = "the privacy team that sent you this package"
    purposes: list[str] = field(default_factory=lambda: [
        "Sending you the newsletters and marketing emails you signed up for",
        "Measuring how our emails and web pages are used, to improve them",
        "Keeping a record of your consent and of your unsubscribe choices",
    ])
    categories: list[str] = field(default_factory=lambda: [
        "Identity and contact data (name, email address, phone, address, company) as entered in our forms",
        "Marketing preferences: segments, campaigns, Do-Not-Contact records, consent records",
        "Engagement data: emails sent, opened and clicked, pages visited, forms submitted, with dates",
        "Technical data: IP addresses and devices recorded when you used our emails or web pages",
    ])
    recipients: list[str] = field(default_factory=lambda: [
        "Our marketing-automation system (Mautic), hosted by us or our hosting provider",
        "Our email delivery provider, which sends the emails on our behalf",
    ])
    retention: str = ("We keep contact records while you are subscribed or active; inactive contacts are "
                      "deleted after 3 years (Mautic's 1095-day inactivity clean-up).")
    source: str = ("You gave us this data through our web forms and by using our emails and web pages. "
                   "Where a record came from elsewhere (for example an import), the timeline says so.")
    automated_decisions: str = ("We do not make decisions with legal or similarly significant effects about you "
                                "by automated means. Contacts may be scored (points) to tailor marketing.")
    transfers: str = "No transfers to third countries beyond those named under recipients."
    authority: str = "the data-protection supervisory authority where you live or work"


_LIST_FIELDS = {"purposes", "categories", "recipients"}


def load_policy(policy_file: Path | None, *, controller: str | None = None, contact: str | None = None) -> AccessPolicy:
    """Defaults, overridden by the policy file's ``access_summary`` section, overridden by settings."""
    values: dict[str, Any] = {}
    if policy_file is not None:
        try:
            document = yaml.safe_load(policy_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            log.warning("cannot read PRIVACY_POLICY_FILE for the access summary (%s); using defaults",
                        type(exc).__name__)
            document = {}
        section = document.get("access_summary") if isinstance(document, dict) else None
        if isinstance(section, dict):
            known = {f.name for f in fields(AccessPolicy)}
            for key, value in section.items():
                if key not in known or value in (None, "", []):
                    continue
                if key in _LIST_FIELDS:
                    values[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
                else:
                    values[key] = str(value)
    if controller:
        values["controller"] = controller
    if contact:
        values["contact"] = contact
    return AccessPolicy(**values)
