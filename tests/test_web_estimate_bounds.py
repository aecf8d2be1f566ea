"""Estimate entry refuses an HR, CI or SE no trial reports (the bounds of ``mmlr meta``,
``reports.bounds``): on the trial page's form (400, the error beside the field, the typing
kept) and in POST /api/estimates and its correction (400 naming the field), nothing stored."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from test_web import as_role
from test_web_api import _token
from test_web_evidence import _estimates, _post_estimate, _trial

from reports.bounds import HR_MAX, HR_MIN, SE_MAX, SE_MIN

app = test_web.app
users = test_web.users

FIXED = ""  # an API answer carries no page hint ("correct the marked fields" was one)


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _post(api: TestClient, app: Any, users: dict[str, str], **body: Any) -> Any:
    return api.post("/api/estimates", headers=_token(app, users["curator"]),
                    json={"trial_id": 1, "endpoint": "PFS", **body})


def _refused(response: Any, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error + FIXED
    assert response.json()["code"] == "invalid"


def _field_error(response: Any, name: str) -> str:
    """The error shown beside ``name`` on the form shown again."""
    assert response.status_code == 400, response.text
    error = lxml.html.fromstring(response.text).get_element_by_id(f"{name}-error")
    return " ".join(error.text_content().split())


def _typed(response: Any, name: str) -> str:
    (field,) = lxml.html.fromstring(response.text).xpath(
        f"//form[contains(@class, 'extraction-form')]//*[@name='{name}']")
    return str(field.get("value") if field.tag == "input" else field.text_content())


IMPLAUSIBLE = ("is implausible for a hazard ratio (outside 0.0001–10000): no trial reports "
               "one; check for a typo or a percentage")


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("ci_low", 1e-320, "1e-320"), ("ci_high", 1e308, "1e+308"), ("ci_high", 1e30, "1e+30"),
    ("ci_low", "0.00001", "0.00001"), ("hr", 20000, "20000")])
def test_the_api_refuses_an_hr_or_limit_no_trial_reports(
        app: Any, api: TestClient, users: dict[str, str], field: str, value: Any,
        shown: str) -> None:
    """mmlr meta refuses such a row; stored, 1e-320 gave an SE of 188 and 1e30 one of 18."""
    _trial(app)
    body = {"hr": 0.5, "ci_low": 0.4, "ci_high": 0.625, field: value}
    if field == "hr":
        body.update(ci_low=10000, ci_high=30000)  # the limits are checked on their own
        _refused(_post(api, app, users, **body),
                 f"hr: {shown} {IMPLAUSIBLE}; ci_high: 30000 {IMPLAUSIBLE}")
    else:
        _refused(_post(api, app, users, **body), f"{field}: {shown} {IMPLAUSIBLE}")
    assert _estimates(app) == []


def test_the_form_refuses_a_limit_no_trial_reports_and_keeps_it(
        app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for field, value in (("ci_low", "1e-320"), ("ci_high", "1e30")):
        typed = {"hr": "0.5", "ci_low": "0.4", "ci_high": "0.625", field: value}
        response = _post_estimate(curator, trial_id, **typed)
        label = "95% CI lower" if field == "ci_low" else "95% CI upper"
        assert _field_error(response, field) == f"{label} {value} {IMPLAUSIBLE}"
        assert [_typed(response, n) for n in ("hr", "ci_low", "ci_high")] == [
            typed["hr"], typed["ci_low"], typed["ci_high"]]
    assert _estimates(app) == []


def test_a_ci_too_narrow_for_any_trial_is_refused(app: Any, api: TestClient,
                                                  users: dict[str, str]) -> None:
    """Each limit is plausible, but the SE they give (2.6e-05) would take 10⁹ events."""
    _trial(app)
    _refused(_post(api, app, users, hr="1.00005", ci_low="1.0000", ci_high="1.0001"),
             "ci_low: the CI 1.0000–1.0001 gives a standard error of the log HR of 2.55e-05, "
             "implausible (outside 0.0001–10): no trial's CI is that narrow; check both limits")
    assert _estimates(app) == []


@pytest.mark.parametrize(("body", "error"), [
    ({"method": "o_minus_e", "o_minus_e": -50, "variance": 1},
     "o_minus_e: the HR derived from o_minus_e and variance is implausible: its log is -50 "
     "(outside ±9.21, an HR outside 0.0001–10000); check the numbers entered"),
    ({"method": "o_minus_e", "o_minus_e": 0, "variance": 1e-12},
     "o_minus_e: the standard error of the log HR derived from o_minus_e and variance is "
     "1e+06, implausible (outside 0.0001–10; it is about 2/√(events)); check the numbers "
     "entered"),
    ({"method": "p_value_events", "p_value": "1e-300", "events": 4, "favours": "maintenance"},
     "p_value: two-sided P value 1e-300 is smaller than 4 events can give: even with every "
     "event in the control arm the log-rank test gives P = 0.046 (check the P value and the "
     "events, those of both arms together)"),
    # what 4 events can give, with arms of 9999 and 1, is still no HR any trial reports
    ({"method": "p_value_events", "p_value": "1e-300", "events": 4, "favours": "maintenance",
      "n_maintenance": 9999, "n_control": 1},
     "p_value: the HR derived from favours, p_value, events, n_maintenance and n_control is "
     "implausible: its log is -1.85e+03 (outside ±9.21, an HR outside 0.0001–10000); check the "
     "numbers entered"),
    ({"method": "medians", "median_maintenance": "0.000000001", "median_control": 10,
      "events": 100},
     "median_maintenance: the HR derived from median_maintenance, median_control and events "
     "is implausible: its log is 23 (outside ±9.21, an HR outside 0.0001–10000); check the "
     "numbers entered"),
    # the ratio of these underflows to 0: its log was a math domain error and a 500
    ({"method": "medians", "median_maintenance": "1e300", "median_control": "1e-300",
      "events": 100},
     "median_maintenance: the HR derived from median_maintenance, median_control and events "
     "is implausible: its log is -1.38e+03 (outside ±9.21, an HR outside 0.0001–10000); check "
     "the numbers entered"),
])
def test_a_derived_hr_or_se_no_trial_reports_is_refused(
        app: Any, api: TestClient, users: dict[str, str], body: dict[str, Any],
        error: str) -> None:
    """Before this a log HR of 1e6 (O−E 1e6, V 1) was a 500: exp() of it overflows."""
    _trial(app)
    _refused(_post(api, app, users, **body), error)
    assert _estimates(app) == []


@pytest.mark.parametrize(("fields", "name", "shown"), [
    ({"method": "p_value_events", "p_value": "0", "events": "100", "favours": "maintenance"},
     "p_value", "Two-sided P value must be more than 0 and at most 1, got 0"),
    ({"method": "p_value_events", "p_value": "1e-30", "events": "4",
      "favours": "maintenance"},
     "p_value", "Two-sided P value 1e-30 is smaller than 4 events can give: even with every "
                "event in the control arm the log-rank test gives P = 0.046 (check the P "
                "value and the events, those of both arms together)"),
    ({"method": "o_minus_e", "o_minus_e": "-10", "variance": "1e-9"},
     "o_minus_e", "The HR derived from o_minus_e and variance is implausible: its log is "
                  "-1e+10 (outside ±9.21, an HR outside 0.0001–10000); check the numbers "
                  "entered"),
    ({"method": "medians", "median_maintenance": "1e-300", "median_control": "30",
      "events": "100"},
     "median_maintenance", "The HR derived from median_maintenance, median_control and events "
                           "is implausible: its log is 694 (outside ±9.21, an HR outside "
                           "0.0001–10000); check the numbers entered"),
    ({"hr": "1.00005", "ci_low": "1.0000", "ci_high": "1.0001"},
     "ci_low", "The CI 1.0000–1.0001 gives a standard error of the log HR of 2.55e-05, "
               "implausible (outside 0.0001–10): no trial's CI is that narrow; check both "
               "limits"),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.625", "report_id": "999"},
     "report_id", "Report 999 does not belong to trial TEST-1"),
])
def test_a_message_that_names_its_field_is_shown_without_the_label_before_it(
        app: Any, users: dict[str, str], fields: dict[str, str], name: str,
        shown: str) -> None:
    """The form puts a field's label before its message ("Events (both arms) must be at
    least 1"); a derivation's sentence names the field itself, and the label before it said
    it twice: "Two-sided P two-sided P value must be …", "O − E the HR derived from …"."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, **fields)
    assert response.status_code == 400
    (error,) = lxml.html.fromstring(response.text).xpath(
        '//p[contains(@class, "field-error")]')
    assert " ".join(error.text_content().split()) == shown
    assert _estimates(app) == []


def test_a_printed_p_of_1_gives_an_hr_of_1(app: Any, users: dict[str, str]) -> None:
    """P = 1.00 (z = 0) was refused; the P-value method's SE comes from the events alone."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, method="p_value_events", p_value="1.00",
                              events="100", favours="control")
    assert response.status_code == 303, response.text
    (estimate,) = _estimates(app)
    assert (estimate.log_hr, estimate.hr) == (0.0, 1.0)
    assert estimate.se == pytest.approx(0.2)  # 1/√(100/4)
    assert estimate.derivation_inputs is not None
    assert estimate.derivation_inputs["p_value"] == "1.00"


def test_a_log_hr_of_a_million_is_refused_not_a_server_error(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    _trial(app)
    response = _post(api, app, users, method="o_minus_e", o_minus_e=1e6, variance=1)
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "o_minus_e: the HR derived from o_minus_e and variance is implausible: its log is 1e+06")


def test_the_bounds_themselves_are_accepted(app: Any, api: TestClient,
                                            users: dict[str, str]) -> None:
    _trial(app)
    for body in ({"hr": HR_MIN, "ci_low": HR_MIN, "ci_high": 2 * HR_MIN},
                 {"hr": HR_MAX, "ci_low": HR_MAX / 2, "ci_high": HR_MAX},
                 {"method": "o_minus_e", "o_minus_e": 0, "variance": 1.0001 / SE_MAX ** 2},
                 {"method": "o_minus_e", "o_minus_e": 0, "variance": 1 / SE_MIN ** 2 * 0.999}):
        response = _post(api, app, users, **body)
        assert response.status_code == 201, response.text
    assert len(_estimates(app)) == 4


def test_a_correction_refuses_what_no_trial_reports_and_keeps_the_estimate(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    _trial(app)
    first = _post(api, app, users, hr=0.5, ci_low=0.4, ci_high=0.625)
    assert first.status_code == 201
    estimate_id = first.json()["id"]
    response = api.post(f"/api/estimates/{estimate_id}/correct",
                        headers=_token(app, users["curator"]),
                        json={"hr": 0.5, "ci_low": 0.4, "ci_high": 1e30})
    _refused(response, f"ci_high: 1e+30 {IMPLAUSIBLE}")
    (estimate,) = _estimates(app)
    assert estimate.id == estimate_id and estimate.withdrawn_at is None
