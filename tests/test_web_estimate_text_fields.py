"""POST /api/estimates and its correction refuse an estimate's text field that is not text
(400 naming the field, nothing stored): ``true``, ``[]``, ``{}`` or a number were stored as
the words "True", "[]", "{}" or "1e+308". Null is a blank field, as documented."""

from __future__ import annotations

from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from test_web_api import _token
from test_web_estimate_bounds import _post, _refused
from test_web_evidence import _estimates, _trial

app = test_web.app
users = test_web.users


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("comparison", True, "true"), ("comparison", [], "[]"), ("comparison", {}, "{}"),
    ("comparison", 1e308, "1e+308"), ("data_cut_label", True, "true"),
    ("data_cut_label", ["91 months"], '["91 months"]'), ("notes", 5, "5"),
    ("citation", {"a": 1}, '{"a": 1}'), ("data_cut", 20240101, "20240101"),
    ("endpoint", True, "true"), ("method", 1, "1"), ("orientation", False, "false"),
])
def test_the_api_refuses_a_text_field_that_is_not_text(
        app: Any, api: TestClient, users: dict[str, str], field: str, value: Any,
        shown: str) -> None:
    """Turned into text, ``true`` was stored as the comparison "True" and ``[]`` as "[]"."""
    _trial(app)
    body = {"hr": 0.5, "ci_low": 0.4, "ci_high": 0.625, field: value}
    _refused(_post(api, app, users, **body), f"{field}: must be a string, not {shown}")
    assert _estimates(app) == []


def test_a_derivation_text_that_is_not_text_is_refused_but_a_p_value_may_be_a_number(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    _trial(app)
    p_method = {"method": "p_value_events", "events": 100}
    _refused(_post(api, app, users, **p_method, p_value=True, favours="maintenance"),
             "p_value: must be a string, not true")
    _refused(_post(api, app, users, **p_method, p_value="0.03", favours=["maintenance"]),
             'favours: must be a string, not ["maintenance"]')
    assert _estimates(app) == []
    assert _post(api, app, users, **p_method, p_value=0.03,
                 favours="maintenance").status_code == 201


def test_null_is_a_blank_field_as_documented(app: Any, api: TestClient,
                                             users: dict[str, str]) -> None:
    """An estimate's JSON carries null for a field it has not (no label, no data cut), and a
    correction takes a null as the client's blank (docs/curation.md): a blank comparison is
    the trial's comparison, as on the form."""
    _trial(app)
    response = _post(api, app, users, hr=0.5, ci_low=0.4, ci_high=0.625, comparison=None,
                     data_cut_label=None, notes=None, data_cut=None)
    assert response.status_code == 201, response.text
    (estimate,) = _estimates(app)
    assert estimate.comparison == "maintenance vs control" and estimate.data_cut_label is None


def test_a_correction_refuses_what_is_not_text_and_keeps_the_estimate(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    _trial(app)
    first = _post(api, app, users, hr=0.5, ci_low=0.4, ci_high=0.625)
    assert first.status_code == 201
    estimate_id = first.json()["id"]
    headers = _token(app, users["curator"])
    for body, error in (({"comparison": True}, "comparison: must be a string, not true"),
                        ({"data_cut_label": {}}, "data_cut_label: must be a string, not {}")):
        response = api.post(f"/api/estimates/{estimate_id}/correct", headers=headers,
                            json={"hr": 0.5, "ci_low": 0.4, "ci_high": 0.7, **body})
        _refused(response, error)
    (estimate,) = _estimates(app)
    assert estimate.id == estimate_id and estimate.withdrawn_at is None


def test_a_trial_name_that_is_not_text_is_refused(app: Any, api: TestClient,
                                                 users: dict[str, str]) -> None:
    _trial(app)
    response = api.post("/api/estimates", headers=_token(app, users["curator"]),
                        json={"trial": True, "endpoint": "PFS", "hr": 0.5, "ci_low": 0.4,
                              "ci_high": 0.625})
    assert response.status_code == 400
    assert response.json()["error"] == ("trial must be a string (the trial's name), not true "
                                        "(or give trial_id)")
    assert _estimates(app) == []
