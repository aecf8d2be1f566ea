"""Editing a trial after it is created: the form on the trial page and PATCH /api/trials/{id},
their checks, the audit trail, and the analyses the next pool run recomputes. Over the real app
and database."""

from __future__ import annotations

import html
import math
import re
import threading
import time
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_web import as_role, csrf_from, db
from test_web_api import _token
from test_web_evidence import _estimates, _post_estimate, _trial, verified_by_second_person

from store.models import AuditLog, Estimate, Trial, TrialReport, utcnow
from store.record_lock import locked_trial

app = test_web.app
users = test_web.users

RECOMPUTED = ("The analyses will be recomputed with this change at the next pool run "
              "(mmlr pool, mmlr run, the scheduled cycle, or Pool now on the estimates "
              "page).")
FORM = {"name": "TEST-1", "drug": "lenalidomide", "regimen": "", "comparator": "placebo",
        "setting": "post_asct", "registry_ids": "", "notes": ""}


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _edit(c: TestClient, trial_id: int, **fields: str) -> Any:
    token = csrf_from(c.get(f"/trials/{trial_id}").text)
    return c.post(f"/trials/{trial_id}/edit", follow_redirects=False,
                  data={**FORM, "csrf_token": token, **fields})


def _stored(app: Any, trial_id: int) -> Trial:
    with db(app) as session:
        trial = session.get(Trial, trial_id)
        assert trial is not None
        return trial


def _edits(app: Any) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == "trial.edit")
                                 .order_by(col(AuditLog.id))))


# ----------------------------------------------------------------------------- the form
def test_curator_edits_a_trial_and_the_change_is_audited(app: Any,
                                                         users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    page = curator.get(f"/trials/{trial_id}").text
    assert "<summary>Edit trial</summary>" in page
    assert f'action="/trials/{trial_id}/edit"' in page
    assert 'id="trial-name" name="name" type="text" value="TEST-1"' in page  # filled in
    assert 'id="trial-setting" name="setting"' in page
    response = _edit(curator, trial_id, name="  MM <015>  ", drug="Thalidomide",
                     is_strategy="1", registry_ids="nct00114101 2009-010956-93",
                     notes="induction differs")
    assert response.status_code == 303
    assert response.headers["location"] == f"/trials/{trial_id}"
    trial = _stored(app, trial_id)
    assert (trial.name, trial.drug, trial.is_strategy) == ("MM <015>", "thalidomide", True)
    assert trial.registry_ids == ["NCT00114101", "2009-010956-93"]
    assert (trial.comparator, trial.regimen, trial.notes) == ("placebo", None,
                                                               "induction differs")
    html = curator.get(f"/trials/{trial_id}").text
    assert ("Trial MM &lt;015&gt; updated: name TEST-1 → MM &lt;015&gt;; drug lenalidomide → "
            "thalidomide; strategy trial no → yes; registry ids — → NCT00114101, "
            f"2009-010956-93; notes edited. {RECOMPUTED}") in html
    assert "<015>" not in html
    (row,) = _edits(app)
    assert (row.actor, row.object_type, row.object_id) == (users["curator"], "trial",
                                                           str(trial_id))
    assert row.details["old"] == {"name": "TEST-1", "drug": "lenalidomide",
                                  "is_strategy": False, "registry_ids": [], "notes": None}
    assert row.details["new"] == {"name": "MM <015>", "drug": "thalidomide",
                                  "is_strategy": True,
                                  "registry_ids": ["NCT00114101", "2009-010956-93"],
                                  "notes": "induction differs"}
    # saving the form unchanged changes nothing and writes no audit row
    again = _edit(curator, trial_id, name="MM <015>", drug="thalidomide", is_strategy="1",
                  registry_ids="NCT00114101, 2009-010956-93", notes="induction differs")
    assert again.status_code == 303
    assert "Trial MM &lt;015&gt;: nothing changed." in curator.get(f"/trials/{trial_id}").text
    assert len(_edits(app)) == 1
    # an unticked box clears the strategy flag, as on the new-trial form
    assert _edit(curator, trial_id, name="MM <015>", drug="thalidomide").status_code == 303
    assert _stored(app, trial_id).is_strategy is False


@pytest.mark.parametrize("typed", ["calgb 100104", "CALGB-100104", "Calgb 100104 "])
def test_a_trial_name_differing_only_in_case_or_punctuation_is_the_same_trial(
        app: Any, users: dict[str, str], typed: str) -> None:
    _trial(app, name="CALGB 100104")
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/trials/new").text)
    response = curator.post("/trials/new", follow_redirects=False, data={
        "csrf_token": token, "name": typed, "drug": "lenalidomide", "setting": "post_asct",
        "comparator": "placebo"})
    assert response.status_code == 400
    assert (f"trial &#39;CALGB 100104&#39; already exists, and &#39;{typed.strip()}&#39; "
            "differs from it only in case, spacing, punctuation or Unicode form") \
        in response.text
    with db(app) as session:
        assert len(session.exec(select(Trial)).all()) == 1


def _new_trial(c: TestClient, name: str) -> Any:
    token = csrf_from(c.get("/trials/new").text)
    return c.post("/trials/new", follow_redirects=False, data={
        "csrf_token": token, "name": name, "drug": "lenalidomide", "setting": "post_asct",
        "comparator": "placebo"})


@pytest.mark.parametrize("typed", [
    "MYELOMA  XI", "Myeloma-XI", "myeloma xi.", "Myeloma 11",
    "\uff2d\uff59\uff45\uff4c\uff4f\uff4d\uff41 \uff38\uff29",  # full-width letters
    "\uff2d\uff39\uff25\uff2c\uff2f\uff2d\uff21\u3000\u216a",  # ideographic space, Ⅺ
], ids=["upper-two-spaces", "hyphen", "full-stop", "arabic", "full-width", "numeral-sign"])
def test_a_trial_name_differing_only_in_unicode_form_is_the_same_trial(
        app: Any, users: dict[str, str], typed: str) -> None:
    """The name is compared in Unicode's compatibility form (NFKC), case-folded: full-width
    letters (a CJK input method's) and the roman numeral sign Ⅺ are "Myeloma XI"."""
    _trial(app, name="Myeloma XI")
    response = _new_trial(as_role(app, users, "curator"), typed)
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "Name: trial 'Myeloma XI' already exists, and '" in text
    assert "differs from it only in case, spacing, punctuation or Unicode form" in text
    with db(app) as session:
        assert [t.name for t in session.exec(select(Trial))] == ["Myeloma XI"]


def test_names_of_other_scripts_are_not_one_name(app: Any, users: dict[str, str]) -> None:
    """Letters outside a-z count: "Étude 1" and "Ütude 1" are two names (compared on a-z
    only, both were "tude 1")."""
    _trial(app, name="\u00c9tude 1")
    assert _new_trial(as_role(app, users, "curator"), "\u00dctude 1").status_code == 303


def test_two_new_trials_of_one_name_at_once_make_one_trial(
        app: Any, users: dict[str, str]) -> None:
    """The second creation arrives while the first is being saved: it waits for the first
    one's lock on trial names, then finds the name taken (both checks passed before, and
    "Myeloma XI" beside "MYELOMA  XI" is no duplicate to the column's unique index)."""
    from screening.web.trials import create_trial
    from store.models import User

    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/trials/new").text)
    answers: list[Any] = []

    def second() -> None:
        answers.append(curator.post("/trials/new", follow_redirects=False, data={
            "csrf_token": token, "name": "MYELOMA  XI", "drug": "lenalidomide",
            "setting": "post_asct"}))

    first = app.state.ctx.sessions()
    try:
        admin = first.exec(select(User).where(User.email == users["admin"])).one()
        create_trial(first, {**FORM, "name": "Myeloma XI"}, user=admin)
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second creation should wait for the first one's lock"
        first.commit()
    finally:
        first.close()
    thread.join(timeout=60)
    assert [a.status_code for a in answers] == [400], [a.text for a in answers]
    assert "trial &#39;Myeloma XI&#39; already exists" in answers[0].text
    with db(app) as session:
        assert [t.name for t in session.exec(select(Trial))] == ["Myeloma XI"]


def test_bad_trial_edit_names_each_field_and_keeps_the_values(app: Any,
                                                              users: dict[str, str]) -> None:
    _trial(app, name="Existing")
    trial_id = _trial(app, name="Mine")
    curator = as_role(app, users, "curator")
    response = _edit(curator, trial_id, name="Existing", drug=" ", setting="orbit",
                     registry_ids="NCT123", regimen="x" * 201, notes="keep <me>")
    assert response.status_code == 400
    html = response.text
    assert "Please correct the marked fields: the trial was not changed." in html
    assert "Name: a trial named &#39;Existing&#39; already exists" in html
    assert "Maintenance drug is required" in html
    assert "Setting must be one of post_asct, non_transplant, mixed" in html
    assert "Registry ids &#39;NCT123&#39; is not a registry id" in html
    assert "Regimen is longer than 200 characters" in html
    assert 'id="trial-name" name="name" type="text" value="Existing"' in html  # kept
    assert "keep &lt;me&gt;</textarea>" in html
    # The summary that takes the focus lists each error as a link to its field.
    import lxml.html
    (summary,) = lxml.html.fromstring(html).xpath('//div[contains(@class, "error-summary")]')
    assert summary.get("autofocus") is not None and summary.get("role") == "alert"
    links = [(a.get("href"), " ".join(a.text_content().split()))
             for a in summary.xpath(".//li/a")]
    expected = [("#trial-name", "Name: a trial named 'Existing' already exists"),
                ("#trial-drug", "Maintenance drug is required"),
                ("#trial-regimen", "Regimen is longer than 200 characters"),
                ("#trial-setting", "Setting must be one of post_asct, non_transplant, mixed"),
                ("#trial-registry_ids", "Registry ids 'NCT123' is not a registry id")]
    assert [href for href, _ in links] == [href for href, _ in expected]
    for (_, text), (_, start) in zip(links, expected, strict=True):
        assert text.startswith(start), text
    page = lxml.html.fromstring(html)
    for href, _ in links:
        assert page.xpath(f'//form//*[@id="{href[1:]}"][@aria-invalid="true"]'), href
    assert "<details class=\"edit-trial\" open>" in html
    assert _stored(app, trial_id).name == "Mine" and _edits(app) == []
    # its own name is not "taken"
    assert _edit(curator, trial_id, name="Mine", drug="lenalidomide",
                 setting="mixed").status_code == 303


def test_new_trial_refuses_a_too_long_regimen(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    response = curator.post("/trials/new", data={
        **FORM, "regimen": "x" * 201, "csrf_token": csrf_from(curator.get("/trials/new").text)})
    assert response.status_code == 400  # it used to be dropped without a word
    assert "Regimen is longer than 200 characters" in response.text


def test_one_line_fields_refuse_line_breaks_and_tabs(app: Any, api: TestClient,
                                                     users: dict[str, str]) -> None:
    """A tab or a line break in a trial's name cannot be seen in the form; it split the name
    in the forest plot (a glyph the font lacks), the digest and the exports."""
    curator = as_role(app, users, "curator")
    response = curator.post("/trials/new", data={
        **FORM, "name": "Tab\tName", "comparator": "placebo\nobservation",
        "csrf_token": csrf_from(curator.get("/trials/new").text)})
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "Name must be one line: no line breaks, tabs or control characters" in text
    assert "Comparator must be one line" in text
    trial_id = _trial(app)
    headers = _token(app, users["curator"])
    patched = api.patch(f"/api/trials/{trial_id}", headers=headers,
                        json={"name": "Smith\r\nLine two"})
    assert patched.status_code == 400
    assert patched.json()["error"].startswith("name: must be one line")
    refused = _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                             data_cut_label="median follow-up\n34 months")
    assert refused.status_code == 400 and "must be one line" in refused.text
    assert _estimates(app) == [] and _stored(app, trial_id).name == "TEST-1"
    # text with letters of any script, quotes and a non-breaking space is one line
    assert _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                          data_cut_label="Müller α ≥ 65\u00a0y “final”").status_code == 303


def test_viewers_cannot_edit_and_the_form_needs_its_token(app: Any,
                                                          users: dict[str, str]) -> None:
    trial_id = _trial(app)
    viewer = as_role(app, users, "viewer")
    page = viewer.get(f"/trials/{trial_id}").text
    assert "Edit trial" not in page and f"/trials/{trial_id}/edit" not in page
    assert _edit(viewer, trial_id, drug="thalidomide").status_code == 403
    curator = as_role(app, users, "curator")
    for token in (None, "y" * 43):
        data = {**FORM, "drug": "thalidomide", **({} if token is None else {"csrf_token": token})}
        response = curator.post(f"/trials/{trial_id}/edit", data=data)
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
    assert _stored(app, trial_id).drug == "lenalidomide" and _edits(app) == []
    assert _edit(curator, 999, drug="thalidomide").status_code == 404


def test_a_renamed_seed_trial_is_not_seeded_again(app: Any, users: dict[str, str]) -> None:
    from monitor.bootstrap import load_seed_evidence

    with db(app) as session:
        load_seed_evidence(session)
        session.commit()
        calgb = session.exec(select(Trial).where(Trial.name == "CALGB 100104")).one()
        n_trials = len(session.exec(select(Trial)).all())
        n_estimates = len(session.exec(select(Estimate)).all())
        form = {"name": calgb.name, "drug": calgb.drug, "setting": calgb.setting,
                "comparator": calgb.comparator or "", "regimen": calgb.regimen or "",
                "notes": calgb.notes or ""}
    curator = as_role(app, users, "curator")
    response = _edit(curator, calgb.id, **{**form, "name": "Alliance A"})  # type: ignore[arg-type]
    assert response.status_code == 303
    with db(app) as session:
        summary = load_seed_evidence(session)  # `mmlr init` again: found by its source key
        session.commit()
        assert (summary.trials_added, summary.estimates_added) == (0, 0)
        assert len(session.exec(select(Trial)).all()) == n_trials
        assert len(session.exec(select(Estimate)).all()) == n_estimates
    assert _stored(app, calgb.id).name == "Alliance A"  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- analyses
def test_the_next_pool_run_follows_the_edited_drug_and_strategy_flag(
        app: Any, users: dict[str, str]) -> None:
    from reports.pool import pool_all
    from reports.selection import latest_results

    curator = as_role(app, users, "curator")
    moved = _trial(app, name="TRIAL-A")
    stays = _trial(app, name="TRIAL-B")
    for trial_id, hr, lo, hi in ((moved, "0.50", "0.40", "0.625"),
                                 (stays, "0.80", "0.64", "1.00")):
        assert _post_estimate(curator, trial_id, hr=hr, ci_low=lo, ci_high=hi).status_code == 303
    verified_by_second_person(app)
    a, b = _estimates(app)

    def pooled() -> dict[str, list[int]]:
        with db(app) as session:
            return {r.analysis_key: [row["estimate_id"] for row in r.inputs]
                    for r in latest_results(session)}

    pool_all(app.state.ctx)
    assert pooled()["lenalidomide/PFS/post_asct"] == [a.id, b.id]
    assert pooled().get("thalidomide/PFS/post_asct", []) == []

    assert _edit(curator, moved, name="TRIAL-A", drug="thalidomide").status_code == 303
    assert RECOMPUTED in curator.get(f"/trials/{moved}").text
    run = pool_all(app.state.ctx)
    assert {o.analysis.key for o in run.changed} >= {"lenalidomide/PFS/post_asct",
                                                     "thalidomide/PFS/post_asct"}
    assert pooled()["lenalidomide/PFS/post_asct"] == [b.id]
    assert pooled()["thalidomide/PFS/post_asct"] == [a.id]

    # a strategy trial leaves the primary analysis for its sensitivity twin
    assert _edit(curator, moved, name="TRIAL-A", drug="thalidomide",
                 is_strategy="1").status_code == 303
    pool_all(app.state.ctx)
    assert pooled()["thalidomide/PFS/post_asct"] == []
    assert pooled()["thalidomide/PFS/post_asct/with_strategy"] == [a.id]


def test_a_new_setting_is_the_default_of_new_estimates_only(app: Any,
                                                            users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4",
                          ci_high="0.625").status_code == 303
    assert _edit(curator, trial_id, setting="mixed").status_code == 303
    html = curator.get(f"/trials/{trial_id}").text
    assert ("Trial TEST-1 updated: setting post_asct → mixed. Its estimates keep the setting "
            "they were entered with (1 in post_asct): correct an estimate to move it to "
            "another analysis; new estimates default to mixed.") in html
    assert RECOMPUTED not in html  # no analysis reads the trial's setting
    assert _estimates(app)[0].setting == "post_asct"
    assert '<option value="mixed" selected>' in html.split('extraction-form"')[1]


def test_an_estimate_of_the_other_population_is_refused_unless_the_trial_is_mixed(
        app: Any, users: dict[str, str]) -> None:
    """A post-ASCT trial's estimate filed as non-transplant would enter the non-transplant
    analysis, and "all settings" twice (as two strata of one trial)."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for setting in ("non_transplant", "mixed"):
        refused = _post_estimate(curator, trial_id, setting=setting, hr="0.66",
                                 ci_low="0.51", ci_high="0.86")
        assert refused.status_code == 400
        assert ("TEST-1 is a post-ASCT trial: its estimates are post-ASCT (if it enrolled both "
                "populations and reports them by stratum, set the trial's setting to mixed "
                "first)") in html.unescape(refused.text)
    assert _estimates(app) == []
    # a mixed trial reports by stratum, or as a whole
    assert _edit(curator, trial_id, setting="mixed").status_code == 303
    for setting in ("non_transplant", "post_asct", "mixed"):
        assert _post_estimate(curator, trial_id, setting=setting, hr="0.66", ci_low="0.51",
                              ci_high="0.86").status_code == 303
    assert [e.setting for e in _estimates(app)] == ["non_transplant", "post_asct", "mixed"]


def test_a_data_cut_in_the_future_is_refused(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    refused = _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                             data_cut="2099-01-01")
    assert refused.status_code == 400
    assert ("2099-01-01 is in the future: a data cut is the day follow-up was closed for the "
            "analysis reported, a day that has passed (check the year)") in refused.text
    assert _estimates(app) == []
    today = _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                           data_cut=utcnow().date().isoformat())
    assert today.status_code == 303


def test_a_data_cut_after_its_report_was_published_is_refused(app: Any,
                                                            users: dict[str, str]) -> None:
    """A cut typed 2025 for a report of 2024 cannot be right, and as the trial's latest cut it
    would replace the real latest one in every analysis."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)  # its report is from 2024
    with db(app) as session:
        (report,) = session.exec(select(TrialReport).where(TrialReport.trial_id == trial_id))
        assert report.year == 2024
    refused = _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                             data_cut="2025-01-31", report_id=str(report.id))
    assert refused.status_code == 400
    assert ("2025-01-31 is after the year of its report (2024): a report cannot give a data "
            "cut later than its publication") in html.unescape(refused.text)
    assert _estimates(app) == []
    for cut in ("2024-06-30", "2023-12-31"):
        assert _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                              data_cut=cut, report_id=str(report.id)).status_code == 303
    # without a report there is no year to compare with
    assert _post_estimate(curator, trial_id, hr="0.76", ci_low="0.64", ci_high="0.91",
                          data_cut="2025-01-31").status_code == 303


def test_a_reported_hr_is_stored_as_printed(app: Any, api: TestClient,
                                           users: dict[str, str]) -> None:
    """0.35 is stored as 0.35, not exp(log(0.35)) = 0.3499999999999999, which the API and
    every export that prints the stored HR would show; an inverted one as 1/HR."""
    trial_id = _trial(app)
    headers = _token(app, users["curator"])
    for body in ({"hr": "0.35", "ci_low": "0.15", "ci_high": "0.82"},
                 {"hr": "2.0", "ci_low": "1.25", "ci_high": "3.2",
                  "orientation": "control_vs_maint"}):
        response = api.post("/api/estimates", headers=headers,
                            json={"trial_id": trial_id, "endpoint": "PFS", **body})
        assert response.status_code == 201, response.text
    printed, inverted = _estimates(app)
    assert (printed.hr, printed.ci_low, printed.ci_high) == (0.35, 0.15, 0.82)
    assert (inverted.hr, inverted.ci_low, inverted.ci_high) == (0.5, 1 / 3.2, 0.8)
    assert math.isclose(printed.log_hr, math.log(0.35))


# ----------------------------------------------------------------------------- the API
def test_api_patch_edits_the_given_fields_with_the_same_rules(app: Any, api: TestClient,
                                                              users: dict[str, str]) -> None:
    _trial(app, name="Existing")
    trial_id = _trial(app)
    headers = _token(app, users["curator"])
    url = f"/api/trials/{trial_id}"
    response = api.patch(url, headers=headers, json={"drug": "Thalidomide",
                                                     "is_strategy": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["name"], body["drug"], body["is_strategy"]) == (
        trial_id, "TEST-1", "thalidomide", True)
    assert body["comparator"] == "placebo"  # left out: kept
    assert body["changed"] == {"drug": {"old": "lenalidomide", "new": "thalidomide"},
                               "is_strategy": {"old": False, "new": True}}
    assert body["message"] == ("Trial TEST-1 updated: drug lenalidomide → thalidomide; "
                               f"strategy trial no → yes. {RECOMPUTED}")
    (row,) = _edits(app)
    assert row.actor == users["curator"] and row.details["new"]["drug"] == "thalidomide"

    # the trial's JSON from GET /api/trials can be sent back with new values
    listed = next(t for t in api.get("/api/trials", headers=headers).json()["trials"]
                  if t["id"] == trial_id)
    back = api.patch(url, headers=headers, json={**listed, "registry_ids": ["NCT00114101"]})
    assert back.status_code == 200, back.text
    assert back.json()["changed"] == {"registry_ids": {"old": [], "new": ["NCT00114101"]}}
    unchanged = api.patch(url, headers=headers, json={})
    assert unchanged.json()["changed"] == {}
    assert unchanged.json()["message"] == "Trial TEST-1: nothing changed."

    cases: list[tuple[dict[str, str], str, Any, int, str]] = [
        (headers, url, {"name": "Existing", "setting": "orbit"}, 400,
         "name: a trial named 'Existing' already exists; setting: must be one of post_asct, "
         "non_transplant, mixed"),
        (headers, url, {"drug": "", "registry_ids": "NCT123"}, 400,
         "drug: is required (the maintenance drug as pooled, e.g. lenalidomide); "
         "registry_ids: 'NCT123' is not a registry id"),
        (headers, url, {"is_strategy": "yes", "name": 5, "registry_ids": [1]}, 400,
         "name: must be a string; is_strategy: must be true or false; registry_ids: must be a "
         "string or a list of strings"),
        (headers, url, {"strategy": True}, 400,
         "unknown field 'strategy' (a trial's fields are name, drug, regimen, comparator, "
         "setting, is_strategy, registry_ids, notes)"),
        (headers, url, {"id": trial_id + 1, "drug": "x"}, 400,
         f"id {trial_id + 1} is not this trial's ({trial_id})"),
        (headers, url, ["not", "an", "object"], 400, "the request body must be a JSON object"),
        (headers, "/api/trials/999", {"drug": "x"}, 404, "trial 999 does not exist"),
        (_token(app, users["viewer"]), url, {"drug": "x"}, 403,
         "viewer@example.org is a viewer; this needs the curator role"),
        ({}, url, {"drug": "x"}, 401, "write endpoints need an API token"),
    ]
    for hdrs, path, payload, status, message in cases:
        refused = api.patch(path, headers=hdrs, json=payload)
        assert refused.status_code == status, (payload, refused.text)
        assert refused.json()["error"].startswith(message), refused.json()
    trial = _stored(app, trial_id)
    assert (trial.name, trial.drug, trial.setting) == ("TEST-1", "thalidomide", "post_asct")
    assert len(_edits(app)) == 2
    # a cookie never writes through the API
    browser = as_role(app, users, "curator")
    assert browser.patch(url, json={"drug": "x"}).status_code == 401


def test_api_edits_from_a_stale_copy_are_refused_with_412(app: Any, api: TestClient,
                                                          users: dict[str, str]) -> None:
    """Two curators read the trial, both edit it: the second edit, made from the copy the
    first one changed, is refused instead of silently undoing the first's change."""
    trial_id = _trial(app)
    url = f"/api/trials/{trial_id}"
    first, second = _token(app, users["curator"]), _token(app, users["admin"])
    read = api.get(url, headers=second)
    assert read.status_code == 200, read.text
    etag = read.headers["ETag"]
    assert etag == f'"{read.json()["version"]}"'
    listed = next(t for t in api.get("/api/trials", headers=second).json()["trials"]
                  if t["id"] == trial_id)
    assert listed["version"] == read.json()["version"]
    assert listed == read.json() and listed["notes"] is None  # every field the version covers
    # the first curator saves with the version they read, and gets the new one back
    saved = api.patch(url, headers={**first, "If-Match": etag},
                      json={"comparator": "placebo + dexamethasone"})
    assert saved.status_code == 200, saved.text
    new_etag = saved.headers["ETag"]
    assert new_etag != etag and new_etag == f'"{saved.json()["version"]}"'
    assert api.get(url, headers=second).headers["ETag"] == new_etag
    # the second, from the old copy: by If-Match, or by sending the old JSON back whole
    for headers, body in [({**second, "If-Match": etag}, {"notes": "typed with care"}),
                          (second, {**listed, "notes": "typed with care"}),
                          ({**second, "If-Match": f'"other", {etag}'}, {"notes": "x"}),
                          # weak tags never match for If-Match (RFC 9110)
                          ({**second, "If-Match": f"W/{new_etag}"}, {"notes": "x"})]:
        refused = api.patch(url, headers=headers, json=body)
        assert refused.status_code == 412, (headers, refused.text)
        assert refused.json() == {
            "code": "precondition_failed",
            "error": f"trial {trial_id} (TEST-1) has changed since you read it: nothing was "
                     "saved (GET it again, apply your change to what it is now, and send the "
                     "edit with the new ETag or version)"}
    trial = _stored(app, trial_id)
    assert (trial.comparator, trial.notes) == ("placebo + dexamethasone", None)
    assert len(_edits(app)) == 1
    # malformed preconditions are 400s, not "stale"
    for headers, body, message in [
        ({**second, "If-Match": saved.json()["version"]}, {"notes": "x"},
         f"If-Match {saved.json()['version']!r} is not an entity tag"),
        (second, {"notes": "x", "version": 5}, "version must be a string"),
    ]:
        bad = api.patch(url, headers=headers, json=body)
        assert bad.status_code == 400 and bad.json()["error"].startswith(message), bad.text
    # the current version (one of a list, or *) and no precondition at all are accepted
    for headers in [{**second, "If-Match": f'"other", {new_etag}'},
                    {**second, "If-Match": "*"}, second]:
        ok = api.patch(url, headers=headers, json={"notes": f"edit {len(_edits(app))}"})
        assert ok.status_code == 200, ok.text
    assert len(_edits(app)) == 4
    assert api.get("/api/trials/999", headers=second).status_code == 404
    # an If-Match for a trial that does not exist: still the 404
    missing = api.patch("/api/trials/999", headers={**second, "If-Match": "*"}, json={})
    assert missing.status_code == 404


def test_an_edit_sent_while_another_is_being_saved_waits_for_it(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """Both edits name the version they read; the second arrives while the first is being
    saved. Were the version compared before the first commits, both would pass the check and
    the second overwrite the first: it waits for the trial's lock and is refused."""
    trial_id = _trial(app)
    url = f"/api/trials/{trial_id}"
    headers = _token(app, users["admin"])
    etag = api.get(url, headers=headers).headers["ETag"]
    answers: list[Any] = []

    def second_edit() -> None:
        answers.append(api.patch(url, headers={**headers, "If-Match": etag},
                                 json={"notes": "the second edit"}))

    first = app.state.ctx.sessions()
    try:
        trial = locked_trial(first, trial_id)
        trial.comparator = "placebo + dexamethasone"
        first.add(trial)
        first.flush()
        thread = threading.Thread(target=second_edit)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second edit should wait for the first one's lock"
        first.commit()
    finally:
        first.close()
    thread.join(timeout=60)
    assert [a.status_code for a in answers] == [412], [a.text for a in answers]
    trial = _stored(app, trial_id)
    assert (trial.comparator, trial.notes) == ("placebo + dexamethasone", None)


def test_form_field_attributes_reach_the_browser(app: Any, users: dict[str, str]) -> None:
    """The macros' extra attributes are real attributes (they were once escaped into text, so
    phones showed a letter keyboard for HRs)."""
    page = as_role(app, users, "curator").get(f"/trials/{_trial(app)}").text
    assert 'name="hr" type="text" value="" aria-describedby="hr-hint" inputmode="decimal">' in page
    assert 'inputmode=&#34;' not in page and "&#34;decimal" not in page


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it: no tags, so no option values or attributes."""

    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_trial_pages_say_settings_methods_and_orientations_in_words(
        app: Any, users: dict[str, str]) -> None:
    """A haematologist reads "post-ASCT" and "reported HR and 95% CI", never the stored codes
    (post_asct, reported_ci, control_vs_maint)."""
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, trial_id, orientation="control_vs_maint", hr="2.0",
                          ci_low="1.6", ci_high="2.5").status_code == 303
    estimate_id = _estimates(app)[0].id
    codes = ("post_asct", "non_transplant", "reported_ci", "maint_vs_control",
             "control_vs_maint")
    for path in ("/trials", f"/trials/{trial_id}", f"/estimates/{estimate_id}/edit"):
        text = _visible_text(curator.get(path).text)
        assert not [c for c in codes if c in text], path
        assert "post-ASCT" in text, path
    trial_page = _visible_text(curator.get(f"/trials/{trial_id}").text)
    assert "reported HR and 95% CI" in trial_page
    assert "control vs maintenance (inverted on save)" in trial_page


def test_a_report_links_to_its_record_page_only_when_the_record_is_stored(
        app: Any, users: dict[str, str]) -> None:
    """A seed report's PMID (not among the searched records) leads to PubMed, not to a
    "Not found" page; a stored record's PMID to its record page."""
    from test_web import add_records

    from store.models import TrialReport

    add_records(app, [{"pmid": 90000002, "title": "Stored report"}])
    trial_id = _trial(app)  # its report is PMID 90000002
    with db(app) as session:
        session.add(TrialReport(trial_id=trial_id, pmid=30545780, citation="Dimopoulos MA. "
                                "Lancet 2019", year=2019, kind="primary"))
        session.commit()
    viewer = as_role(app, users, "viewer")
    page = viewer.get(f"/trials/{trial_id}").text
    assert '<a href="/records/90000002">90000002</a>' in page
    assert 'href="/records/30545780"' not in page
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/30545780/"' in page
    for link in set(re.findall(r'href="(/records/\d+)"', page)):
        assert viewer.get(link).status_code == 200, link


def test_an_edit_over_a_change_made_meanwhile_is_refused_and_keeps_the_typing(
        app: Any, users: dict[str, str]) -> None:
    """Two curators open the edit form; the first saves; the second's save would silently undo
    the first's change: it is refused (409), nothing saved, the form keeps what they typed and
    can be saved again from there."""
    trial_id = _trial(app)
    first = as_role(app, users, "curator")
    second = as_role(app, users, "admin")
    stale = second.get(f"/trials/{trial_id}").text
    shown = re.search(r'name="shown" value="([0-9a-f]+)"', stale)
    assert shown
    assert _edit(first, trial_id, comparator="placebo + dexamethasone").status_code == 303
    refused = second.post(f"/trials/{trial_id}/edit", data={
        **FORM, "notes": "typed with care", "shown": shown.group(1),
        "csrf_token": csrf_from(stale)})
    assert refused.status_code == 409
    assert "Someone changed this trial after you opened this form" in refused.text
    assert "typed with care" in refused.text
    assert _stored(app, trial_id).comparator == "placebo + dexamethasone"
    assert not _stored(app, trial_id).notes
    again = re.search(r'name="shown" value="([0-9a-f]+)"', refused.text)
    assert again and again.group(1) != shown.group(1)
    saved = second.post(f"/trials/{trial_id}/edit", follow_redirects=False, data={
        **FORM, "comparator": "placebo + dexamethasone", "notes": "typed with care",
        "shown": again.group(1), "csrf_token": csrf_from(refused.text)})
    assert saved.status_code == 303 and _stored(app, trial_id).notes == "typed with care"


def test_the_extraction_form_starts_on_the_report_the_numbers_come_from(
        app: Any, users: dict[str, str]) -> None:
    """The trial's only report, or the one asked for (``?report=``, where linking a record
    lands); with several reports and none asked for, the curator chooses."""
    import lxml.html

    def chosen(path: str) -> list[str]:
        page = lxml.html.fromstring(curator.get(path).text)
        (form,) = page.xpath('//form[contains(@class, "extraction-form")]')
        return form.xpath('.//select[@name="report_id"]/option[@selected]/@value')

    curator = as_role(app, users, "curator")
    trial_id = _trial(app)  # one report
    other_id = _trial(app, name="TEST-2")
    with db(app) as session:
        (only,) = session.exec(select(TrialReport.id).where(TrialReport.trial_id == trial_id))
        (elsewhere,) = session.exec(select(TrialReport.id).where(
            TrialReport.trial_id == other_id))
        later = TrialReport(trial_id=trial_id, pmid=90000003, citation="Doe J. Blood 2027",
                            year=2027)
        session.add(later)
        session.commit()
        later_id = later.id
    assert chosen(f"/trials/{other_id}") == [str(elsewhere)]
    assert chosen(f"/trials/{trial_id}") == []
    assert chosen(f"/trials/{trial_id}?report={later_id}") == [str(later_id)]
    assert chosen(f"/trials/{trial_id}?report={only}") == [str(only)]
    assert chosen(f"/trials/{trial_id}?report={elsewhere}") == []  # another trial's report
