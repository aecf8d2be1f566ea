"""An HR reconstructed from Kaplan–Meier curves (method ``km_curves``), entered on the trial
page's form and through the JSON API: stored as typed, every bad input named on its field with
nothing saved, described (escaped) on the trial page and pre-filled in a correction."""

from __future__ import annotations

import html
import math
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from test_derivation_inputs import KM_TEXTS, _edit_form
from test_web import as_role, db
from test_web_api import _token
from test_web_evidence import _estimates, _post_estimate, _trial

from reports import derive
from screening.web.extraction import KM_TEXT_MAX
from store.models import Estimate

app = test_web.app
users = test_web.users

DESCRIPTION = ("reconstructed from KM curves: 8/8 curve points, at-risk table at 4 times; "
               "150/140 patients; 82 control events")


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def test_form_saves_a_km_estimate_with_its_texts_as_typed(app: Any,
                                                          users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    page = curator.get(f"/trials/{trial_id}").text
    assert ('<option value="km_curves">no HR: reconstructed from the Kaplan–Meier curves and '
            "numbers at risk (Guyot 2012)</option>") in page
    assert 'name="curve_maintenance"' in page and 'name="at_risk_control"' in page
    # a browser sends a textarea's lines with CRLF; the curator typed lines
    response = _post_estimate(curator, trial_id, method="km_curves", events_control="82",
                              orientation="control_vs_maint",
                              **{k: _crlf(v) + "\r\n" for k, v in KM_TEXTS.items()})
    assert response.status_code == 303, response.text
    (estimate,) = _estimates(app)
    assert (estimate.method, estimate.approximate) == ("km_curves", True)
    assert estimate.derivation_inputs == {"orientation": "control_vs_maint", **KM_TEXTS,
                                          "events_control": 82}
    again = derive.derive_from_inputs("km_curves", estimate.derivation_inputs)
    assert (again.log_hr, again.se) == (estimate.log_hr, estimate.se)
    assert estimate.hr < 1  # per arm: maintenance vs control whatever the orientation said
    assert estimate.notes is not None
    assert "maintenance: 8 curve points, survival read as percentages" in estimate.notes
    assert "control: 8 curve points, survival read as proportions" in estimate.notes
    page = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    assert f'<p class="derivation-inputs">{DESCRIPTION}</p>' in page
    assert 'from the Kaplan–Meier curves <span class="badge warn">approximate</span>' in page


def test_correction_form_gives_the_texts_back(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, method="km_curves", events_control="82",
                          **KM_TEXTS).status_code == 303
    (estimate,) = _estimates(app)
    edit, fields = _edit_form(curator, estimate.id)
    assert {k: fields[k] for k in KM_TEXTS} == KM_TEXTS
    assert fields["events_control"] == "82" and fields["events_maintenance"] == ""
    assert '<option value="km_curves" selected>' in edit and DESCRIPTION in edit


def test_api_saves_a_km_estimate(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    headers = _token(app, users["curator"])
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "method": "km_curves", **KM_TEXTS,
        "events_control": 82})
    assert response.status_code == 201, response.text
    body = response.json()
    expected = {"orientation": "maint_vs_control", **KM_TEXTS, "events_control": 82}
    assert body["derivation_inputs"] == expected
    assert (body["method"], body["approximate"], body["warnings"]) == ("km_curves", True, [])
    (estimate,) = _estimates(app)
    assert estimate.derivation_inputs == expected
    assert body["log_hr"] == pytest.approx(estimate.log_hr, abs=0, rel=0)
    # what the API returns can be sent back as a correction with one input edited
    body["derivation_inputs"]["events_control"] = 84
    corrected = api.post(f"/api/estimates/{estimate.id}/correct", headers=headers, json=body)
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["derivation_inputs"] == {**expected, "events_control": 84}


CURVE, TABLE = "curve_control", "at_risk_maintenance"
BAD = [
    # (field, what is typed there, the message shown on that field)
    (CURVE, "", "is required: the digitised 'time, survival' lines"),
    (TABLE, "  \n ", "is required: the 'time, number at risk' lines, from time 0"),
    (CURVE, "0;1", "1 point(s) given; at least 2 are needed"),
    (CURVE, "0;1\n6;1.3", "line 2: survival 1.3 is outside 0–1"),
    (CURVE, "0;1\n6;0.8\n9;0.9", "line 3: survival rises to 0.9 from 0.8 before it"),
    (CURVE, "0;1\n6;0.8\n3;0.7", "line 3: time 3 comes before 6 of the point above it"),
    (CURVE, "0;1\n6;0,8", "line 2 ('6;0,8') is not two numbers (use a decimal point"),
    (TABLE, "0, 150\n12, 121\n24, 130", "line 3: 130 at risk at 24 is more than 121 at 12"),
    (TABLE, "6, 150", "the first row is at time 6, not 0"),
    # the first value in percent, the rest proportions: read as percentages, HR 0.22 for 1.7
    (CURVE, "0;100\n3;0.93\n6;0.85\n12;0.71\n24;0.50\n36;0.39\n42;0.33\n48;0.31",
     "line 1 gives survival 100 (a percentage) but every later line at most 1 (proportions): "
     "read as percentages the curve falls to 0.93% by time 3 (line 2); read as proportions "
     "its first value 100 is above 1"),
    # a table the curve cannot fit (its drop to 0.71 by 12 leaves about 99 of 140, not 139)
    ("at_risk_control", "0\t140\n12\t139\n24\t66\n36\t35",
     "in the reconstruction, 139 in the table: the curve's drop over 0–12 is far from "
     "fitting the table (more than 25% off, or nobody left)"),
    ("events_control", "141", "141 events is more than the arm's 140 patients"),
    ("events_control", "8.5", "must be a whole number"),
    # the curve and table hold 78 control events by 36 months, the table's last time
    ("events_control", "40", "40 events reported, but the curve and the at-risk table already "
     "give 78 events before time 36 (the table's last time)"),
    (CURVE, "0;1\n" * (KM_TEXT_MAX // 4 + 1), f"is longer than {KM_TEXT_MAX} characters"),
]


@pytest.mark.parametrize(("field", "typed", "message"), BAD)
def test_each_bad_km_input_is_named_on_the_form(app: Any, users: dict[str, str], field: str,
                                                typed: str, message: str) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    fields = {**KM_TEXTS, "events_control": "82", field: typed}
    response = _post_estimate(curator, trial_id, method="km_curves", **fields)
    assert response.status_code == 400
    assert _estimates(app) == []
    page = response.text
    tag = page[page.index(f'id="{field}" name="{field}"'):][:200]
    assert 'aria-invalid="true"' in tag  # the error is on that field, not elsewhere
    assert page.count('aria-invalid="true"') == 1
    assert message in html.unescape(page)


def test_an_arms_events_above_the_arm_size_typed_are_refused(
        app: Any, users: dict[str, str]) -> None:
    """The at-risk table's first row bounds an arm's events; so do the arm sizes typed in
    Patients, maintenance/control, which the events were not checked against."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    fields = {**KM_TEXTS, "events_maintenance": "120", "n_maintenance": "100",
              "n_control": "140"}
    response = _post_estimate(curator, trial_id, method="km_curves", **fields)
    assert response.status_code == 400
    assert _estimates(app) == []
    page = html.unescape(response.text)
    assert ("Events, maintenance arm 120 events is more than the 100 patients of the "
            "maintenance arm") in page
    assert response.text.count('aria-invalid="true"') == 1
    # the API too, and for the medians method (its SE is 1/E_maint + 1/E_control)
    api = TestClient(app, raise_server_exceptions=False)
    refused = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "method": "medians", "median_maintenance": 40,
        "median_control": 30, "events_maintenance": 900, "events_control": 50,
        "n_maintenance": 100, "n_control": 100})
    assert refused.status_code == 400
    assert refused.json()["error"] == ("events_maintenance: 900 events is more than the 100 "
                                       "patients of the maintenance arm")
    assert _estimates(app) == []


def test_a_total_that_is_not_the_sum_of_the_arms_events_is_refused(
        app: Any, users: dict[str, str]) -> None:
    """Medians with events 100 in all but 300 + 300 by arm took the SE from 600 events and
    stored 100; a KM estimate kept the same contradiction. Refused on the total, naming the
    arms' fields; a total that adds up is accepted."""
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    medians = {"trial_id": trial_id, "endpoint": "PFS", "method": "medians",
               "median_maintenance": "40", "median_control": "20",
               "events_maintenance": "300", "events_control": "300"}
    refused = api.post("/api/estimates", headers=_token(app, users["curator"]),
                       json={**medians, "events": "100"})
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "events: 100 is not the sum of the arms' events (events_maintenance 300 + "
        "events_control 300 = 600): check the three, or leave the total blank")
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, method="km_curves", **KM_TEXTS,
                              events_maintenance="70", events_control="82", events="150")
    assert response.status_code == 400
    assert ("Events (both arms) 150 is not the sum of the arms' events (events_maintenance "
            "70 + events_control 82 = 152)") in html.unescape(response.text)
    assert _estimates(app) == []
    stored = api.post("/api/estimates", headers=_token(app, users["curator"]),
                      json={**medians, "events": "600"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["se"] == pytest.approx(math.sqrt(1 / 300 + 1 / 300))


def test_a_bad_line_is_kept_and_shown_escaped(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, method="km_curves",
                              **{**KM_TEXTS, CURVE: "0;1\n6;<b>0.8</b>"})
    assert response.status_code == 400 and _estimates(app) == []
    page = response.text
    assert "0;1\n6;&lt;b&gt;0.8&lt;/b&gt;</textarea>" in page  # what was typed, escaped
    assert ("KM curve, control (time, survival) line 2 (&#39;6;&lt;b&gt;0.8&lt;/b&gt;&#39;) "
            "is not two numbers") in page
    assert "<b>0.8" not in page


@pytest.mark.parametrize(("field", "typed", "message"), BAD[:-1])
def test_each_bad_km_input_is_named_by_the_api(app: Any, users: dict[str, str], field: str,
                                               typed: str, message: str) -> None:
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "method": "km_curves", **KM_TEXTS,
        "events_control": "82", field: typed})
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}: ")
    assert message in response.json()["error"]
    assert _estimates(app) == []


def test_mistakes_in_both_arms_are_named_at_once(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "method": "km_curves", **KM_TEXTS,
        "curve_maintenance": "0,1\n6,1.5", "at_risk_control": "0\t140\n12\t150"})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "curve_maintenance: line 2: survival 1.5 is outside 0–1; at_risk_control: line 2: 150 "
        "at risk at 12 is more than 140 at 0 (numbers at risk never increase: check the row "
        "and its arm)")
    assert _estimates(app) == []


def test_api_refuses_a_curve_that_is_not_text(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "method": "km_curves", **KM_TEXTS,
        "curve_maintenance": [[0, 1], [6, 0.8]]})
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "curve_maintenance: must be text: one pair of numbers per line")
    assert _estimates(app) == []


def test_km_description_and_correction_form_escape_the_stored_texts(
        app: Any, users: dict[str, str]) -> None:
    """The form checks every line, but a row may come from elsewhere (an import, a later
    version): whatever the stored inputs hold is escaped on the page and in the textarea."""
    trial_id = _trial(app)
    evil = "</textarea><script>alert(1)</script>"
    with db(app) as session:
        row = Estimate(trial_id=trial_id, endpoint="PFS", setting="post_asct", hr=0.6,
                       log_hr=math.log(0.6), se=0.2, method="km_curves", approximate=True,
                       derivation_inputs={**KM_TEXTS, "orientation": "maint_vs_control",
                                          "at_risk_control": "0, <img src=x>\n12, 95",
                                          "curve_control": evil, "events_control": "<b>9</b>"})
        session.add(row)
        session.commit()
        row_id = row.id
    page = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    assert ("reconstructed from KM curves: 8/0 curve points, at-risk table at 4/2 times; "
            "150/&lt;img src=x&gt; patients; &lt;b&gt;9&lt;/b&gt; control events") in page
    assert "<img src=x>" not in page and "<b>9</b>" not in page
    assert 'from the Kaplan–Meier curves <span class="badge warn">approximate</span>' in page
    edit, fields = _edit_form(as_role(app, users, "curator"), row_id)
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in edit
    assert "<script>alert(1)" not in edit
    assert fields["curve_control"] == evil
