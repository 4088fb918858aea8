"""The policy file (``PRIVACY_POLICY_FILE``, YAML): read once, in one place, for every feature.

It holds the consent rules per form (the intake feature and the form audit judge submissions and forms
by them) and the ``access_summary`` texts that go into an access package's ``summary.html``::

    policy_version: "2026-03"                 # stored with every consent record (what notice was in force)
    consent_fields: [consent, gdpr_consent]   # replaces CONSENT_FIELDS (optional)
    truthy_values: ["I agree"]                # extra values that count as consent (optional)
    store_source_ip: false                    # keep the submitter's IP in the consent record
    forms:
      - id: 4                                 # or: alias: newsletter
        required: [consent, terms]            # every one of these must be truthy
        purpose: marketing                    # what the form is for (form audit, record of processing)
        legal_basis: consent                  # Art. 6(1) basis, named in the record of processing
      - alias: newsletter-de
        any_of: [einwilligung]                # at least one of these must be truthy
      - alias: contact-support
        exempt: true                          # no consent needed (e.g. answering a support request)
    access_summary:                           # Art. 15(1) texts; what is left out reads "not configured"
      controller: Acme GmbH
      purposes: [Sending the newsletter you asked for]
    marketing_segments: [3, newsletter]       # segment ids or aliases an Art. 21 objection removes a contact from

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
    purpose: str | None = None  # what the form is for; "marketing" lets a consent box be required
    legal_basis: str | None = None  # the Art. 6(1) basis, for the record of processing

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


NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class AccessPolicy:
    """The Art. 15(1)(a)-(h) texts of ``summary.html``. What the policy file leaves out is None, and the page
    says "not configured" there: a built-in guess ("no transfers", "deleted after 3 years") stated to a data
    subject as a fact would be a false statement about their data, and recipients must be named where they are
    known, not reduced to categories (CJEU C-154/21)."""

    controller: str = "the organisation that runs this Mautic instance"
    contact: str = "the privacy team that sent you this package"
    purposes: list[str] | None = None
    categories: list[str] | None = None
    recipients: list[str] | None = None
    retention: str | None = None
    source: str | None = None
    automated_decisions: str | None = None
    transfers: str | None = None
    authority: str = "the data-protection supervisory authority where you live or work"
    configured: bool = False  # the policy file has a non-empty ``access_summary`` section

    def missing(self) -> list[str]:
        """The ``access_summary`` keys summary.html will show as "not configured"."""
        return [name for name in _TEXT_FIELDS if getattr(self, name) is None]


_TEXT_FIELDS = ("purposes", "categories", "recipients", "retention", "source", "automated_decisions", "transfers")


@dataclass(frozen=True)
class MarketingSegments:
    """The Mautic segments used for direct marketing, by id or alias: an objection (GDPR Art. 21(3)) removes
    the subject's contacts from every one of them."""

    ids: frozenset[int] = frozenset()
    aliases: frozenset[str] = frozenset()

    def covers(self, segment_id: int | None, alias: str | None) -> bool:
        return (segment_id is not None and segment_id in self.ids) or bool(alias and alias.lower() in self.aliases)

    def __bool__(self) -> bool:
        return bool(self.ids or self.aliases)


@dataclass(frozen=True)
class PolicyFile:
    """Everything the policy file says, parsed: the consent rules, the access-summary texts and the
    marketing segments."""

    consent: ConsentPolicy
    access: AccessPolicy
    version: str | None = None  # `policy_version:`, stored with each consent record
    marketing: MarketingSegments = field(default_factory=MarketingSegments)


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
                          access=parse_access_summary(data, controller=controller, contact=contact),
                          version=parse_version(data),
                          marketing=parse_marketing_segments(data))
    except PolicyError as exc:
        raise PolicyError(f"PRIVACY_POLICY_FILE {path}: {exc}") from None


def default_policy(consent_fields: Iterable[str]) -> ConsentPolicy:
    return ConsentPolicy(default_fields=tuple(consent_fields))


_TOP_KEYS = {"policy_version", "consent_fields", "truthy_values", "store_source_ip", "forms", "access_summary",
             "marketing_segments"}
_FORM_KEYS = {"id", "alias", "required", "any_of", "exempt", "purpose", "legal_basis"}


def parse_version(data: Any) -> str | None:
    """``policy_version:`` as text (a YAML date or number is taken as written), or None."""
    value = data.get("policy_version") if isinstance(data, dict) else None
    if value is None or value == "":
        return None
    if isinstance(value, dict | list | bool):
        raise PolicyError("policy_version must be a text such as \"2026-03\"")
    return str(value).strip()[:64] or None


def _text(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where}.{key} must be a text")
    return value.strip()


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
    parse_version(data)  # a malformed version is refused wherever the document is parsed
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
        rule = FormRule(any_of=any_of, required=required, exempt=exempt, purpose=_text(entry, "purpose", where),
                        legal_basis=_text(entry, "legal_basis", where))
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
    known = {f.name for f in fields(AccessPolicy)} - {"configured"}
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
    return AccessPolicy(**values, configured=bool(section))


def parse_marketing_segments(data: Any) -> MarketingSegments:
    """``marketing_segments``: a list of segment ids (numbers) and aliases (Mautic's segment alias, any case)."""
    value = data.get("marketing_segments") if isinstance(data, dict) else None
    if value is None:
        return MarketingSegments()
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise PolicyError("marketing_segments must be a list of segment ids or aliases")
    ids: set[int] = set()
    aliases: set[str] = set()
    for n, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip():
            raise PolicyError(f"marketing_segments[{n}] must be a segment id (a number) or an alias")
        text = str(item).strip()
        if text.isdigit():
            if int(text) < 1:
                raise PolicyError(f"marketing_segments[{n}]: segment ids start at 1")
            ids.add(int(text))
        else:
            aliases.add(text.lower())
    return MarketingSegments(ids=frozenset(ids), aliases=frozenset(aliases))
