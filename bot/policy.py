"""The policy file (``PRIVACY_POLICY_FILE``, YAML): read once, in one place, for every feature.

It holds the consent rules per form (the intake feature and the form audit judge submissions and forms
by them) and the ``access_summary`` texts that go into an access package's ``summary.html``::

    consent_fields: [consent, gdpr_consent]   # replaces CONSENT_FIELDS (optional)
    truthy_values: ["I agree"]                # extra values that count as consent (optional)
    store_source_ip: false                    # keep the submitter's IP in the consent record
    forms:
      - id: 4                                 # or: alias: newsletter
        required: [consent, terms]            # every one of these must be truthy
      - alias: newsletter-de
        any_of: [einwilligung]                # at least one of these must be truthy
      - alias: contact-support
        exempt: true                          # no consent needed (e.g. answering a support request)
    access_summary:                           # Art. 15(1) texts; what is left out keeps the default
      controller: Acme GmbH
      purposes: [Sending the newsletter you asked for]

Mapping form is accepted too: ``forms: {4: {...}, newsletter: {...}}`` (int keys are ids). Pure but for
:func:`load_policy`, which reads the file; an unreadable or malformed file is a :class:`PolicyError`
naming the file and the problem, so start-up stops with one line instead of running on guessed rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from bot.values import MAX_ID as MAX_FORM_ID


class PolicyError(Exception):
    """The policy file is unreadable or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class FormRule:
    """How one form's submissions are judged."""

    any_of: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    exempt: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required or self.any_of


@dataclass(frozen=True)
class ConsentPolicy:
    default_fields: tuple[str, ...]
    by_id: Mapping[int, FormRule] = field(default_factory=dict)
    by_alias: Mapping[str, FormRule] = field(default_factory=dict)
    truthy_values: tuple[str, ...] = ()
    store_source_ip: bool = False

    def rule_for(self, form_id: int | None, form_alias: str | None) -> FormRule:
        if form_id is not None and form_id in self.by_id:
            return self.by_id[form_id]
        if form_alias and form_alias.lower() in self.by_alias:
            return self.by_alias[form_alias.lower()]
        return FormRule(any_of=self.default_fields)


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


@dataclass(frozen=True)
class PolicyFile:
    """Everything the policy file says, parsed: the consent rules and the access-summary texts."""

    consent: ConsentPolicy
    access: AccessPolicy


def load_policy(path: Path | None, consent_fields: Iterable[str], *, controller: str | None = None,
                contact: str | None = None) -> PolicyFile:
    """Defaults from settings, refined by the policy file when one is set (settings' controller and
    contact override the file's)."""
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise PolicyError(f"PRIVACY_POLICY_FILE {path}: cannot read ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise PolicyError(f"PRIVACY_POLICY_FILE {path}: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"PRIVACY_POLICY_FILE {path}: not valid YAML ({exc})") from None
        except (ValueError, RecursionError) as exc:  # a value YAML cannot build, say the date 2020-13-45
            raise PolicyError(f"PRIVACY_POLICY_FILE {path}: not valid YAML ({type(exc).__name__}: {exc})") from None
    try:
        return PolicyFile(consent=parse_policy(data, consent_fields),
                          access=parse_access_summary(data, controller=controller, contact=contact))
    except PolicyError as exc:
        raise PolicyError(f"PRIVACY_POLICY_FILE {path}: {exc}") from None


def default_policy(consent_fields: Iterable[str]) -> ConsentPolicy:
    return ConsentPolicy(default_fields=tuple(consent_fields))


_TOP_KEYS = {"consent_fields", "truthy_values", "store_source_ip", "forms", "access_summary"}
_FORM_KEYS = {"id", "alias", "required", "any_of", "exempt"}


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{where} must be a list of form field aliases")
    return tuple(v.strip() for v in value)


def parse_policy(data: Any, consent_fields: Iterable[str]) -> ConsentPolicy:
    """The consent rules of a parsed policy document."""
    if not isinstance(data, dict):
        raise PolicyError("the top level must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"unknown key(s) {sorted(map(str, unknown))}; expected {sorted(_TOP_KEYS)}")
    default = _names(data["consent_fields"], "consent_fields") if "consent_fields" in data else tuple(consent_fields)
    truthy = _names(data.get("truthy_values", []), "truthy_values")
    store_ip = data.get("store_source_ip", False)
    if not isinstance(store_ip, bool):
        raise PolicyError("store_source_ip must be true or false")
    forms = data.get("forms") or []
    if isinstance(forms, dict):
        entries = []
        for key, rule in forms.items():
            if not isinstance(rule, dict):
                raise PolicyError(f"forms.{key} must be a mapping")
            ident = {"id": key} if isinstance(key, int) else {"alias": str(key)}
            entries.append({**ident, **rule})
        forms = entries
    if not isinstance(forms, list):
        raise PolicyError("forms must be a list of rules")
    by_id: dict[int, FormRule] = {}
    by_alias: dict[str, FormRule] = {}
    for n, entry in enumerate(forms):
        where = f"forms[{n}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be a mapping")
        unknown = set(entry) - _FORM_KEYS
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; expected {sorted(_FORM_KEYS)}")
        if "id" not in entry and "alias" not in entry:
            raise PolicyError(f"{where} needs an id or an alias")
        if "required" in entry and "any_of" in entry:
            raise PolicyError(f"{where}: use either required or any_of, not both")
        exempt = entry.get("exempt", False)
        if not isinstance(exempt, bool):
            raise PolicyError(f"{where}.exempt must be true or false")
        required = _names(entry["required"], f"{where}.required") if "required" in entry else ()
        any_of = _names(entry["any_of"], f"{where}.any_of") if "any_of" in entry else (() if required else default)
        rule = FormRule(any_of=any_of, required=required, exempt=exempt)
        if "id" in entry:
            ident = entry["id"]
            # true/false are refused too: they read as words, not digits.
            text = str(ident)
            if not isinstance(ident, int | str) or not (text.isascii() and text.isdigit()) or int(text) > MAX_FORM_ID:
                raise PolicyError(f"{where}.id must be a form id (a number)")
            by_id[int(entry["id"])] = rule
        if "alias" in entry:
            by_alias[str(entry["alias"]).lower()] = rule
    return ConsentPolicy(default_fields=default, by_id=by_id, by_alias=by_alias, truthy_values=truthy,
                         store_source_ip=store_ip)


_LIST_FIELDS = {"purposes", "categories", "recipients"}


def parse_access_summary(data: Any, *, controller: str | None = None, contact: str | None = None) -> AccessPolicy:
    """Defaults, overridden by the ``access_summary`` section, overridden by settings."""
    values: dict[str, Any] = {}
    section = data.get("access_summary") if isinstance(data, dict) else None
    if section is not None and not isinstance(section, dict):
        raise PolicyError("access_summary must be a mapping")
    known = {f.name for f in fields(AccessPolicy)}
    for key, value in (section or {}).items():
        if key not in known:
            raise PolicyError(f"access_summary: unknown key {key!r}; expected {sorted(known)}")
        if value in (None, "", []):
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
