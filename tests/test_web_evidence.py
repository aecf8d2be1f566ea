"""Trials, extraction of estimates, pooled estimates, digests and user admin pages."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, func, select
from test_web import PASSWORD, as_role, csrf_from, db, login, make_user

from screening.web.auth import MIN_PASSWORD_LENGTH, issue_api_token
from store.models import (
    AuditLog,
    Delivery,
    Digest,
    Estimate,
    PooledResult,
    Trial,
    TrialReport,
    User,
    utcnow,
)

# the shared fixtures of test_web
app = test_web.app
users = test_web.users


def _trial(app: Any, **overrides: Any) -> int:
    with db(app) as session:
        trial = Trial(name=overrides.pop("name", "TEST-1"), drug="lenalidomide",
                      setting="post_asct", comparator="placebo", **overrides)
        session.add(trial)
        session.flush()
        session.add(TrialReport(trial_id=trial.id, pmid=90000002, citation="Doe J. Blood 2024",
                                year=2024))
        session.commit()
        assert trial.id is not None
        return trial.id


def _estimates(app: Any) -> list[Estimate]:
    with db(app) as session:
        return list(session.exec(select(Estimate).order_by(col(Estimate.id))))


def _post_estimate(c: TestClient, trial_id: int, **fields: str) -> Any:
    token = csrf_from(c.get(f"/trials/{trial_id}").text)
    data = {"endpoint": "PFS", "method": "reported_ci", "orientation": "maint_vs_control",
            "csrf_token": token, **fields}
    return c.post(f"/trials/{trial_id}/estimates", data=data, follow_redirects=False)


def _verify(c: TestClient, estimate: Estimate, verified: str | None = "1") -> Any:
    """Press the Verify (``"1"``) or Unverify (``"0"``) button of ``estimate``'s row; ``None``
    posts no state (the toggle of older pages)."""
    token = csrf_from(c.get(f"/trials/{estimate.trial_id}").text)
    data = {"csrf_token": token, **({} if verified is None else {"verified": verified})}
    return c.post(f"/estimates/{estimate.id}/verify", data=data, follow_redirects=False)


def second_curator(app: Any, email: str = "checker@example.org") -> TestClient:
    """Another curator, logged in: the second person who verifies what a first one entered
    (MMLR_VERIFY_SECOND_PERSON)."""
    make_user(app, email, "curator")
    c = TestClient(app, raise_server_exceptions=False)
    assert login(c, email).status_code == 303
    return c


def verified_by_second_person(app: Any) -> None:
    """Verify every unverified current estimate as a second curator."""
    checker = second_curator(app)
    for estimate in _estimates(app):
        if not estimate.verified and estimate.withdrawn_at is None:
            assert _verify(checker, estimate).status_code == 303


# ----------------------------------------------------------------------------- trials
def test_curator_creates_a_trial_and_a_report(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/trials/new").text)
    response = curator.post("/trials/new", follow_redirects=False, data={
        "name": "Myeloma XI", "drug": "Lenalidomide", "setting": "mixed",
        "comparator": "observation", "registry_ids": "ISRCTN49407852, 2009-010956-93",
        "is_strategy": "", "csrf_token": token})
    assert response.status_code == 303
    trial_url = response.headers["location"]
    page = curator.get(trial_url).text
    assert "Trial Myeloma XI created." in page and "lenalidomide" in page
    added = curator.post(f"{trial_url}/reports", follow_redirects=False, data={
        "pmid": "30559051", "citation": "Jackson GH et al. Lancet Oncol 2019", "year": "2019",
        "kind": "primary", "csrf_token": csrf_from(page)})
    assert added.status_code == 303
    with db(app) as session:
        trial = session.exec(select(Trial).where(Trial.name == "Myeloma XI")).one()
        assert trial.registry_ids == ["ISRCTN49407852", "2009-010956-93"]
        report = session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)).one()
        assert (report.pmid, report.year, report.kind) == (30559051, 2019, "primary")
    listing = as_role(app, users, "viewer").get("/trials").text
    assert "Myeloma XI" in listing and "Add a trial" not in listing


def test_a_report_year_in_the_future_is_refused(app: Any, users: dict[str, str]) -> None:
    """A report's year dates its estimates that have no data cut date, and the latest cut of a
    trial is pooled: 2031 typed for 2013 would replace the real later cuts. Next year is an
    issue date PubMed does print; the year after is refused, what was typed kept."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    page = curator.get(f"/trials/{trial_id}").text
    this_year = utcnow().year
    refused = curator.post(f"/trials/{trial_id}/reports", data={
        "year": str(this_year + 2), "citation": "Roe R. <i>Blood</i> & co", "kind": "update",
        "csrf_token": csrf_from(page)})
    assert refused.status_code == 400
    assert (f"Year {this_year + 2} is in the future: a report is published already (in an "
            f"issue dated {this_year + 1} at the latest); check the year") in refused.text
    assert 'value="Roe R. &lt;i&gt;Blood&lt;/i&gt; &amp; co"' in refused.text
    added = curator.post(f"/trials/{trial_id}/reports", follow_redirects=False, data={
        "year": str(this_year + 1), "citation": "Roe R. Blood", "kind": "update",
        "csrf_token": csrf_from(page)})
    assert added.status_code == 303
    with db(app) as session:
        years = session.exec(select(TrialReport.year).where(TrialReport.trial_id == trial_id)
                             .order_by(col(TrialReport.id))).all()
    assert years == [2024, this_year + 1]


def test_bad_trial_fields_are_named_and_kept(app: Any, users: dict[str, str]) -> None:
    _trial(app, name="Existing")
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/trials/new").text)
    response = curator.post("/trials/new", data={
        "name": "Existing", "drug": "", "setting": "orbit", "registry_ids": "NCT123",
        "notes": "keep <me>", "csrf_token": token})
    assert response.status_code == 400
    html = response.text
    assert "Name: a trial named &#39;Existing&#39; already exists" in html
    assert "Maintenance drug is required" in html
    assert "Setting must be one of post_asct, non_transplant, mixed" in html
    assert "&#39;NCT123&#39; is not a registry id" in html
    assert "keep &lt;me&gt;</textarea>" in html  # what was typed is not lost
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Trial)).one() == 1


def test_viewer_cannot_create_trials_or_extract(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    viewer = as_role(app, users, "viewer")
    assert viewer.get("/trials/new").status_code == 403
    page = viewer.get(f"/trials/{trial_id}").text
    assert "extraction-form" not in page
    response = _post_estimate(viewer, trial_id, hr="0.5", ci_low="0.4", ci_high="0.6")
    assert response.status_code == 403
    assert _estimates(app) == []


# ----------------------------------------------------------------------------- extraction
def test_estimate_in_inverse_orientation_is_converted(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, orientation="control_vs_maint", hr="2.00",
                              ci_low="1.60", ci_high="2.50", data_cut="2016-03-01",
                              data_cut_label="median follow-up 72 months",
                              n_maintenance="231", n_control="229", events="300")
    assert response.status_code == 303
    verified_by_second_person(app)
    (estimate,) = _estimates(app)
    assert estimate.hr == pytest.approx(0.5)
    assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(0.4), pytest.approx(0.625))
    assert estimate.log_hr == pytest.approx(math.log(0.5))
    assert estimate.se == pytest.approx((math.log(2.5) - math.log(1.6)) / (2 * 1.959964))
    assert estimate.orientation_entered == "control_vs_maint"
    assert estimate.method == "reported_ci" and not estimate.approximate
    assert estimate.verified and estimate.verified_by is not None
    assert str(estimate.data_cut) == "2016-03-01" and estimate.n_maintenance == 231
    page = curator.get(f"/trials/{trial_id}").text
    assert "stored inverted as maintenance vs control" in page
    row = page.split(f'id="estimate-{estimate.id}"')[1].split("</tr>")[0]
    # 1/1.60 = 0.625 exactly: rounded half-up, as clinical reports round (format() said 0.62)
    assert "0.50" in row and "0.40–0.63" in row
    assert "control vs maintenance (inverted on save)" in row
    with db(app) as session:
        audit = session.exec(select(AuditLog).where(AuditLog.action == "estimate.add")).one()
        assert audit.details["orientation"] == "control_vs_maint"


@pytest.mark.parametrize(("fields", "messages"), [
    ({"hr": "0", "ci_low": "0.4", "ci_high": "0.6"}, ["HR must be greater than 0"]),
    ({"hr": "-1", "ci_low": "-2", "ci_high": "0.6"},
     ["HR must be greater than 0", "95% CI lower must be greater than 0"]),
    ({"hr": "0.9", "ci_low": "0.4", "ci_high": "0.6"},
     ["HR 0.9 is not inside its confidence interval 0.4–0.6"]),
    ({"hr": "0.5", "ci_low": "0.6", "ci_high": "0.4"},
     ["95% CI lower 0.6 must be below the upper limit 0.4"]),
    ({"hr": "0,5", "ci_low": "0.4", "ci_high": "0.6"},
     ["&#39;0,5&#39; is not a number (use a decimal point, not a comma)"]),
    ({"hr": "nan", "ci_low": "0.4", "ci_high": "0.6"}, ["HR must be a finite number"]),
    # float() reads all three as numbers: a typing slip must not become a stored HR of 0.75
    ({"hr": "0.7_5", "ci_low": "0.4", "ci_high": "0.9"},
     ["&#39;0.7_5&#39; is not a number (write it without underscores)"]),
    ({"hr": "0.5", "ci_low": "0.\u0664", "ci_high": "0.6"},
     ["&#39;0.\u0664&#39; is not a number (write it with the digits 0-9)"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "\uff10.6"},
     ["&#39;\uff10.6&#39; is not a number (write it with the digits 0-9)"]),
    ({"method": "p_value_events", "p_value": "0.0_1", "events": "120", "favours": "maintenance"},
     ["P value must be a number, got &#39;0.0_1&#39;"]),
    ({"hr": "0.5", "ci_low": "", "ci_high": "0.6"}, ["95% CI lower is required"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "endpoint": "DFS"},
     ["Endpoint must be one of PFS, EFS, TTP, OS"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "orientation": "sideways"},
     ["Orientation of the numbers entered must be one of"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "data_cut": "31/12/2020"},
     ["&#39;31/12/2020&#39; is not a date (YYYY-MM-DD)"]),
    # an ISO week and a basic-format date, which date.fromisoformat reads since Python 3.11
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "data_cut": "2016W05"},
     ["&#39;2016W05&#39; is not a date (YYYY-MM-DD)"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "data_cut": "20160201"},
     ["&#39;20160201&#39; is not a date (YYYY-MM-DD)"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "data_cut": "0001-01-01"},
     ["Data cut date 0001-01-01 is before 1900 (check the year)"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "events": "500", "n_maintenance": "10",
      "n_control": "10"}, ["500 events is more than the 20 patients of both arms"]),
    ({"method": "p_value_events", "p_value": "0.01", "events": "100", "favours": "maintenance",
      "hr": "1.5"},
     ["HR 1.5 says the control arm did better, but Arm that did better is maintenance"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "n_control": "12.5"},
     ["Patients, control must be a whole number"]),
    ({"hr": "0.5", "ci_low": "0.4", "ci_high": "0.6", "report_id": "999"},
     ["Report 999 does not belong to trial TEST-1"]),
    ({"method": "p_value_events", "p_value": "<0.001", "events": "120", "favours": "maintenance"},
     ["P value &#39;&lt;0.001&#39; is a bound, not a value"]),
    ({"method": "p_value_events", "p_value": "0.01"},
     ["Events (both arms) is required to derive an HR from a P value",
      "is required: which arm did better"]),
    ({"method": "o_minus_e", "o_minus_e": "-10", "variance": "0"},
     ["V (variance of O − E) must be greater than 0"]),
    ({"method": "medians", "median_maintenance": "40", "median_control": "20",
      "events_maintenance": "50"}, ["Events, control arm is required when the other arm"]),
    # one arm's events above its size: only the total was checked, and 900 in 100 was saved
    ({"method": "medians", "median_maintenance": "40", "median_control": "30",
      "events_maintenance": "900", "events_control": "50", "n_maintenance": "100",
      "n_control": "100"},
     ["Events, maintenance arm 900 events is more than the 100 patients of the maintenance "
      "arm"]),
    ({"method": "medians", "median_maintenance": "40", "median_control": "30",
      "events_maintenance": "50", "events_control": "81", "n_maintenance": "100",
      "n_control": "80"},
     ["Events, control arm 81 events is more than the 80 patients of the control arm"]),
])
def test_bad_numbers_get_field_errors_and_save_nothing(app: Any, users: dict[str, str],
                                                       fields: dict[str, str],
                                                       messages: list[str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, notes="typed by hand", **fields)
    assert response.status_code == 400
    for message in messages:
        assert message in response.text, message
    assert "nothing was saved" in response.text and 'aria-invalid="true"' in response.text
    assert "typed by hand</textarea>" in response.text
    assert _estimates(app) == []


def test_the_same_extraction_entered_twice_is_refused(app: Any, users: dict[str, str]) -> None:
    """A form sent a second time (back button, double submit) stores no copy: the page names
    the estimate stored already and keeps what was typed. A new data cut, another endpoint or
    other numbers are new extractions; a withdrawn estimate is no longer there to repeat."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    typed = {"hr": "0.68", "ci_low": "0.52", "ci_high": "0.89",
             "comparison": "Lenalidomide versus placebo", "data_cut_label": "38 months",
             "report_id": str(_report_id(app, trial_id))}
    assert _post_estimate(curator, trial_id, **typed).status_code == 303
    (first,) = _estimates(app)
    again = _post_estimate(curator, trial_id, notes="typed by hand",
                           **{**typed, "comparison": "lenalidomide vs. placebo",
                              "data_cut_label": " 38  Months"})
    assert again.status_code == 400
    assert (f"HR 0.68 (0.52–0.89) is already estimate {first.id} of TEST-1, with the same "
            "report, endpoint, setting, comparison and data cut: an extraction is entered "
            f"once (to change estimate {first.id}, use its Correct button)") in again.text
    # said as what it is: "Please correct the marked fields" led to a changed number, a copy
    assert (f'This extraction is saved already, as <a href="#estimate-{first.id}">estimate '
            f"{first.id}</a>: it was not stored a second time.") in again.text
    assert "Please correct the marked fields" not in again.text
    assert "typed by hand</textarea>" in again.text
    assert len(_estimates(app)) == 1
    # a derived HR repeated is named on the method
    derived = {"method": "o_minus_e", "o_minus_e": "-12", "variance": "40", "endpoint": "OS"}
    assert _post_estimate(curator, trial_id, **derived).status_code == 303
    repeat = _post_estimate(curator, trial_id, **derived)
    assert repeat.status_code == 400
    assert "gives HR 0.74 (0.54–1.01), which is already estimate" in repeat.text
    # not repeats: a later data cut, another endpoint
    assert _post_estimate(curator, trial_id, **{**typed, "data_cut": "2024-01-31"}
                          ).status_code == 303
    assert _post_estimate(curator, trial_id, **{**typed, "endpoint": "EFS"}).status_code == 303
    # other numbers for the same report and cut are no second estimate beside the first (the
    # later entered silently replaced it in the analyses): correct the first instead
    other = _post_estimate(curator, trial_id, **{**typed, "hr": "0.69"})
    assert other.status_code == 400
    text = " ".join(other.text.split())
    assert (f'This report and data cut have an estimate already, <a href="#estimate-{first.id}">'
            f"estimate {first.id}</a>: nothing was saved. To change its number, use its Correct "
            "button") in text
    assert (f"Estimate {first.id} of TEST-1 already gives PFS (post-ASCT, Lenalidomide versus "
            f"placebo) for the same report and data cut (report {typed['report_id']}, no data "
            "cut date, label “38 months”): HR 0.68 (0.52–0.89)") in text
    assert "Please correct the marked fields" not in text
    assert len(_estimates(app)) == 4
    # once the first is withdrawn, entering it again is how it comes back
    token = csrf_from(curator.get(f"/trials/{trial_id}").text)
    assert curator.post(f"/estimates/{first.id}/withdraw", follow_redirects=False,
                        data={"reason": "wrong", "csrf_token": token}).status_code == 303
    assert _post_estimate(curator, trial_id, **typed).status_code == 303
    assert len(_estimates(app)) == 5


def test_an_undated_new_cut_of_a_dated_trial_is_pointed_out(app: Any,
                                                            users: dict[str, str]) -> None:
    """A later cut entered with no data cut date and no report ranks below every dated
    estimate of the trial, so the older cut stays pooled: the curator is told at once, and
    the warning stays in the notes for whoever verifies it."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, hr="0.60", ci_low="0.45", ci_high="0.80",
                          report_id=str(_report_id(app, trial_id))).status_code == 303
    (dated,) = _estimates(app)
    # OS is another analysis: nothing to say; the same endpoint family (EFS with PFS) is
    assert _post_estimate(curator, trial_id, endpoint="OS", hr="0.80", ci_low="0.60",
                          ci_high="1.07").status_code == 303
    assert 'class="flash flash-warn' not in curator.get(f"/trials/{trial_id}").text
    assert _post_estimate(curator, trial_id, endpoint="EFS", hr="0.70", ci_low="0.56",
                          ci_high="0.88", data_cut_label="final <analysis>").status_code == 303
    page = curator.get(f"/trials/{trial_id}").text
    said = (f"no data cut date and no report with a year: this estimate cannot be placed in "
            f"time, so estimate {dated.id} of TEST-1 (dated) stays the trial&#39;s latest cut in "
            "every analysis; choose the report the numbers come from or enter the data cut date")
    assert f"Check: {said}" in page
    undated = _estimates(app)[-1]
    assert (undated.notes or "").startswith("Check at entry: no data cut date and no report")
    # with a date it is placed in time, and nothing is said (after the dated estimate's report
    # year: in 2024 its order against that report's undated cut would be a judgment, below)
    assert _post_estimate(curator, trial_id, endpoint="EFS", hr="0.71", ci_low="0.56",
                          ci_high="0.89", data_cut="2025-06-30").status_code == 303
    assert 'class="flash flash-warn' not in curator.get(f"/trials/{trial_id}").text


def test_a_cut_whose_order_rests_on_report_years_is_pointed_out(app: Any,
                                                                users: dict[str, str]) -> None:
    """An estimate with only its report's year (2024) against a new one cut in 2024 with no
    report: which is later is judged, not known; the curator is told which data cut would
    settle it, and a correction that enters it is not warned about itself."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, hr="0.60", ci_low="0.45", ci_high="0.80",
                          report_id=str(_report_id(app, trial_id))).status_code == 303
    (yearly,) = _estimates(app)
    assert _post_estimate(curator, trial_id, hr="0.62", ci_low="0.50", ci_high="0.77",
                          data_cut="2024-03-31").status_code == 303
    said = (f"Check: estimate {yearly.id} of TEST-1 has no data cut date, only a report&#39;s "
            "year: whether this cut is later is judged from the report years, not known; enter "
            "its data cut (Correct) to be sure")
    assert said in curator.get(f"/trials/{trial_id}").text
    dated = _estimates(app)[-1]
    assert (dated.notes or "").startswith("Check at entry: estimate ")
    # a cut after the report's year is later for certain: nothing to say
    assert _post_estimate(curator, trial_id, endpoint="EFS", hr="0.63", ci_low="0.50",
                          ci_high="0.79", data_cut="2025-01-31").status_code == 303
    assert 'class="flash flash-warn' not in curator.get(f"/trials/{trial_id}").text
    # the correction that enters the missing cut is not compared with what it replaces
    token = csrf_from(curator.get(f"/estimates/{yearly.id}/edit").text)
    assert curator.post(f"/estimates/{yearly.id}/edit", follow_redirects=False, data={
        "endpoint": "PFS", "method": "reported_ci", "orientation": "maint_vs_control",
        "hr": "0.60", "ci_low": "0.45", "ci_high": "0.80", "data_cut": "2023-06-30",
        "report_id": str(_report_id(app, trial_id)), "csrf_token": token}).status_code == 303
    page = curator.get(f"/trials/{trial_id}").text
    # (the dated estimate's own note from its entry stays on the page: "Check at entry: ...")
    assert "corrected by estimate" in page and "Check: estimate" not in page


def test_too_long_notes_are_marked_beside_the_field(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4", ci_high="0.6",
                              notes="x" * 4001)
    assert response.status_code == 400
    assert 'id="notes-error">Notes is longer than 4000 characters' in response.text
    assert _estimates(app) == []


def test_an_hr_typed_with_the_arm_that_did_better_is_kept_when_they_agree(
        app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, method="p_value_events", p_value="0.01",
                          events="100", favours="maintenance", hr="0.6").status_code == 303
    (estimate,) = _estimates(app)
    assert estimate.derivation_inputs is not None
    assert estimate.derivation_inputs["hr"] == 0.6
    assert estimate.derivation_inputs["favours"] == "maintenance"


def _report_id(app: Any, trial_id: int) -> int:
    with db(app) as session:
        report = session.exec(select(TrialReport).where(TrialReport.trial_id == trial_id)).one()
        assert report.id is not None
        return report.id


def test_asymmetric_ci_is_saved_with_a_warning(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, hr="0.50", ci_low="0.45",
                          ci_high="0.90").status_code == 303
    page = curator.get(f"/trials/{trial_id}").text
    assert "Check: the CI 0.45–0.90 is not symmetric around HR 0.50 on the log scale" in page
    # ... and it stays with the estimate, for the person who verifies it
    (first,) = _estimates(app)
    assert (first.notes or "").startswith("Check at entry: the CI 0.45–0.90 is not symmetric")
    # ... which sees it on the trial page and in the API (it was on the Correct form only)
    other = as_role(app, users, "admin").get(f"/trials/{trial_id}").text
    assert ('class="estimate-notes">Check at entry: the CI 0.45–0.90 is not symmetric'
            in other)
    with db(app) as session:
        admin = session.exec(select(User).where(User.email == users["admin"])).one()
        token = issue_api_token(session, admin, actor="test", days=90)
        session.commit()
    body = TestClient(app).get(f"/api/trials/{trial_id}",
                               headers={"Authorization": f"Bearer {token}"}).json()
    (listed,) = body["estimates"]
    assert listed["entry_notes"] == first.notes
    # a CI symmetric up to rounding of the printed digits does not warn
    assert _post_estimate(curator, trial_id, hr="0.57", ci_low="0.46",
                          ci_high="0.71").status_code == 303
    assert 'class="flash flash-warn' not in curator.get(f"/trials/{trial_id}").text
    assert len(_estimates(app)) == 2 and _estimates(app)[1].notes is None


def test_the_saved_message_writes_the_hr_as_the_row_does(app: Any, users: dict[str, str]) -> None:
    """Two decimals, rounded half-up, with the CI: not "HR 0.5", nor 1.02 for 1.025."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    _post_estimate(curator, trial_id, hr="0.50", ci_low="0.35", ci_high="0.70")
    page = curator.get(f"/trials/{trial_id}").text
    assert "Estimate saved: PFS HR 0.50 (0.35–0.70)." in page
    _post_estimate(curator, trial_id, endpoint="OS", hr="1.025", ci_low="0.789",
                   ci_high="1.332")
    page = curator.get(f"/trials/{trial_id}").text
    assert "Estimate saved: OS HR 1.03 (0.79–1.33)." in page


def test_no_hr_reported_helpers(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, method="p_value_events", p_value="0.002",
                          events="200", hr="0.6").status_code == 303
    assert _post_estimate(curator, trial_id, method="o_minus_e", o_minus_e="12",
                          variance="40", orientation="control_vs_maint").status_code == 303
    assert _post_estimate(curator, trial_id, method="medians", median_maintenance="46",
                          median_control="27", events_maintenance="120",
                          events_control="150", endpoint="OS").status_code == 303
    p_est, oe_est, med_est = _estimates(app)
    # Parmar: V = 200/4 = 50, O−E = −z·√V, favouring maintenance (HR 0.6 < 1)
    assert p_est.method == "p_value_events" and p_est.approximate
    assert p_est.log_hr == pytest.approx(-3.090232 / math.sqrt(50), rel=1e-5)
    # O−E entered for the control arm: the maintenance arm's is −12
    assert oe_est.method == "o_minus_e" and oe_est.log_hr == pytest.approx(-12 / 40)
    assert oe_est.se == pytest.approx(1 / math.sqrt(40))
    assert med_est.method == "medians" and med_est.approximate
    assert med_est.hr == pytest.approx(27 / 46)
    assert med_est.se == pytest.approx(math.sqrt(1 / 120 + 1 / 150))
    assert "approximate" in curator.get(f"/trials/{trial_id}").text


def test_verify_toggles_and_is_audited(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4", ci_high="0.6")
    (estimate,) = _estimates(app)
    assert not estimate.verified
    checker = second_curator(app)  # not the person who entered it
    response = _verify(checker, estimate, None)
    assert response.status_code == 303
    assert response.headers["location"] == f"/trials/{trial_id}#estimate-{estimate.id}"
    (estimate,) = _estimates(app)
    assert estimate.verified and estimate.verified_by is not None
    assert _verify(checker, estimate, None).status_code == 303  # toggles back
    assert not _estimates(app)[0].verified
    with db(app) as session:
        actions = [(a.action, a.actor) for a in session.exec(
            select(AuditLog).where(col(AuditLog.action).like("estimate.%verify"))
            .order_by(col(AuditLog.id)))]
    assert actions == [("estimate.verify", "checker@example.org"),
                       ("estimate.unverify", "checker@example.org")]
    token = csrf_from(checker.get(f"/trials/{trial_id}").text)
    assert checker.post("/estimates/999/verify", data={"csrf_token": token}).status_code == 404


# ----------------------------------------------------------------------------- pooled estimates
@pytest.fixture
def pooled(app: Any) -> list[PooledResult]:
    from monitor.bootstrap import load_seed_evidence
    from reports.pool import pool_all
    from reports.selection import latest_results

    with db(app) as session:
        load_seed_evidence(session)
        session.commit()
    pool_all(app.state.ctx)
    with db(app) as session:
        return [r for r in latest_results(session) if r.k > 0]


def test_estimates_page_shows_latest_pooled_results(app: Any, users: dict[str, str],
                                                    pooled: list[PooledResult]) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    assert pooled
    for row in pooled:
        assert f'src="/estimates/{row.id}/forest.svg"' in html
        assert f"{math.exp(row.estimate or 0):.2f}" in html
    assert "CALGB 100104" in html  # per-study inputs are listed under each analysis


def test_forest_plot_svg(app: Any, users: dict[str, str], pooled: list[PooledResult]) -> None:
    pytest.importorskip("reports.forest", reason="reports.forest (helper H3) not installed yet")
    viewer = as_role(app, users, "viewer")
    response = viewer.get(f"/estimates/{pooled[0].id}/forest.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.content.lstrip().startswith((b"<?xml", b"<svg"))
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert viewer.get("/estimates/99999/forest.svg").status_code == 404


# ----------------------------------------------------------------------------- digests
def test_digest_html_is_sandboxed(app: Any, users: dict[str, str]) -> None:
    with db(app) as session:
        digest = Digest(subject="Weekly <b>digest</b>", html="<h1>New</h1><script>alert(1)"
                        "</script>", text="New records: 3 <script>")
        session.add(digest)
        session.flush()
        session.add(Delivery(digest_id=digest.id, channel="outbox", status="sent",
                             path="/tmp/outbox/d.eml"))
        session.commit()
        digest_id = digest.id
    viewer = as_role(app, users, "viewer")
    listing = viewer.get("/digests").text
    assert "Weekly &lt;b&gt;digest&lt;/b&gt;" in listing
    page = viewer.get(f"/digests/{digest_id}").text
    assert f'<iframe class="digest" sandbox="" src="/digests/{digest_id}/html"' in page
    assert "New records: 3 &lt;script&gt;" in page and "/tmp/outbox/d.eml" not in page
    assert "/tmp/outbox/d.eml" in as_role(app, users, "admin").get(f"/digests/{digest_id}").text
    # A digest written to the outbox was mailed to nobody: the page does not call it sent.
    assert "written to the outbox (mailed to nobody)" in page and "<td>sent</td>" not in page
    # The first digest has no start: it covers everything up to its end, said in words.
    assert "covers everything up to" in page and "(the first digest)" in page
    assert "<td>up to " in listing and "— –" not in listing
    with db(app) as session:
        later = Digest(subject="Second", html="<p>x</p>", text="x",
                       period_start=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
                       period_end=datetime(2026, 11, 9, 9, 30, tzinfo=UTC))
        session.add(later)
        session.flush()
        session.add(Delivery(digest_id=later.id, channel="smtp", recipient="a@example.org",
                             status="sent"))
        session.commit()
        later_id = later.id
    second = viewer.get(f"/digests/{later_id}").text
    assert "covers 2026-11-02 09:30 UTC – 2026-11-09 09:30 UTC" in second
    assert "<td>sent</td>" in second and "first digest" not in second
    assert "<td>2026-11-02 09:30 UTC – 2026-11-09 09:30 UTC</td>" in viewer.get("/digests").text
    raw = viewer.get(f"/digests/{digest_id}/html")
    assert raw.headers["content-security-policy"].startswith("sandbox;")
    assert raw.headers["x-frame-options"] == "SAMEORIGIN"
    assert viewer.get("/digests/999").status_code == 404


def test_only_admins_see_who_a_digest_went_to(app: Any, users: dict[str, str]) -> None:
    # Any viewer read every subscriber's address (and the errors quoting them) on
    # /digests/N, while /admin/subscribers is for admins only.
    with db(app) as session:
        digest = Digest(subject="Weekly", html="<p>x</p>", text="x", summary={})
        session.add(digest)
        session.flush()
        session.add_all([
            Delivery(digest_id=digest.id, channel="smtp", recipient="ana@example.org",
                     status="sent", attempts=1),
            Delivery(digest_id=digest.id, channel="smtp", recipient="bo@example.org",
                     status="sent", attempts=1),
            Delivery(digest_id=digest.id, channel="smtp", recipient="cy@example.org",
                     status="failed", attempts=1,
                     error="recipient refused: 550 5.1.1 <cy@example.org> unknown"),
            Delivery(digest_id=digest.id, channel="smtp", recipient="di@example.org",
                     status="unknown", attempts=1, error="unknown whether it arrived")])
        session.commit()
        digest_id = digest.id
    for role in ("viewer", "curator"):
        page = as_role(app, users, role).get(f"/digests/{digest_id}").text
        assert not any(a in page for a in ("ana@", "bo@", "cy@", "di@")) and "550" not in page
        assert "<td>smtp</td><td>sent</td><td>2</td>" in page
        assert "<td>smtp</td><td>failed</td><td>1</td>" in page
        assert "may have arrived)</td><td>1</td>" in page
        assert "shown to admins only" in page
    page = as_role(app, users, "admin").get(f"/digests/{digest_id}").text
    for address in ("ana@", "bo@", "cy@", "di@"):
        assert f"<td>{address}example.org</td>" in page
    assert "550 5.1.1 &lt;cy@example.org&gt; unknown" in page
    assert "shown to admins only" not in page


def test_a_digest_nobody_received_names_the_digest_that_carried_it(
        app: Any, users: dict[str, str]) -> None:
    # Its page said "Not delivered yet" after a later digest had carried its changes: an
    # admin retrying it would send subscribers an outdated digest.
    with db(app) as session:
        delivered = Digest(subject="First", html="<p>x</p>", text="x", summary={})
        failed = Digest(subject="Failed", html="<p>x</p>", text="x", summary={})
        preview = Digest(subject="Preview", html="<p>x</p>", text="x",
                         summary={"preview": True})
        session.add_all([delivered, failed, preview])
        session.flush()
        session.add(Delivery(digest_id=delivered.id, channel="smtp", recipient="a@example.org",
                             status="sent"))
        session.add(Delivery(digest_id=failed.id, channel="smtp", recipient="a@example.org",
                             status="failed", error="connection refused"))
        session.commit()
        ids = (delivered.id, failed.id, preview.id)
    viewer = as_role(app, users, "viewer")
    assert "went out in" not in viewer.get(f"/digests/{ids[1]}").text
    assert "A preview (<code>mmlr digest --out</code>)" in viewer.get(f"/digests/{ids[2]}").text
    with db(app) as session:
        covering = Digest(subject="Covering", html="<p>x</p>", text="x",
                          summary={"since_digest": ids[0]})
        session.add(covering)
        session.flush()
        session.add(Delivery(digest_id=covering.id, channel="smtp", recipient="a@example.org",
                             status="sent"))
        session.commit()
        covering_id = covering.id
    for digest_id in ids[1:]:
        page = viewer.get(f"/digests/{digest_id}").text
        assert f'its changes went out in <a href="/digests/{covering_id}">digest ' \
            f"#{covering_id}</a>" in page
    assert "went out in" not in viewer.get(f"/digests/{ids[0]}").text


# ----------------------------------------------------------------------------- admin
def test_admin_manages_users(app: Any, users: dict[str, str]) -> None:
    admin = as_role(app, users, "admin")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and users["viewer"] in page.text
    added = admin.post("/admin/users", data={"email": "new@example.org", "role": "curator",
                                             "current_password": PASSWORD,
                                             "csrf_token": csrf_from(page.text)})
    assert added.status_code == 200 and "shown once" in added.text
    generated = re.search(r'<code class="secret">([^<]+)</code>', added.text)
    assert generated
    assert login(TestClient(app), "new@example.org", generated.group(1)).status_code == 303

    dup = admin.post("/admin/users", data={"email": "new@example.org", "role": "viewer",
                                           "current_password": PASSWORD,
                                           "csrf_token": csrf_from(added.text)})
    assert dup.status_code == 400 and "a user new@example.org already exists" in dup.text
    # The reason stands beside the field it is about, which is marked, and what was typed
    # stays; one pair of parentheses.
    assert 'id="new-email" name="email" type="email" required value="new@example.org" ' \
           'aria-invalid="true" aria-describedby="new-email-error"' in dup.text
    assert 'id="new-email-error"' in dup.text and 'id="new-password-error"' not in dup.text
    short = admin.post("/admin/users", data={"email": "other@example.org", "role": "viewer",
                                             "password": "abc", "current_password": PASSWORD,
                                             "csrf_token": csrf_from(dup.text)})
    assert short.status_code == 400
    assert ('<p class="field-error" id="new-password-error" role="alert" tabindex="-1" autofocus>'
            'the password is too short: 3 characters (use at least') in short.text
    assert 'aria-describedby="new-password-error new-password-hint" aria-invalid="true"' \
        in short.text
    assert 'value="other@example.org"' in short.text and 'id="new-email-error"' not in short.text
    # The form says the rule before anyone trips on it, and the browser checks the length.
    field = re.search(r'<input id="new-password"[^>]*>', short.text)
    assert field is not None and f'minlength="{MIN_PASSWORD_LENGTH}"' in field.group(0)
    assert f"at least {MIN_PASSWORD_LENGTH} characters" in short.text
    with db(app) as session:
        assert session.exec(select(User).where(User.email == "other@example.org")).first() is None

    with db(app) as session:
        ids = {u.email: u.id for u in session.exec(select(User))}
    token = csrf_from(dup.text)
    assert admin.post(f"/admin/users/{ids['new@example.org']}/role",
                      data={"role": "viewer", "csrf_token": token},
                      follow_redirects=False).status_code == 303
    bad_role = admin.post(f"/admin/users/{ids['new@example.org']}/role",
                          data={"role": "god", "csrf_token": token})
    assert bad_role.status_code == 400 and "unknown role" in bad_role.text
    # the last admin can neither be demoted nor deactivated
    last = admin.post(f"/admin/users/{ids[users['admin']]}/role",
                      data={"role": "viewer", "csrf_token": token})
    assert last.status_code == 400 and "is the last active admin" in last.text
    assert admin.post(f"/admin/users/{ids[users['admin']]}/active",
                      data={"active": "0", "csrf_token": token}).status_code == 400
    # deactivation ends access, the API token's included (revoked, and audited as such)
    viewer = as_role(app, users, "viewer")
    with db(app) as session:
        viewer_user = session.exec(select(User).where(User.email == users["viewer"])).one()
        issue_api_token(session, viewer_user, actor=users["admin"], days=90)
        session.commit()
    assert admin.post(f"/admin/users/{ids[users['viewer']]}/active",
                      data={"active": "0", "csrf_token": token},
                      follow_redirects=False).status_code == 303
    assert viewer.get("/", follow_redirects=False).status_code == 303
    with db(app) as session:
        roles = {u.email: (u.role, u.active) for u in session.exec(select(User))}
        assert roles["new@example.org"] == ("viewer", True)
        assert roles[users["viewer"]] == ("viewer", False)
        assert roles[users["admin"]] == ("admin", True)
        actions = [a.action for a in session.exec(select(AuditLog))]
        assert {"user.add", "user.role", "user.deactivate"} <= set(actions)
        deactivated = session.exec(select(User).where(User.email == users["viewer"])).one()
        assert deactivated.api_token_hash is None
        (revoked,) = session.exec(select(AuditLog).where(
            AuditLog.action == "user.token_revoked")).all()
        assert (revoked.actor, revoked.object_id) == (users["admin"], users["viewer"])
        assert revoked.details == {"via": "deactivate"}


def test_only_admins_reach_admin_pages(app: Any, users: dict[str, str]) -> None:
    for role in ("viewer", "curator"):
        c = as_role(app, users, role)
        response = c.get("/admin/users")
        assert response.status_code == 403 and "this needs the admin role" in response.text
        token = csrf_from(c.get("/").text)
        assert c.post("/admin/users", data={"email": "x@example.org", "role": "admin",
                                            "csrf_token": token}).status_code == 403
    with db(app) as session:
        assert session.exec(select(User).where(User.email == "x@example.org")).first() is None


def test_admin_issues_api_token(app: Any, users: dict[str, str]) -> None:
    admin = as_role(app, users, "admin")
    with db(app) as session:
        curator_id = session.exec(select(User.id).where(User.email == users["curator"])).one()
    page = admin.post(f"/admin/users/{curator_id}/token",
                      data={"csrf_token": csrf_from(admin.get("/admin/users").text),
                            "current_password": PASSWORD})
    token = re.search(r'<code class="secret">(mmlr_[^<]+)</code>', page.text)
    assert token
    api = TestClient(app)
    me = api.get("/api/trials", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert me.status_code == 200
    with db(app) as session:
        stored = session.exec(select(User.api_token_hash).where(User.id == curator_id)).one()
        assert stored and token.group(1) not in stored  # only the hash is stored
    assert PASSWORD not in page.text


def test_a_derived_ci_limit_next_to_1_keeps_its_side_on_the_trial_page(
        app: Any, users: dict[str, str]) -> None:
    """O−E −12.5 with V 40 gives an upper limit of 0.997: the flash said "0.54–0.997", the
    trial page's row and the Correct page "0.54–1.00", a CI reaching 1."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    saved = _post_estimate(curator, trial_id, method="o_minus_e", o_minus_e="-12.5",
                           variance="40", endpoint="OS")
    assert saved.status_code == 303
    (estimate,) = _estimates(app)
    assert 0.995 < estimate.ci_high < 1.0
    row = lxml.html.fromstring(curator.get(f"/trials/{trial_id}").text).xpath(
        f"//tr[@id='estimate-{estimate.id}']/td[contains(@class, 'ci')]")[0]
    assert row.text_content().strip() == "0.54–0.997"
    edit = " ".join(curator.get(f"/estimates/{estimate.id}/edit").text.split())
    assert "HR 0.73 (0.54–0.997)" in edit
