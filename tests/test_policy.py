"""The policy file loader (pure but for reading the file): what each key does, and the one-line error
every malformed file gets, naming the file and the problem."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.policy import (
    AccessPolicy,
    ConsentPolicy,
    FormRule,
    PolicyError,
    PolicyFile,
    default_policy,
    load_policy,
    parse_access_summary,
    parse_policy,
)

SETTINGS_FIELDS = ["consent", "gdpr_consent"]
TOP_KEYS = ("['access_summary', 'consent_fields', 'forms', 'marketing_segments', 'policy_version', 'store_source_ip', "
            "'truthy_values']")
FORM_KEYS = "['alias', 'any_of', 'exempt', 'id', 'legal_basis', 'purpose', 'required']"
SUMMARY_KEYS = ("['authority', 'automated_decisions', 'categories', 'contact', 'controller', 'purposes', "
                "'recipients', 'retention', 'source', 'transfers']")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- no file, an empty file, a full file -----------------------------------------------------------------


def test_without_a_file_the_settings_fields_are_the_rule_for_every_form() -> None:
    policy = load_policy(None, SETTINGS_FIELDS)
    assert policy == PolicyFile(consent=ConsentPolicy(default_fields=("consent", "gdpr_consent")),
                                access=AccessPolicy())
    assert policy.consent.rule_for(4, "newsletter") == FormRule(any_of=("consent", "gdpr_consent"))
    assert not policy.consent.store_source_ip and policy.consent.truthy_values == ()
    assert default_policy(SETTINGS_FIELDS) == policy.consent


def test_an_empty_file_is_no_file(tmp_path: Path) -> None:
    assert load_policy(_write(tmp_path, ""), SETTINGS_FIELDS) == load_policy(None, SETTINGS_FIELDS)
    assert load_policy(_write(tmp_path, "# nothing yet\n"), SETTINGS_FIELDS) == load_policy(None, SETTINGS_FIELDS)


def test_every_key_of_a_full_file_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
consent_fields: [einwilligung, " consent "]
truthy_values: ["I agree", Ja]
store_source_ip: true
forms:
  - id: 4
    required: [consent, terms]
  - id: "12"
    alias: Newsletter-DE
    any_of: [einwilligung]
  - alias: contact-support
    exempt: true
  - alias: plain
access_summary:
  controller: Acme GmbH, Hauptstraße 1, Berlin
  purposes: [Sending the newsletter you asked for]
  categories: Email address
  retention: 3
""")
    policy = load_policy(path, SETTINGS_FIELDS)
    default = ("einwilligung", "consent")  # the file's consent_fields replace the settings' ones, trimmed
    assert policy.consent == ConsentPolicy(
        default_fields=default,
        by_id={4: FormRule(required=("consent", "terms")), 12: FormRule(any_of=("einwilligung",))},
        by_alias={"newsletter-de": FormRule(any_of=("einwilligung",)),
                  "contact-support": FormRule(any_of=default, exempt=True),
                  "plain": FormRule(any_of=default)},
        truthy_values=("I agree", "Ja"),
        store_source_ip=True,
    )
    assert policy.access == AccessPolicy(controller="Acme GmbH, Hauptstraße 1, Berlin",
                                         purposes=["Sending the newsletter you asked for"],
                                         categories=["Email address"], retention="3", configured=True)


# ---- which rule a form gets --------------------------------------------------------------------------------


@pytest.mark.parametrize(("form_id", "alias", "rule"), [
    (4, None, FormRule(required=("consent", "terms"))),  # by id
    (4, "support", FormRule(required=("consent", "terms"))),  # the id wins over the alias
    (5, "support", FormRule(any_of=("consent",), exempt=True)),  # unknown id: the alias decides
    (None, "SUPPORT", FormRule(any_of=("consent",), exempt=True)),  # aliases match in any case
    (None, "Support", FormRule(any_of=("consent",), exempt=True)),
    (5, None, FormRule(any_of=("consent",))),  # neither known: the default rule
    (None, None, FormRule(any_of=("consent",))),
    (None, "", FormRule(any_of=("consent",))),
    (None, "other", FormRule(any_of=("consent",))),
])
def test_rule_for_a_form(form_id: int | None, alias: str | None, rule: FormRule) -> None:
    policy = parse_policy({"forms": [{"id": 4, "required": ["consent", "terms"]},
                                     {"alias": "Support", "exempt": True}]}, ["consent"])
    assert policy.rule_for(form_id, alias) == rule


def test_forms_may_be_a_mapping_keyed_by_id_or_alias() -> None:
    policy = parse_policy({"forms": {4: {"required": ["terms"]}, "News": {"any_of": "a, b"}}}, ["consent"])
    assert policy.by_id == {4: FormRule(required=("terms",))}
    assert policy.by_alias == {"news": FormRule(any_of=("a", "b"))}


@pytest.mark.parametrize(("names", "parsed"), [
    ("consent", ("consent",)),
    ("consent,terms", ("consent", "terms")),  # a comma-separated string is a list
    (" consent ,  terms ", ("consent", "terms")),
    ([" consent", "terms "], ("consent", "terms")),
    ([], ()),
])
def test_field_lists_are_trimmed(names: Any, parsed: tuple[str, ...]) -> None:
    assert parse_policy({"consent_fields": names}, ["settings"]).default_fields == parsed


def test_an_empty_required_list_falls_back_to_the_default_fields() -> None:
    policy = parse_policy({"forms": [{"id": 4, "required": []}]}, ["consent"])
    assert policy.by_id[4] == FormRule(any_of=("consent",))


@pytest.mark.parametrize("ident", [4, "4", "0004"])
def test_form_ids_are_numbers_or_digit_strings(ident: object) -> None:
    assert list(parse_policy({"forms": [{"id": ident}]}, ["consent"]).by_id) == [4]


# ---- malformed files: one line that names the file and the problem -----------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("- a\n- b\n", "the top level must be a mapping"),
    ("colour: blue\n", f"unknown key(s) ['colour']; expected {TOP_KEYS}"),
    ("consent_fields: 5\n", "consent_fields must be a list of form field aliases"),
    ("consent_fields: [a, '']\n", "consent_fields must be a list of form field aliases"),
    ("consent_fields: [a, 5]\n", "consent_fields must be a list of form field aliases"),
    ("truthy_values: {a: 1}\n", "truthy_values must be a list of form field aliases"),
    ("store_source_ip: yes please\n", "store_source_ip must be true or false"),
    ("forms: 3\n", "forms must be a list of rules"),
    ("forms: {4: [consent]}\n", "forms.4 must be a mapping"),
    ("forms: [{id: 1}, 5]\n", "forms[1] must be a mapping"),
    ("forms: [{id: 1}, {id: 2, colour: blue}]\n", f"forms[1]: unknown key(s) ['colour']; expected {FORM_KEYS}"),
    ("forms: [{exempt: true}]\n", "forms[0] needs an id or an alias"),
    ("forms: [{alias: a, required: [x], any_of: [y]}]\n", "forms[0]: use either required or any_of, not both"),
    ("forms: [{alias: a, exempt: 'no'}]\n", "forms[0].exempt must be true or false"),
    ("forms: [{alias: a, required: [x, '  ']}]\n", "forms[0].required must be a list of form field aliases"),
    ("forms: [{alias: a, any_of: 7}]\n", "forms[0].any_of must be a list of form field aliases"),
    ("forms: [{id: abc}]\n", "forms[0].id must be a form id (a number)"),
    ("forms: [{id: true}]\n", "forms[0].id must be a form id (a number)"),
    ("forms: [{id: -4}]\n", "forms[0].id must be a form id (a number)"),
    ("forms: [{id: 4.0}]\n", "forms[0].id must be a form id (a number)"),
    ("forms: [{id: [4]}]\n", "forms[0].id must be a form id (a number)"),
    ("forms: [{id: 4, purpose: ['a']}]\n", "forms[0].purpose must be a text"),
    ("forms: [{id: 4, legal_basis: '  '}]\n", "forms[0].legal_basis must be a text"),
    ("policy_version: [1]\n", 'policy_version must be a text such as "2026-03"'),
    ("access_summary: [a]\n", "access_summary must be a mapping"),
    ("access_summary: {owner: me}\n", f"access_summary: unknown key 'owner'; expected {SUMMARY_KEYS}"),
])
def test_malformed_files_name_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, SETTINGS_FIELDS)
    assert str(caught.value) == f"PRIVACY_POLICY_FILE {path}: {problem}"


def test_an_id_that_only_prints_as_a_number_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy({"forms": [{"id": Decimal(4)}]}, ["consent"])
    assert str(caught.value) == "forms[0].id must be a form id (a number)"


def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    with pytest.raises(PolicyError) as caught:
        load_policy(missing, SETTINGS_FIELDS)
    assert str(caught.value) == f"PRIVACY_POLICY_FILE {missing}: cannot read (No such file or directory)"


def test_a_file_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "forms: [\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, SETTINGS_FIELDS)
    assert str(caught.value).startswith(f"PRIVACY_POLICY_FILE {path}: not valid YAML (while parsing")


def test_the_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "access_summary: {controller: Müller GmbH}\n")
    # What Python reads a file as when no encoding is given, on a server whose locale is Latin-1.
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "latin-1")
    assert load_policy(path, SETTINGS_FIELDS).access.controller == "Müller GmbH"


# ---- the access summary ------------------------------------------------------------------------------------


def test_blank_access_summary_values_keep_the_default() -> None:
    access = parse_access_summary({"access_summary": {"controller": "", "contact": None, "purposes": [],
                                                      "authority": "the Berlin DPA"}})
    assert access == AccessPolicy(authority="the Berlin DPA", configured=True)


def test_access_summary_values_become_text() -> None:
    access = parse_access_summary({"access_summary": {"recipients": "Our mail provider", "categories": [1, "two"],
                                                      "transfers": 0}})
    assert access == AccessPolicy(recipients=["Our mail provider"], categories=["1", "two"], transfers="0",
                                  configured=True)


@pytest.mark.parametrize("data", [None, [], "text", {}, {"access_summary": None}, {"access_summary": {}}])
def test_no_access_summary_is_the_defaults(data: Any) -> None:
    assert parse_access_summary(data) == AccessPolicy()


def test_settings_controller_and_contact_override_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "access_summary: {controller: From the file, contact: file@example.com}\n")
    assert load_policy(path, SETTINGS_FIELDS).access == AccessPolicy(controller="From the file",
                                                                      contact="file@example.com", configured=True)
    both = load_policy(path, SETTINGS_FIELDS, controller="Settings GmbH", contact="dpo@example.com").access
    assert (both.controller, both.contact) == ("Settings GmbH", "dpo@example.com")
    only_contact = load_policy(path, SETTINGS_FIELDS, controller="", contact="dpo@example.com").access
    assert (only_contact.controller, only_contact.contact) == ("From the file", "dpo@example.com")
    assert load_policy(None, SETTINGS_FIELDS, controller="Settings GmbH").access == AccessPolicy(
        controller="Settings GmbH")


@pytest.mark.parametrize(("text", "version"), [
    ("policy_version: '2026-03'\n", "2026-03"),
    ("policy_version: 2026-03-01\n", "2026-03-01"),  # a YAML date, taken as written
    ("policy_version: 3\n", "3"),
    ("policy_version: ''\n", None),
    ("store_source_ip: false\n", None),
])
def test_the_policy_version_is_kept_as_text(tmp_path: Path, text: str, version: str | None) -> None:
    assert load_policy(_write(tmp_path, text), SETTINGS_FIELDS).version == version


def test_a_form_rule_names_its_purpose_and_legal_basis(tmp_path: Path) -> None:
    text = "forms:\n  - id: 7\n    purpose: ' support '\n    legal_basis: contract\n"
    rule = load_policy(_write(tmp_path, text), SETTINGS_FIELDS).consent.rule_for(7, None)
    assert (rule.purpose, rule.legal_basis) == ("support", "contract")
    assert load_policy(None, SETTINGS_FIELDS).consent.rule_for(7, None).purpose is None
