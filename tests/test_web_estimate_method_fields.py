"""The trial page's extraction form shows every method's fields at once (no script hides
them): a field of another method than the one chosen that is filled in is refused beside the
field, with what was typed kept, rather than saved without a word and thrown away."""

from __future__ import annotations

import html
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from test_web import as_role
from test_web_api import _token
from test_web_estimate_bounds import _field_error, _post, _refused, _typed
from test_web_evidence import _estimates, _post_estimate, _trial

app = test_web.app
users = test_web.users


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("field", "value", "label", "used_by"), [
    ("p_value", "abc", "Two-sided P", "'from the P value and events'"),
    ("variance", "NaN", "V (variance of O − E)", "'from O−E and V'"),
    ("o_minus_e", "inf", "O − E", "'from O−E and V'"),
    ("median_control", "-1", "Median, control (months)", "'from median times (approximate)'"),
    ("events_control", "12", "Events, control arm",
     "'from median times (approximate)' or 'from the Kaplan–Meier curves'"),
    ("favours", "abc", "Arm that did better (P method)", "'from the P value and events'"),
    ("curve_control", "0, 1\n12, 0.5", "KM curve, control (time, survival)",
     "'from the Kaplan–Meier curves'"),
])
def test_a_field_of_another_method_is_refused_not_dropped(
        app: Any, users: dict[str, str], field: str, value: str, label: str,
        used_by: str) -> None:
    """Every method's fields are on the form at once: a value in one the chosen method does
    not read was saved without a word and thrown away, garbage included."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4", ci_high="0.625",
                              **{field: value})
    assert html.unescape(_field_error(response, field)) == (
        f"{label} is given but the method is 'reported HR and 95% CI': clear it, or choose "
        f"the method that uses it ({used_by})")
    if field != "favours":  # (a choice the select does not offer cannot be shown chosen)
        assert _typed(response, field) == value
    assert _estimates(app) == []


def test_a_blank_field_of_another_method_is_no_input_and_hr_can_give_a_p_values_direction(
        app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    blanks = {name: "" for name in ("p_value", "favours", "o_minus_e", "variance",
                                    "median_control", "curve_control")}
    assert _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4", ci_high="0.625",
                          **blanks).status_code == 303
    assert _post_estimate(curator, trial_id, method="p_value_events", hr="0.7",
                          p_value="0.01", events="200").status_code == 303
    assert [e.method for e in _estimates(app)] == ["reported_ci", "p_value_events"]


def test_the_api_and_a_correction_refuse_another_methods_field(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    _trial(app)
    refused = ("p_value: is given but the method is 'reported HR and 95% CI': clear it, or "
               "choose the method that uses it ('from the P value and events')")
    _refused(_post(api, app, users, hr=0.5, ci_low=0.4, ci_high=0.625, p_value="abc"), refused)
    first = _post(api, app, users, hr=0.5, ci_low=0.4, ci_high=0.625)
    assert first.status_code == 201
    estimate_id = first.json()["id"]
    response = api.post(f"/api/estimates/{estimate_id}/correct",
                        headers=_token(app, users["curator"]),
                        json={"hr": 0.5, "ci_low": 0.4, "ci_high": 0.7, "p_value": "abc"})
    _refused(response, refused)
    (estimate,) = _estimates(app)
    assert estimate.id == estimate_id and estimate.withdrawn_at is None


def test_a_derived_estimates_json_sent_back_whole_is_not_refused_for_its_hr(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """An O−E estimate's JSON carries its derived HR and CI at the top level: they are its
    results, not inputs of the reported-CI method, so sending it back still corrects it."""
    _trial(app)
    first = _post(api, app, users, method="o_minus_e", o_minus_e=-10, variance=40)
    assert first.status_code == 201, first.text
    old = first.json()
    assert old["hr"] is not None and old["derivation_inputs"]["variance"] == 40
    sent = {**old, "derivation_inputs": {**old["derivation_inputs"], "variance": 50}}
    response = api.post(f"/api/estimates/{old['id']}/correct",
                        headers=_token(app, users["curator"]), json=sent)
    assert response.status_code == 201, response.text
    assert response.json()["se"] == pytest.approx(50 ** -0.5)
