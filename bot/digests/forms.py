"""Mautic form audit: does a form that collects an email ask for consent the way GDPR requires?

GDPR Recital 32: "Silence, pre-ticked boxes or inactivity should not … constitute consent." So the
consent box of a form is checked rather than assumed. A form is flagged when it collects an email and

* has no consent field at all (``missing``; a form the policy exempts is not judged),
* its consent box is pre-ticked / pre-filled by default (``prechecked``), or
* its consent box is required on a form whose policy ``purpose:`` is not ``marketing`` (``conditional``):
  the visitor cannot get what the form offers (a download, a reply) without agreeing to marketing, and
  consent made a condition of a service it is not needed for is not freely given (Art. 7(4), Recital 43).

An optional consent box is no defect: it is what freely given consent looks like. A submission without
the tick is simply not consent, which the intake already judges submission by submission.

A consent field is a form field whose alias, or the contact field it maps to (``leadField`` in the API,
``mappedField`` in Mautic 5.1+), is one of the configured consent field aliases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_NOT_SET = {"", "0", "no", "false", "off", "n"}
_CHOICE_TYPES = {"checkboxgrp", "radiogrp", "select", "boolean", "yesno", "checkbox"}


MARKETING = "marketing"


class Problem(StrEnum):
    MISSING = "missing"
    PRECHECKED = "prechecked"
    CONDITIONAL = "conditional"


PROBLEM_TEXT = {
    Problem.MISSING: "collects an email but has no consent field",
    Problem.PRECHECKED: "consent box is pre-checked by default (Recital 32: not consent)",
    Problem.CONDITIONAL: "consent box is required on a form whose purpose is not marketing "
                         "(Art. 7(4): consent made a condition is not freely given)",
}


@dataclass(frozen=True)
class FormPolicy:
    """What the policy file says about one form, as the audit needs it."""

    consent_fields: Sequence[str] = ()
    exempt: bool = False
    purpose: str | None = None  # the form's purpose (`purpose:`); None when the policy names none


@dataclass(frozen=True)
class FormFinding:
    form_id: int
    name: str
    problems: tuple[Problem, ...]
    consent_field: str | None = None

    def describe(self) -> str:
        return "; ".join(PROBLEM_TEXT[p] for p in self.problems)


def _mapped(field: Mapping[str, Any]) -> str | None:
    for key in ("leadField", "mappedField"):
        value = field.get(key)
        if isinstance(value, str) and value:
            return value.lower()
    return None


def collects_email(fields: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        str(f.get("type")).lower() == "email" or _mapped(f) == "email" or str(f.get("alias")).lower() == "email"
        for f in fields
    )


def is_consent_field(field: Mapping[str, Any], aliases: Iterable[str]) -> bool:
    wanted = {a.lower() for a in aliases}
    return str(field.get("alias", "")).lower() in wanted or (_mapped(field) or "") in wanted


def _truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, list | tuple):
        return any(_truthy(v) for v in value)
    if isinstance(value, int | float):
        return value != 0
    return str(value).strip().lower() not in _NOT_SET


def _option_values(properties: Any) -> list[str]:
    """The values of a choice field's options (`properties.optionlist` or `properties.list`, either
    `{"list": [...]}` or the list itself; entries `{"label", "value"}` or bare values)."""
    if not isinstance(properties, Mapping):
        return []
    values: list[str] = []
    for container in (properties.get("optionlist"), properties.get("list")):
        options = container.get("list") if isinstance(container, Mapping) else container
        if isinstance(options, Mapping):  # keyed value → label
            values.extend(str(k) for k in options)
            continue
        for option in options if isinstance(options, list) else []:
            value = option.get("value", option.get("label")) if isinstance(option, Mapping) else option
            if value is not None:
                values.append(str(value))
    return values


def is_prechecked(field: Mapping[str, Any]) -> bool:
    """Checked or filled in before the visitor does anything.

    Mautic's options carry no default flag: an option is rendered `checked` when the field's default value
    equals its value (FormBundle/Resources/views/Field/group.html.twig), whatever that value is, and a
    checkbox group with any default also renders a hidden input carrying it (Field/checkboxgrp.html.twig).
    A hidden field that fills the consent field counts too: the visitor never even sees the box.
    """
    default = field.get("defaultValue")
    if _truthy(default):
        return True
    text = "" if default is None else str(default)
    return text != "" and text in _option_values(field.get("properties"))


def form_fields(form: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A form's fields, as a list whether Mautic keyed them by id or not."""
    fields = form.get("fields") or []
    values = fields.values() if isinstance(fields, Mapping) else fields
    return [f for f in values if isinstance(f, Mapping)] if isinstance(values, Iterable) else []


def consent_fields_of(form: Mapping[str, Any], consent_aliases: Iterable[str]) -> list[Mapping[str, Any]]:
    aliases = list(consent_aliases)
    return [f for f in form_fields(form) if is_consent_field(f, aliases)]


def audit_form(form: Mapping[str, Any], consent_aliases: Iterable[str], *,
               purpose: str | None = None) -> FormFinding | None:
    """The form's problems, or None when it is fine or does not collect an email."""
    fields = form_fields(form)
    if not collects_email(fields):
        return None
    aliases = list(consent_aliases)
    consent = [f for f in fields if is_consent_field(f, aliases)]
    form_id = int(form.get("id") or 0)
    name = str(form.get("name") or f"form {form_id}")
    if not consent:
        return FormFinding(form_id, name, (Problem.MISSING,))
    problems: list[Problem] = []
    if any(is_prechecked(f) for f in consent):
        problems.append(Problem.PRECHECKED)
    if purpose and purpose.strip().lower() != MARKETING and any(_required(f) for f in consent):
        problems.append(Problem.CONDITIONAL)
    if not problems:
        return None
    return FormFinding(form_id, name, tuple(problems), str(consent[0].get("alias") or ""))


def _required(field: Mapping[str, Any]) -> bool:
    value = field.get("isRequired")
    return value is True or str(value).strip().lower() in {"1", "true"}


@dataclass(frozen=True)
class FormAudit:
    forms_checked: int
    collecting_email: int
    findings: list[FormFinding]
    invalidated: int = 0  # consent records collected under the pre-ticked boxes found, marked invalid

    @property
    def ok(self) -> bool:
        return not self.findings


FormRule = Callable[[int | None, str | None], FormPolicy]
"""The policy's rule for a form (id, alias) → its consent field aliases, exemption and purpose."""


def audit_forms(
    forms: Iterable[Mapping[str, Any]], consent_aliases: Iterable[str], *, rule_for: FormRule | None = None
) -> FormAudit:
    """Audit every form; with the consent policy's ``rule_for``, a form uses its own consent fields and an
    exempt form (a support form, say) is counted but not judged."""
    aliases = list(consent_aliases)
    checked = 0
    with_email = 0
    findings: list[FormFinding] = []
    for form in forms:
        checked += 1
        if collects_email(form_fields(form)):
            with_email += 1
        form_aliases = aliases
        purpose: str | None = None
        if rule_for is not None:
            raw_id = form.get("id")
            rule = rule_for(int(raw_id) if raw_id is not None else None, form.get("alias"))
            if rule.exempt:
                continue
            form_aliases = list(rule.consent_fields) or aliases
            purpose = rule.purpose
        finding = audit_form(form, form_aliases, purpose=purpose)
        if finding is not None:
            findings.append(finding)
    findings.sort(key=lambda f: (Problem.MISSING not in f.problems, Problem.PRECHECKED not in f.problems, f.name))
    return FormAudit(checked, with_email, findings)


def consent_aliases(configured: Iterable[str]) -> list[str]:
    return [a.strip().lower() for a in configured if a.strip()]
