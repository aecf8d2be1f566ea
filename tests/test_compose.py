"""docker-compose.yml is validated against the compose specification (no Docker engine here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT, need


@pytest.fixture
def compose_schema() -> dict:
    path = Path(os.environ.get("MMLR_TEST_COMPOSE_SCHEMA", ROOT / ".venv/share/compose_spec.json"))
    need(
        path.is_file(),
        f"compose specification schema not found at {path} (scripts/test fetches it)",
    )
    return json.loads(path.read_text())


def _validate(document: dict, schema: dict) -> None:
    # The schema names draft 2019-09 with a trailing '#', which jsonschema does not look up.
    jsonschema.Draft201909Validator(schema).validate(document)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_specification(compose_schema: dict) -> None:
    _validate(_compose(), compose_schema)


def test_compose_schema_check_rejects_a_broken_file(compose_schema: dict) -> None:
    broken = _compose()
    broken["services"]["postgres"]["healthcheck"]["retries"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken, compose_schema)


def test_compose_stack_has_the_services_operators_expect() -> None:
    services = _compose()["services"]
    assert {"postgres", "web", "worker", "mailcatcher"} <= set(services)
    assert "healthcheck" in services["postgres"]
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["MMLR_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["MMLR_ENV"] == "production"
        # secrets come from the environment, never written into the file
        assert "${MMLR_SECRET_KEY" in env["MMLR_SECRET_KEY"]


def test_compose_keeps_the_data_dir_in_a_volume() -> None:
    # The log that "details in mmlr.log" points to, and the exports, must outlive a recreated
    # container: MMLR_DATA_DIR (/data in the image) is a named volume for every mmlr service.
    compose = _compose()
    for name in ("init", "web", "worker"):
        assert "mmlrdata:/data" in compose["services"][name]["volumes"], name
    assert "mmlrdata" in compose["volumes"]
    assert "MMLR_DATA_DIR=/data" in (ROOT / "Dockerfile").read_text()


def test_compose_publishes_plain_http_on_loopback_only() -> None:
    # The web app speaks plain HTTP and its login form posts a password; mailpit's UI shows
    # every digest with its unsubscribe links. Neither may listen on the host's network
    # interfaces (docs/operations.md: plain http:// only on a loopback address).
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_a_stopped_worker_has_time_to_end_its_batch() -> None:
    """SIGTERM lets a running poll end its efetch batch: one request (``entrez_timeout``) and
    a retry. Docker's default grace of 10 s is shorter than one request may take."""
    from store.settings import Settings

    grace = _compose()["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s") and grace[:-1].isdigit(), grace
    timeout = Settings.model_fields["entrez_timeout"].default
    assert int(grace[:-1]) >= 2 * timeout + 10
