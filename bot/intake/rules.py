"""Consent rules: does a form submission carry consent? (pure: settings and a policy file in, verdicts out)

By default a submission needs one truthy field among ``CONSENT_FIELDS``. An optional YAML policy
(``PRIVACY_POLICY_FILE``) sets rules per form, by id or alias::

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

Mapping form is accepted too: ``forms: {4: {...}, newsletter: {...}}`` (int keys are ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# What Mautic checkboxes, booleans and yes/no fields actually send (mautic.md §1.3): "1"/1, "yes"
# (the boolean field's label, any case), "on", "true".
TRUTHY = frozenset({"1", "yes", "on", "true", "y"})


class PolicyError(Exception):
    """The policy file is unreadable or malformed; the message names the file and the problem."""


def is_truthy(value: Any, extra: Iterable[str] = ()) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        return text in TRUTHY or text in {e.strip().lower() for e in extra}
    if isinstance(value, list | tuple):
        # A checkbox group with at least one box ticked.
        return any(v.strip() if isinstance(v, str) else v not in (None, False, 0) for v in value)
    return False


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
class ConsentVerdict:
    """What a submission showed: the fields looked at, the values found, what was missing."""

    exempt: bool
    given: bool
    fields: tuple[str, ...]
    values: dict[str, Any]
    missing: tuple[str, ...]
    rule: str  # "any of a, b" / "all of a, b" / "exempt"

    @property
    def gap(self) -> bool:
        return not self.exempt and not self.given

    def describe_missing(self) -> str:
        if not self.missing:
            return "nothing"
        names = ", ".join(f"`{m}`" for m in self.missing)
        if self.rule.startswith("any of"):
            return f"no truthy consent field (expected one of {names})"
        return f"consent field(s) {names} not ticked"


def evaluate(policy: ConsentPolicy, form_id: int | None, form_alias: str | None,
             results: Mapping[str, Any]) -> ConsentVerdict:
    rule = policy.rule_for(form_id, form_alias)
    lowered = {str(k).lower(): v for k, v in results.items()}
    values = {name: lowered[name.lower()] for name in rule.fields if name.lower() in lowered}
    if rule.exempt:
        return ConsentVerdict(True, False, rule.fields, values, (), "exempt")
    truthy = {name for name, value in values.items() if is_truthy(value, policy.truthy_values)}
    if rule.required:
        missing = tuple(name for name in rule.required if name not in truthy)
        return ConsentVerdict(False, not missing, rule.fields, values, missing, "all of " + ", ".join(rule.required))
    given = bool(truthy)
    return ConsentVerdict(False, given, rule.fields, values, () if given else rule.any_of,
                          "any of " + ", ".join(rule.any_of))


def default_policy(consent_fields: Iterable[str]) -> ConsentPolicy:
    return ConsentPolicy(default_fields=tuple(consent_fields))


def load_policy(path: Path | None, consent_fields: Iterable[str]) -> ConsentPolicy:
    """The default rule from settings, refined by the policy file when one is set."""
    if path is None:
        return default_policy(consent_fields)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"PRIVACY_POLICY_FILE {path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"PRIVACY_POLICY_FILE {path}: not valid YAML ({exc})") from None
    try:
        return parse_policy(data or {}, consent_fields)
    except PolicyError as exc:
        raise PolicyError(f"PRIVACY_POLICY_FILE {path}: {exc}") from None


_TOP_KEYS = {"consent_fields", "truthy_values", "store_source_ip", "forms"}
_FORM_KEYS = {"id", "alias", "required", "any_of", "exempt"}


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{where} must be a list of form field aliases")
    return tuple(v.strip() for v in value)


def parse_policy(data: Any, consent_fields: Iterable[str]) -> ConsentPolicy:
    if not isinstance(data, dict):
        raise PolicyError("the top level must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"unknown key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
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
            raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(_FORM_KEYS)}")
        if "id" not in entry and "alias" not in entry:
            raise PolicyError(f"{where} needs an id or an alias")
        if "required" in entry and "any_of" in entry:
            raise PolicyError(f"{where}: use either required or any_of, not both")
        exempt = entry.get("exempt", False)
        if not isinstance(exempt, bool):
            raise PolicyError(f"{where}.exempt must be true or false")
        required = _names(entry["required"], f"{where}.required") if "required" in entry else ()
        any_of = _names(entry["any_of"], f"{where}.any_of") if "any_of" in entry else (() if required else default)
        rule = FormRule(any_of=any_of if not required else (), required=required, exempt=exempt)
        if "id" in entry:
            ident = entry["id"]
            if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).isdigit():
                raise PolicyError(f"{where}.id must be a form id (a number)")
            by_id[int(entry["id"])] = rule
        if "alias" in entry:
            by_alias[str(entry["alias"]).lower()] = rule
    return ConsentPolicy(default_fields=default, by_id=by_id, by_alias=by_alias, truthy_values=truthy,
                         store_source_ip=store_ip)
