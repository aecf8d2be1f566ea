"""Risk of bias (Cochrane RoB 2) per trial and endpoint: the overall rule and the checks
(``store.bias``), the append-only history, the trial page's section and form, the JSON API, the
metafor export's column, and migration 0004 — over the real app and database (SQLite, or
PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import test_meta_export
import test_web
from fastapi.testclient import TestClient
from migration_steps import alembic_config
from sqlalchemy import inspect, text
from sqlmodel import Session, col, select
from test_web import as_role, csrf_from, db
from test_web_api import _token
from test_web_evidence import _trial

from reports.export_metafor import CSV_COLUMNS, write_metafor_export
from screening.web.extraction import ENDPOINTS as EXTRACTION_ENDPOINTS
from store.bias import (
    DOMAINS,
    ENDPOINTS,
    JUDGMENT_LABELS,
    JUDGMENTS,
    AssessmentError,
    add_assessment,
    assessment_history,
    current_assessment,
    current_assessments,
    suggested_overall,
    validate_assessment,
)
from store.errors import ValidationError
from store.models import AuditLog, BiasAssessment, Estimate, Trial, User, utcnow

app = test_web.app
users = test_web.users
pooled = test_meta_export.pooled_fixture

KEYS = ("randomization", "deviations", "missing_data", "measurement", "reporting")
ONE_OF = "low, some_concerns or high"


def _domains(**judgments: str) -> dict[str, dict[str, str]]:
    """Every domain low with a support text, except those named."""
    return {key: {"judgment": judgments.get(key, "low"), "support": f"{key}: fine"}
            for key in KEYS}


def _fields(**kwargs: Any) -> dict[str, str]:
    """The fields AssessmentError names for ``validate_assessment(**kwargs)``."""
    args = {"endpoint": "PFS", "domains": _domains(), **kwargs}
    with pytest.raises(AssessmentError) as caught:
        validate_assessment(**args)
    assert isinstance(caught.value, ValidationError) and caught.value.http_status == 400
    return caught.value.fields


# ----------------------------------------------------------------------------- the rules
def test_the_domains_judgments_and_endpoints_are_rob2s() -> None:
    assert list(DOMAINS) == list(KEYS)
    assert list(DOMAINS.values()) == [
        "Bias arising from the randomization process",
        "Bias due to deviations from intended interventions",
        "Bias due to missing outcome data",
        "Bias in measurement of the outcome",
        "Bias in selection of the reported result"]
    assert JUDGMENTS == ("low", "some_concerns", "high")
    # an assessment is for an endpoint an estimate can have
    assert ENDPOINTS == EXTRACTION_ENDPOINTS == ("PFS", "EFS", "TTP", "OS")


def test_suggested_overall_follows_the_rob2_algorithm() -> None:
    assert suggested_overall(_domains()) == "low"
    assert suggested_overall(_domains(missing_data="some_concerns")) == "some_concerns"
    # several domains with some concerns are still "some concerns" by the algorithm alone
    assert suggested_overall(_domains(randomization="some_concerns", deviations="some_concerns",
                                      reporting="some_concerns")) == "some_concerns"
    assert suggested_overall(_domains(measurement="high")) == "high"
    assert suggested_overall(_domains(randomization="some_concerns",
                                      measurement="high")) == "high"
    # four domains are not five: no suggestion that would look like a full judgment
    partial = {k: v for k, v in _domains().items() if k != "reporting"}
    with pytest.raises(AssessmentError) as caught:
        suggested_overall(partial)
    assert caught.value.fields == {"domains.reporting": (
        f"is missing: judge bias in selection of the reported result ({ONE_OF})")}


def test_a_blank_overall_takes_the_suggestion_and_a_given_one_is_kept() -> None:
    for blank in (None, "", "  "):
        checked = validate_assessment(endpoint="OS", domains=_domains(deviations="high"),
                                      overall=blank)
        assert (checked.overall, checked.suggested, checked.overall_from_suggestion) == (
            "high", "high", True)
    given = validate_assessment(endpoint=" PFS ", domains=_domains(reporting="some_concerns"),
                                overall="some_concerns", overall_note="  as the domains  ")
    assert (given.endpoint, given.overall, given.overall_note) == (
        "PFS", "some_concerns", "as the domains")
    assert given.overall_from_suggestion is False
    assert list(given.domains) == list(KEYS)
    assert given.domains["reporting"] == {"judgment": "some_concerns",
                                          "support": "reporting: fine"}


def test_an_overall_lower_than_the_worst_domain_is_refused() -> None:
    assert _fields(domains=_domains(missing_data="some_concerns", reporting="some_concerns"),
                   overall="low") == {"overall": (
        "“Low” is lower than the worst domain judgment (“Some concerns” for bias due to missing "
        "outcome data; bias in selection of the reported result): RoB 2's overall judgment is "
        "at least the worst domain's")}
    assert _fields(domains=_domains(randomization="high"), overall="some_concerns",
                   overall_note="we think it is fine") == {"overall": (
        "“Some concerns” is lower than the worst domain judgment (“High” for bias arising from "
        "the randomization process): RoB 2's overall judgment is at least the worst domain's")}
    # nor above "low" when every domain is low: that is not RoB 2 either
    for overall in ("some_concerns", "high"):
        assert _fields(overall=overall, overall_note="gut feeling") == {"overall": (
            f"“{JUDGMENT_LABELS[overall]}” is higher than the domains allow: every domain is "
            "low, and RoB 2 judges such a result low overall")}


def test_some_concerns_may_be_raised_to_high_only_with_a_note() -> None:
    concerns = _domains(deviations="some_concerns", missing_data="some_concerns")
    message = ("is required to judge overall 'high' when no domain is high: say why the "
               "concerns together put the result at high risk")
    for note in (None, "", " \r\n "):
        assert _fields(domains=concerns, overall="high", overall_note=note) == {
            "overall_note": message}
    raised = validate_assessment(endpoint="PFS", domains=concerns, overall="high",
                                 overall_note="Open-label and 20% lost to follow-up.")
    assert (raised.overall, raised.suggested) == ("high", "some_concerns")
    assert raised.overall_note == "Open-label and 20% lost to follow-up."
    # one domain's concerns are not "several domains": never high, note or no note
    one = _domains(deviations="some_concerns")
    assert _fields(domains=one, overall="high", overall_note="Open-label.") == {"overall": (
        "“High” needs a domain at high risk or some concerns in several domains, and only "
        "bias due to deviations from intended interventions has some concerns: RoB 2 judges "
        "such a result “Some concerns” overall (or judge that domain high, if its concerns "
        "are that serious)")}
    # "high" that the domains give needs no note
    assert validate_assessment(endpoint="PFS", domains=_domains(deviations="high"),
                               overall="high").overall_note is None


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"endpoint": None}, "endpoint", "is required: one of PFS, EFS, TTP, OS"),
    ({"endpoint": " "}, "endpoint", "is required: one of PFS, EFS, TTP, OS"),
    ({"endpoint": "DFS"}, "endpoint", "'DFS' is not an endpoint: use one of PFS, EFS, TTP, OS"),
    ({"endpoint": 3}, "endpoint", "3 is not an endpoint: use one of PFS, EFS, TTP, OS"),
    ({"domains": None}, "domains", "must be an object with the five RoB 2 domains: "
                                   "randomization, deviations, missing_data, measurement, "
                                   "reporting"),
    ({"domains": ["low"] * 5}, "domains", "must be an object with the five RoB 2 domains: "
                                          "randomization, deviations, missing_data, "
                                          "measurement, reporting"),
    ({"domains": {**_domains(), "blinding": {"judgment": "low"}}}, "domains",
     "unknown domain 'blinding': the RoB 2 domains are randomization, deviations, "
     "missing_data, measurement, reporting"),
    ({"domains": {k: v for k, v in _domains().items() if k != "missing_data"}},
     "domains.missing_data", f"is missing: judge bias due to missing outcome data ({ONE_OF})"),
    ({"domains": {**_domains(), "measurement": "low"}}, "domains.measurement",
     "must be an object with judgment and support"),
    ({"domains": {**_domains(), "measurement": {"judgment": "low", "label": "x"}}},
     "domains.measurement", "unknown field 'label': a domain has judgment and support"),
    ({"domains": {**_domains(), "deviations": {"support": "no judgment"}}},
     "domains.deviations.judgment",
     "is required for bias due to deviations from intended interventions: choose low, some "
     "concerns or high"),
    ({"domains": {**_domains(), "deviations": {"judgment": "", "support": ""}}},
     "domains.deviations.judgment",
     "is required for bias due to deviations from intended interventions: choose low, some "
     "concerns or high"),
    ({"domains": _domains(randomization="moderate")}, "domains.randomization.judgment",
     f"'moderate' is not a judgment: use {ONE_OF}"),
    ({"domains": _domains(randomization="Low")}, "domains.randomization.judgment",
     f"'Low' is not a judgment: use {ONE_OF}"),
    ({"domains": {**_domains(), "reporting": {"judgment": "low", "support": 7}}},
     "domains.reporting.support", "must be text"),
    ({"domains": {**_domains(), "reporting": {"judgment": "low", "support": "x" * 4001}}},
     "domains.reporting.support", "is longer than 4000 characters"),
    ({"overall": "moderate"}, "overall",
     f"'moderate' is not a judgment: use {ONE_OF}, or leave it blank for the judgment the "
     "domains give"),
    ({"overall": True}, "overall",
     f"True is not a judgment: use {ONE_OF}, or leave it blank for the judgment the domains "
     "give"),
    ({"overall_note": ["why"]}, "overall_note", "must be text"),
    ({"overall_note": "y" * 4001}, "overall_note", "is longer than 4000 characters"),
])
def test_each_bad_field_is_named_with_its_message(kwargs: dict[str, Any], field: str,
                                                  message: str) -> None:
    args = {"endpoint": "PFS", "domains": _domains(), **kwargs}
    with pytest.raises(AssessmentError) as caught:
        validate_assessment(**args)
    assert caught.value.fields == {field: message}
    assert caught.value.one_line() == f"{field}: {message}"


def test_every_problem_is_named_at_once() -> None:
    fields = _fields(endpoint="DFS", domains={**_domains(randomization="moderate"),
                                              "reporting": {"judgment": ""}},
                     overall="medium")
    assert list(fields) == ["endpoint", "domains.randomization.judgment",
                            "domains.reporting.judgment", "overall"]


# ----------------------------------------------------------------------------- the store
def _people(session: Session) -> tuple[Trial, Trial, User, User]:
    one = Trial(name="Trial One", drug="lenalidomide", setting="post_asct")
    two = Trial(name="Trial Two", drug="thalidomide", setting="non_transplant")
    ann = User(email="ann@example.org", role="curator")
    bob = User(email="bob@example.org", role="admin")
    session.add_all([one, two, ann, bob])
    session.flush()
    return one, two, ann, bob


def test_assessments_are_appended_and_the_newest_is_current(ctx: Any) -> None:
    with ctx.sessions() as s:
        one, two, ann, bob = _people(s)
        first = add_assessment(s, trial=one, user=ann, assessment=validate_assessment(
            endpoint="PFS", domains=_domains(missing_data="some_concerns")))
        other = add_assessment(s, trial=one, user=ann, assessment=validate_assessment(
            endpoint="OS", domains=_domains()))
        elsewhere = add_assessment(s, trial=two, user=bob, assessment=validate_assessment(
            endpoint="PFS", domains=_domains(deviations="high")))
        second = add_assessment(s, trial=one, user=bob, assessment=validate_assessment(
            endpoint="PFS", domains=_domains(missing_data="some_concerns",
                                             measurement="some_concerns"),
            overall="high", overall_note="two domains with concerns"))
        s.commit()
        ids = (one.id, two.id, first.id, other.id, elsewhere.id, second.id, bob.id)
    one_id, two_id, first_id, other_id, elsewhere_id, second_id, bob_id = ids
    with ctx.sessions() as s:
        current = current_assessments(s)
        assert {key: row.id for key, row in current.items()} == {
            (one_id, "PFS"): second_id, (one_id, "OS"): other_id, (two_id, "PFS"): elsewhere_id}
        assert (current[(one_id, "PFS")].overall, current[(one_id, "PFS")].assessed_by) == (
            "high", bob_id)
        assert set(current_assessments(s, trial_ids=[two_id])) == {(two_id, "PFS")}
        assert current_assessments(s, trial_ids=[]) == {}
        found = current_assessment(s, one_id, "PFS")
        assert found is not None and found.id == second_id
        assert current_assessment(s, one_id, "EFS") is None
        # the history keeps every version, unchanged, newest first
        assert [r.id for r in assessment_history(s, one_id)] == [second_id, other_id, first_id]
        old = s.get(BiasAssessment, first_id)
        assert old is not None and old.overall == "some_concerns"
        assert old.domains["missing_data"] == {"judgment": "some_concerns",
                                               "support": "missing_data: fine"}
        assert old.created_at.tzinfo is not None
        audits = s.exec(select(AuditLog).where(AuditLog.action == "bias.assess")
                        .order_by(col(AuditLog.id))).all()
        assert [(a.actor, a.object_id, a.details["endpoint"], a.details["replaces"])
                for a in audits] == [
            ("ann@example.org", str(first_id), "PFS", None),
            ("ann@example.org", str(other_id), "OS", None),
            ("bob@example.org", str(elsewhere_id), "PFS", None),
            ("bob@example.org", str(second_id), "PFS", first_id)]
        assert audits[-1].details["overall"] == "high"
        assert audits[-1].details["suggested"] == "some_concerns"
        assert audits[-1].details["domains"]["measurement"] == "some_concerns"


# ----------------------------------------------------------------------------- the page
def _with_estimate(app: Any, endpoint: str = "PFS", **overrides: Any) -> int:
    trial_id = _trial(app, **overrides)
    with db(app) as session:
        session.add(Estimate(trial_id=trial_id, endpoint=endpoint, setting="post_asct",
                             hr=0.5, ci_low=0.4, ci_high=0.625, log_hr=math.log(0.5), se=0.11))
        session.commit()
    return trial_id


def _form(**changes: str) -> dict[str, str]:
    """The form as a curator fills it: every domain low with support, overall blank.
    ``changes`` use the form's field names with ``__`` for the dots."""
    data = {"endpoint": "PFS", "overall": "", "overall_note": ""}
    for key in KEYS:
        data[f"domains.{key}.judgment"] = "low"
        data[f"domains.{key}.support"] = f"{key}: fine"
    data.update({name.replace("__", "."): value for name, value in changes.items()})
    return data


def _assess(c: TestClient, trial_id: int, **changes: str) -> Any:
    token = csrf_from(c.get(f"/trials/{trial_id}").text)
    return c.post(f"/trials/{trial_id}/bias", data={**_form(**changes), "csrf_token": token},
                  follow_redirects=False)


def _stored(app: Any) -> list[BiasAssessment]:
    with db(app) as session:
        return list(session.exec(select(BiasAssessment).order_by(col(BiasAssessment.id))))


def _section(html: str) -> str:
    return html.split('id="risk-of-bias"')[1]


def test_an_assessment_of_an_endpoint_the_trial_has_no_estimate_of_says_so(
        app: Any, users: dict[str, str]) -> None:
    # CALGB 100104's result is TTP: an assessment saved under PFS was used by no analysis,
    # which went on calling the trial not assessed, and nothing said so.
    trial_id = _with_estimate(app, endpoint="TTP")
    curator = as_role(app, users, "curator")
    assert _assess(curator, trial_id).status_code == 303
    html = curator.get(f"/trials/{trial_id}").text
    assert ("Risk of bias for PFS saved: overall Low (the judgment the domains give). TEST-1 "
            "has no current PFS estimate: the analyses use its TTP result, which this "
            "assessment does not cover (RoB 2 judges one result: assess TTP too).") in (
        html.replace("&#39;", "'")), html
    assert _assess(curator, trial_id, endpoint="TTP").status_code == 303
    html = curator.get(f"/trials/{trial_id}").text
    assert "Risk of bias for TTP saved: overall Low" in html
    assert "has no current TTP estimate" not in html


def test_curator_assesses_on_the_trial_page_and_history_is_kept(app: Any,
                                                                 users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    curator = as_role(app, users, "curator")
    page = _section(curator.get(f"/trials/{trial_id}").text)
    assert "<h2 id=\"rob-heading\">Risk of bias (RoB 2)</h2>" in page
    assert 'id="rob-PFS"' in page and "Not assessed yet." in page  # an endpoint with estimates
    assert f'action="/trials/{trial_id}/bias"' in page
    assert 'name="domains.missing_data.judgment"' in page
    assert 'name="domains.reporting.support"' in page and 'name="overall_note"' in page

    response = _assess(curator, trial_id, domains__missing_data__judgment="some_concerns",
                       domains__missing_data__support="12% lost to follow-up\nsimilar by arm")
    assert response.status_code == 303
    assert response.headers["location"] == f"/trials/{trial_id}#rob-PFS"
    html = curator.get(f"/trials/{trial_id}").text
    assert ("Risk of bias for PFS saved: overall Some concerns (the judgment the domains "
            "give).") in html
    (first,) = _stored(app)
    assert (first.endpoint, first.overall, first.overall_note) == ("PFS", "some_concerns", None)
    assert first.domains["missing_data"] == {
        "judgment": "some_concerns", "support": "12% lost to follow-up\nsimilar by arm"}
    current = _section(html).split('id="rob-PFS"')[1]
    assert f'data-assessment="{first.id}"' in current
    assert (f'<span class="rob-assessor">{users["curator"]}</span>') in current
    row = current.split('data-domain="missing_data"')[1].split("</tr>")[0]
    assert "Bias due to missing outcome data" in row and ">Some concerns</td>" in row
    assert "12% lost to follow-up\nsimilar by arm</td>" in row
    assert "Earlier assessments" not in current

    # a second assessment replaces it; the first stays, collapsed under the current one
    again = _assess(curator, trial_id, domains__missing_data__judgment="some_concerns",
                    domains__deviations__judgment="some_concerns", overall="high",
                    overall_note="Open-label, & concerns add up")
    assert again.status_code == 303
    html = curator.get(f"/trials/{trial_id}").text
    assert "Risk of bias for PFS saved: overall High. It replaces the assessment of " in html
    first_again, second = _stored(app)
    assert first_again.overall == "some_concerns"  # never changed
    section = _section(html).split('id="rob-PFS"')[1]
    current_part, history = section.split('<details class="rob-history">')
    assert f'data-assessment="{second.id}"' in current_part
    assert f'data-assessment="{first.id}"' not in current_part
    assert "Earlier assessments of PFS (1)" in history
    assert f'data-assessment="{first.id}"' in history.split("</details>")[0]
    assert "Open-label, &amp; concerns add up" in current_part
    audits = _audits(app)
    assert [(a.actor, a.details["replaces"]) for a in audits] == [
        (users["curator"], None), (users["curator"], first.id)]

    # the same form sent again is the current assessment: no third row, no audit entry
    assert _assess(curator, trial_id, domains__missing_data__judgment="some_concerns",
                   domains__deviations__judgment="some_concerns", overall="high",
                   overall_note="Open-label, & concerns add up").status_code == 303
    html = curator.get(f"/trials/{trial_id}").text
    assert "Risk of bias for PFS: your assessment of " in html
    assert "says the same; nothing changed." in html
    assert len(_stored(app)) == 2 and len(_audits(app)) == 2


def _audits(app: Any) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == "bias.assess")
                                 .order_by(col(AuditLog.id))))


def test_the_form_needs_a_login_a_curator_and_its_token(app: Any, users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    anonymous = TestClient(app, raise_server_exceptions=False)
    page = anonymous.get(f"/trials/{trial_id}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    token = csrf_from(anonymous.get("/login").text)  # a session, but nobody logged in
    response = anonymous.post(f"/trials/{trial_id}/bias", data={**_form(), "csrf_token": token},
                              follow_redirects=False)
    assert response.status_code == 401 and "please log in" in response.text

    viewer = as_role(app, users, "viewer")
    seen = _section(viewer.get(f"/trials/{trial_id}").text)
    assert "Risk of bias (RoB 2)" in seen and "Not assessed yet." in seen
    assert "/bias" not in seen and "Assess risk of bias" not in seen  # no form for viewers
    denied = _assess(viewer, trial_id)
    assert denied.status_code == 403
    assert f"{users['viewer']} is a viewer; this needs the curator role" in denied.text

    curator = as_role(app, users, "curator")
    for data in (_form(), {**_form(), "csrf_token": "z" * 43}):
        refused = curator.post(f"/trials/{trial_id}/bias", data=data)
        assert refused.status_code == 403
        assert "security token is missing or does not match" in refused.text
    assert _stored(app) == [] and _audits(app) == []
    # an admin may assess too
    assert _assess(as_role(app, users, "admin"), trial_id).status_code == 303


def test_a_refused_form_names_the_field_and_keeps_what_was_typed(app: Any,
                                                                  users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    curator = as_role(app, users, "curator")
    response = _assess(curator, trial_id, endpoint="OS",
                       domains__randomization__judgment="some_concerns",
                       domains__randomization__support="allocation <not> described",
                       domains__reporting__judgment="", overall="low",
                       overall_note="typed & kept")
    assert response.status_code == 400
    html = response.text
    assert "Please correct the marked fields: the assessment was not saved." in html
    assert ("Judgment: is required for bias in selection of the reported result: choose low, "
            "some concerns or high") in html  # the words of the form's choices, not codes
    assert '<details class="rob-assess" id="rob-form" open>' in html
    # what was typed is still there, escaped
    assert "allocation &lt;not&gt; described</textarea>" in html
    assert "typed &amp; kept</textarea>" in html
    assert '<option value="OS" selected>OS</option>' in html
    form = html.split('class="stacked rob-form"')[1]
    randomization = form.split('data-domain="randomization"')[1].split("</fieldset>")[0]
    assert '<option value="some_concerns" selected>Some concerns</option>' in randomization
    # with the domains complete, the overall judgment below the worst domain is named
    low = _assess(curator, trial_id, domains__randomization__judgment="some_concerns",
                  overall="low")
    assert low.status_code == 400
    assert ("Overall judgment: “Low” is lower than the worst domain judgment (“Some "
            "concerns” for bias arising from the randomization process): RoB 2&#39;s overall "
            "judgment is at least the worst domain&#39;s") in low.text
    raised = _assess(curator, trial_id, domains__randomization__judgment="some_concerns",
                     domains__missing_data__judgment="some_concerns", overall="high")
    assert raised.status_code == 400
    assert "Note: is required to judge overall &#39;high&#39; when no domain is high" in (
        raised.text)
    assert _stored(app) == []


def test_html_in_a_support_text_is_escaped_on_the_page(app: Any, users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    curator = as_role(app, users, "curator")
    script = "<script>alert(1)</script>"
    assert _assess(curator, trial_id, domains__measurement__support=script,
                   overall_note='"><img src=x onerror=alert(2)>', overall="low").status_code == 303
    for role in ("curator", "viewer"):
        html = as_role(app, users, role).get(f"/trials/{trial_id}").text
        assert script not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_re_assess_starts_from_the_current_assessment(app: Any, users: dict[str, str]) -> None:
    trial_id = _with_estimate(app, endpoint="OS")
    curator = as_role(app, users, "curator")
    assert _assess(curator, trial_id, endpoint="OS", domains__deviations__judgment="high",
                   domains__deviations__support="open label, switching").status_code == 303
    page = curator.get(f"/trials/{trial_id}").text
    assert f'href="/trials/{trial_id}?assess=OS#rob-form"' in page
    assert "Re-assess OS" in page
    assert "Re-assess" not in as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    filled = curator.get(f"/trials/{trial_id}?assess=OS").text.split('class="stacked rob-form"')[1]
    assert '<option value="OS" selected>OS</option>' in filled
    assert "open label, switching</textarea>" in filled
    assert '<option value="high" selected>High</option>' in filled
    # an endpoint without an assessment opens the form with it chosen; an unknown one blank
    blank = curator.get(f"/trials/{trial_id}?assess=TTP").text
    assert '<option value="TTP" selected>TTP</option>' in blank
    assert ' selected>' not in curator.get(f"/trials/{trial_id}?assess=XX").text.split(
        'class="stacked rob-form"')[1]


# ----------------------------------------------------------------------------- the API
@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _body(**changes: Any) -> dict[str, Any]:
    return {"endpoint": "PFS", "domains": _domains(), **changes}


def test_api_assesses_and_lists_the_current_assessment(app: Any, api: TestClient,
                                                       users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    headers = _token(app, users["curator"])
    url = f"/api/trials/{trial_id}/risk-of-bias"
    response = api.post(url, headers=headers, json=_body(
        domains=_domains(deviations="some_concerns", missing_data="some_concerns")))
    assert response.status_code == 201, response.text
    body = response.json()
    with db(app) as session:
        curator_id = session.exec(select(User.id).where(User.email == users["curator"])).one()
    assert body["trial_id"] == trial_id and body["endpoint"] == "PFS"
    assert (body["overall"], body["suggested_overall"], body["replaces"]) == (
        "some_concerns", "some_concerns", None)
    assert body["assessed_by"] == curator_id and body["created_at"].startswith(
        str(utcnow().year))
    assert list(body["domains"]) == list(KEYS)
    assert body["message"] == ("Risk of bias for PFS saved: overall Some concerns (the "
                               "judgment the domains give).")

    raised = api.post(url, headers=headers, json=_body(
        domains=_domains(deviations="some_concerns", missing_data="some_concerns"),
        overall="high", overall_note="concerns add up"))
    assert raised.status_code == 201 and raised.json()["replaces"] == body["id"]
    os_ = api.post(url, headers=_token(app, users["admin"]), json=_body(endpoint="OS"))
    assert os_.status_code == 201

    listed = {t["id"]: t for t in api.get("/api/trials", headers=_token(
        app, users["viewer"])).json()["trials"]}
    mine = listed[trial_id]
    assert {"id", "name", "reports", "estimates", "registry_ids"} <= set(mine)  # still there
    rob = mine["risk_of_bias"]
    assert list(rob) == ["PFS", "OS"]  # current only, endpoints in order
    assert rob["PFS"] == {
        "overall": "high", "overall_note": "concerns add up",
        "domains": _domains(deviations="some_concerns", missing_data="some_concerns"),
        "assessed_by": curator_id, "created_at": raised.json()["created_at"],
        "assessors": 1, "disagreements": []}
    assert rob["OS"]["overall"] == "low"
    # the trial's JSON, assessments and all, may still be sent back to edit the trial
    edited = api.patch(f"/api/trials/{trial_id}", headers=headers, json={**mine, "notes": "x"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["changed"] == {"notes": {"old": None, "new": "x"}}
    # a trial never assessed has an empty object
    other = _trial(app, name="Unassessed")
    assert {t["id"]: t for t in api.get("/api/trials", headers=headers).json()["trials"]}[
        other]["risk_of_bias"] == {}
    # what GET gives may be sent back (with an endpoint) as a new assessment
    back = api.post(url, headers=headers, json={**rob["OS"], "endpoint": "OS"})
    assert back.status_code == 201 and back.json()["replaces"] == os_.json()["id"]


def test_api_refuses_bad_input_viewers_and_unknown_trials(app: Any, api: TestClient,
                                                          users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    headers = _token(app, users["curator"])
    url = f"/api/trials/{trial_id}/risk-of-bias"
    cases: list[tuple[Any, str]] = [
        (_body(endpoint="DFS"),
         "endpoint: 'DFS' is not an endpoint: use one of PFS, EFS, TTP, OS"),
        (_body(domains=_domains(missing_data="some_concerns"), overall="low"),
         "overall: “Low” is lower than the worst domain judgment (“Some concerns” for bias due "
         "to missing outcome data): RoB 2's overall judgment is at least the worst domain's"),
        (_body(domains=_domains(missing_data="some_concerns", reporting="some_concerns"),
               overall="high"),
         "overall_note: is required to judge overall 'high' when no domain is high: say why "
         "the concerns together put the result at high risk"),
        (_body(domains={k: v for k, v in _domains().items() if k != "randomization"}),
         "domains.randomization: is missing: judge bias arising from the randomization "
         f"process ({ONE_OF})"),
        (_body(overal="high"),
         "body: unknown field 'overal': an assessment has endpoint, domains, overall, "
         "overall_note"),
    ]
    for body, message in cases:
        response = api.post(url, headers=headers, json=body)
        assert response.status_code == 400, body
        assert response.json() == {"code": "invalid",
                                   "error": message}
    for raw in (b"[1, 2]", b"not json"):
        response = api.post(url, headers={**headers, "content-type": "application/json"},
                            content=raw)
        assert response.status_code == 400
    viewer = api.post(url, headers=_token(app, users["viewer"]), json=_body())
    assert viewer.status_code == 403
    assert viewer.json() == {"code": "forbidden",
                             "error": f"{users['viewer']} is a viewer; this needs the curator "
                                      "role (ask an admin to change your role)"}
    assert api.post(url, json=_body()).status_code == 401
    missing = api.post("/api/trials/9999/risk-of-bias", headers=headers, json=_body())
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "error": "trial 9999 does not exist"}
    assert _stored(app) == []


# ----------------------------------------------------------------------------- the export
def test_metafor_export_has_the_current_overall_judgment(pooled: Any, tmp_path: Path) -> None:
    with pooled.sessions() as s:
        trials = {t.name: t for t in s.exec(select(Trial))}
        user = User(email="rob@example.org", role="curator")
        s.add(user)
        s.flush()

        def judge(name: str, endpoint: str, **domains: str) -> None:
            add_assessment(s, trial=trials[name], user=user, assessment=validate_assessment(
                endpoint=endpoint, domains=_domains(**domains)))

        judge("Trial A", "PFS", randomization="some_concerns")
        judge("Trial A", "PFS", randomization="high")  # the newer one counts
        judge("Trial A", "OS", deviations="some_concerns")  # A has no OS estimate
        judge("Trial B", "EFS")  # B's estimate is EFS, pooled in the PFS analyses
        judge("Trial B", "PFS", measurement="high")  # not its endpoint: not used
        judge("Trial E", "OS", reporting="some_concerns")
        s.commit()
    csv_path, _ = write_metafor_export(pooled, tmp_path)
    with csv_path.open() as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, line, strict=True)) for line in reader]
    assert header == list(CSV_COLUMNS)
    assert header[-2:] == ["derivation_inputs_json", "risk_of_bias"]  # appended at the end
    judged = {(r["analysis"], r["study"]): r["risk_of_bias"] for r in rows}
    assert judged[("thalidomide/PFS/post_asct", "Trial A")] == "high"
    assert judged[("thalidomide/PFS/post_asct", "Trial B")] == "low"
    assert judged[("thalidomide/PFS/post_asct", "Trial C")] == ""
    assert judged[("thalidomide/PFS/non_transplant", "Trial D")] == ""
    assert judged[("thalidomide/OS/post_asct", "Trial E")] == "some_concerns"
    assert {v for (analysis, study), v in judged.items() if study == "Trial A"} == {"high"}


# ----------------------------------------------------------------------------- migration
@pytest.mark.empty_database
def test_database_at_0003_upgrades_to_0004_and_back(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0003")
        with engine.begin() as conn:
            assert "bias_assessments" not in inspect(conn).get_table_names()
            # trials and users did not change in 0004: the model's tables are the old ones
            conn.execute(Trial.__table__.insert().values(  # type: ignore[attr-defined]
                id=1, name="Old trial", registry_ids=[], drug="thalidomide",
                setting="post_asct", is_strategy=False, created_at=utcnow()))
            conn.execute(User.__table__.insert().values(  # type: ignore[attr-defined]
                id=1, email="old@example.org", role="curator", password_hash="",
                active=True, created_at=utcnow(), session_version=0))
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert "bias_assessments" in inspect(conn).get_table_names()
            indexes = {i["name"] for i in inspect(conn).get_indexes("bias_assessments")}
            assert "ix_bias_assessments_trial_id" in indexes
        with Session(engine) as session:
            trial, user = session.get(Trial, 1), session.get(User, 1)
            assert trial is not None and user is not None
            row = add_assessment(session, trial=trial, user=user, assessment=validate_assessment(
                endpoint="PFS", domains=_domains(reporting="some_concerns")))
            session.commit()
            assert {k: r.id for k, r in current_assessments(session).items()} == {
                (1, "PFS"): row.id}
        command.downgrade(cfg, "0003")
        with engine.connect() as conn:
            assert "bias_assessments" not in inspect(conn).get_table_names()
            assert conn.execute(text("SELECT count(*) FROM trials")).scalar() == 1
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                "0003")
        command.upgrade(cfg, "head")  # and up again, empty
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM bias_assessments")).scalar() == 0
    finally:
        engine.dispose()


def test_the_documented_api_error_is_the_one_the_api_gives(app: Any, api: TestClient,
                                                            users: dict[str, str]) -> None:
    """docs/curation.md showed `overall: 'low' is lower than the worst domain judgment
    ('some_concerns' in missing_data): …`, a message the API never gave."""
    from conftest import ROOT

    trial_id = _with_estimate(app)
    response = api.post(f"/api/trials/{trial_id}/risk-of-bias",
                        headers=_token(app, users["curator"]),
                        json=_body(domains=_domains(missing_data="some_concerns"), overall="low"))
    assert response.status_code == 400
    error = response.json()["error"]
    docs = " ".join((ROOT / "docs" / "curation.md").read_text().split())
    assert f"(e.g. `{error}`)" in docs
    assert "signalling questions" in docs  # and says they are not recorded
