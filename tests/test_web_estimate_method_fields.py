"""The trial page's extraction form shows every method's fields at once (no script hides
them): a field of another method than the one chosen that is filled in is refused beside the
field, with what was typed kept, rather than saved without a word and thrown away."""

from __future__ import annotations

import html
import math
from statistics import NormalDist
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
    ("p_value", "abc", "Two-sided P",
     "'from the P value and events' or 'reported HR with its P value (SE from P)'"),
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
               "choose the method that uses it ('from the P value and events' or 'reported HR "
               "with its P value (SE from P)')")
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


def test_an_hr_printed_with_its_p_value_is_kept_and_a_distant_typed_hr_warns(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """A paper that prints HR 0.80 with P = 0.01 and no CI: the P-value-and-events method
    stored 0.70 without a word (the typed HR gave only the direction); it now warns, and the
    HR-with-its-P method keeps 0.80 with SE = |ln 0.80| / z (Tierney 2007)."""
    _trial(app)
    derived = _post(api, app, users, method="p_value_events", p_value="0.01", events=210,
                    hr="0.80")
    assert derived.status_code == 201, derived.text
    assert round(derived.json()["hr"], 3) == 0.701  # the stored number is unchanged
    (warning,) = derived.json()["warnings"]
    assert "0.701" in warning and "0.80" in warning
    assert "'reported HR with its P value (SE from P)'" in warning
    kept = _post(api, app, users, method="hr_p_value", p_value="0.01", hr="0.80",
                 data_cut_label="the HR as printed")
    assert kept.status_code == 201, kept.text
    body = kept.json()
    z = NormalDist().inv_cdf(1 - 0.01 / 2)
    assert (body["method"], body["hr"], body["approximate"]) == ("hr_p_value", 0.8, True)
    assert body["se"] == pytest.approx(abs(math.log(0.8)) / z, rel=1e-12)
    assert body["derivation_inputs"] == {"orientation": "maint_vs_control", "hr": 0.8,
                                         "p_value": "0.01", "as_entered": {"hr": "0.80"}}
    assert body["warnings"] == []


@pytest.mark.parametrize(("body", "error"), [
    ({"hr": "1.00", "p_value": "0.03"},
     "hr: is 1: with its P value it gives no standard error (|ln HR| = 0); choose the method "
     "'HR from a two-sided P value and the number of events' and give the events"),
    ({"hr": "0.7", "p_value": "1"},
     "p_value: a P value of 1 gives no standard error from the HR (z = 0) (choose the method "
     "'HR from a two-sided P value and the number of events')"),
    ({"hr": "0.7", "p_value": "0.03", "favours": "maintenance"},
     "favours: is given but the method is 'reported HR with its P value (SE from P)': clear "
     "it, or choose the method that uses it ('from the P value and events')"),
])
def test_an_hr_with_its_p_value_that_gives_no_se_is_refused(
        app: Any, api: TestClient, users: dict[str, str], body: dict[str, str],
        error: str) -> None:
    _trial(app)
    _refused(_post(api, app, users, method="hr_p_value", **body), error)
    assert _estimates(app) == []


def test_an_hr_of_1_beside_the_arm_chosen_is_kept(app: Any, users: dict[str, str]) -> None:
    """An HR of 1 takes no side, so it agrees with either arm: it was dropped without a word
    (the comment said a typed HR is never dropped)."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, method="p_value_events", p_value="0.6",
                          events="200", favours="control", hr="1").status_code == 303
    (estimate,) = _estimates(app)
    assert estimate.derivation_inputs == {"orientation": "maint_vs_control", "hr": 1.0,
                                          "favours": "control", "p_value": "0.6",
                                          "events": 200}
    assert estimate.hr > 1  # the arm chosen, not the HR, gave the direction
