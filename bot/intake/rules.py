"""Consent rules: does a form submission carry consent? (pure: a policy and the submitted values in,
a verdict out). The rules themselves come from settings and the policy file (:mod:`bot.policy`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.policy import ConsentPolicy

# What Mautic checkboxes, booleans and yes/no fields actually send (mautic.md §1.3): "1"/1, "yes"
# (the boolean field's label, any case), "on", "true".
TRUTHY = frozenset({"1", "yes", "on", "true", "y"})


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


def breaches_objection(verdict: ConsentVerdict, *, objected_at: datetime | None, submitted_at: datetime,
                       consented_since: bool) -> bool:
    """A form submission from someone who objected to direct marketing (GDPR Art. 21(2)-(3)) and has not
    consented again: their data may no longer be used for marketing, yet Mautic's form actions may put them
    back into segments and campaigns. Flagged unless the submission itself carries valid consent, or a
    consent record newer than the objection exists; an exempt form (no consent asked) is flagged too. A
    submission made before the objection (a late delivery) is not."""
    if objected_at is None or submitted_at <= objected_at:
        return False
    return not verdict.given and not consented_since
