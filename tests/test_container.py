"""Dockerfile and compose.yaml, checked statically: no container registry is reachable from the machines the
tests run on, so nothing here builds or starts a container (see the README's Deploy section)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def dockerfile() -> list[dict[str, Any]]:
    return list(DockerfileParser(str(ROOT / "Dockerfile")).structure)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _final_stage(dockerfile: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = [i for i, step in enumerate(dockerfile) if step["instruction"] == "FROM"]
    return dockerfile[starts[-1]:]


def _exec_form(value: str) -> list[str]:
    return list(json.loads(value)) if value.startswith("[") else ["sh", "-c", value]


def test_dockerfile_is_multi_stage_and_copies_only_the_build(dockerfile: list[dict[str, Any]]) -> None:
    stages = [step["value"].split() for step in dockerfile if step["instruction"] == "FROM"]
    assert len(stages) >= 2 and all(len(s) == 3 and s[1].upper() == "AS" for s in stages)
    final = _final_stage(dockerfile)
    assert any(s["instruction"] == "COPY" and s["value"].startswith(f"--from={stages[0][2]} ") for s in final)
    assert not any(s["instruction"] == "RUN" and "pip install" in s["value"] for s in final)


def test_dockerfile_installs_the_hash_checked_lock_as_make_does(dockerfile: list[dict[str, Any]]) -> None:
    runs = [shlex.split(s["value"].replace("\\\n", " ")) for s in dockerfile if s["instruction"] == "RUN"]
    installs = [cmd[cmd.index("install") + 1:] for run in runs for cmd in _commands(run) if "pip" in cmd[0]
                and "install" in cmd]
    assert ["--require-hashes", "-r", "requirements.lock"] in installs
    (project,) = [args for args in installs if "." in args]
    assert "--no-deps" in project  # nothing resolved beyond the lock
    assert all("--upgrade" not in args for args in installs)  # no unpinned download either
    with_lock = [s["instruction"] for s in dockerfile
                 if "requirements.lock" in s["value"] and s["instruction"] != "COMMENT"]
    assert with_lock[:2] == ["COPY", "RUN"]  # copied in before the install that reads it


def _commands(argv: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for word in argv:
        if word == "&&":
            out.append([])
        else:
            out[-1].append(word)
    return [cmd for cmd in out if cmd]


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[dict[str, Any]]) -> None:
    final = _final_stage(dockerfile)
    users = [s["value"].split(":")[0] for s in final if s["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0")
    last_user = max(i for i, s in enumerate(final) if s["instruction"] == "USER")
    assert all(s["instruction"] != "RUN" for s in final[last_user:])  # nothing runs as root after it


def test_dockerfile_checks_health_and_migrates_before_serving(dockerfile: list[dict[str, Any]]) -> None:
    final = _final_stage(dockerfile)
    (health,) = [s["value"] for s in final if s["instruction"] == "HEALTHCHECK"]
    assert "/healthz" in health and "--interval=" in health
    (cmd,) = [s["value"] for s in final if s["instruction"] == "CMD"]
    argv = _exec_form(cmd)
    assert argv[:2] == ["sh", "-c"]
    steps = [shlex.split(part) for part in argv[2].split("&&")]
    assert steps[0] == ["python", "-m", "bot", "migrate"]  # and only on its success:
    assert steps[1] == ["exec", "python", "-m", "bot", "serve"]  # exec: serve gets SIGTERM directly
    assert "EXPOSE" in [s["instruction"] for s in final]


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(compose)] == []
    broken = {**compose, "services": {**compose["services"], "bot": {**compose["services"]["bot"], "depends": 1}}}
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown service key"


def test_compose_runs_the_bot_on_a_healthy_postgres_with_named_volumes(compose: dict[str, Any]) -> None:
    bot, db = compose["services"]["bot"], compose["services"]["db"]
    assert bot["build"] == "." and bot["env_file"] == ".env"
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert db["image"].startswith("postgres:")
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in bot["environment"][
        "DATABASE_URL"]
    named = set(compose["volumes"])
    mounts = [v.split(":")[0] for service in (bot, db) for v in service["volumes"]]
    assert set(mounts) == named == {"pgdata", "exports", "spool"}
    assert bot["environment"]["EXPORT_DIR"] in [v.split(":")[1] for v in bot["volumes"]]


def test_vendored_schema_notes_its_source() -> None:
    readme = (ROOT / "tests" / "schemas" / "README.md").read_text(encoding="utf-8")
    assert "compose-spec/compose-spec" in readme and "schema/compose-spec.json" in readme
    assert "Apache License 2.0" in readme
