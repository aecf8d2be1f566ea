"""Whether the people who assessed a trial's endpoint (RoB 2) agree: ``store.bias.
assessor_agreement`` on rows built here, the trial page's line and warning, and the
``assessors`` / ``disagreements`` of ``GET /api/trials`` — over the real app and database
(SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL). The current assessment, the one pooled,
stays the newest row whoever saved it."""

from __future__ import annotations

import random
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import select
from test_risk_of_bias import _domains, _people, _section, _with_estimate
from test_web import as_role, db
from test_web_api import _token

from store.bias import (
    OVERALL,
    add_assessment,
    assessor_agreement,
    current_assessment,
    history_by_endpoint,
    validate_assessment,
)
from store.models import BiasAssessment, Trial, User

app = test_web.app
users = test_web.users

ANN, BOB, CY = 11, 12, 13  # user ids of the assessors of the rows built below


def _row(row_id: int, user_id: int, *, overall: str | None = None, endpoint: str = "PFS",
         trial_id: int = 1, **judgments: str) -> BiasAssessment:
    """A stored-looking assessment: every domain low except those named, the overall judgment
    the domains give unless given."""
    checked = validate_assessment(endpoint=endpoint, domains=_domains(**judgments),
                                  overall=overall,
                                  overall_note="raised" if overall == "high" else None)
    return BiasAssessment(id=row_id, trial_id=trial_id, endpoint=checked.endpoint,
                          domains=checked.domains, overall=checked.overall,
                          overall_note=checked.overall_note, assessed_by=user_id)


# ----------------------------------------------------------------------------- the function
def test_one_assessor_has_nobody_to_agree_with() -> None:
    only = _row(1, ANN, missing_data="high")
    agreement = assessor_agreement([only])
    assert agreement.assessors == 1 and agreement.agree is None
    assert agreement.latest == {ANN: only} and agreement.disagreements == ()
    nobody = assessor_agreement([])
    assert (nobody.assessors, nobody.agree, nobody.latest) == (0, None, {})


def test_two_assessors_who_agree_on_every_judgment() -> None:
    ann = _row(1, ANN, deviations="some_concerns")
    bob = _row(2, BOB, deviations="some_concerns")
    bob.domains["deviations"]["support"] = "in other words"  # support texts are not compared
    agreement = assessor_agreement([bob, ann])
    assert agreement.assessors == 2 and agreement.agree is True
    assert agreement.disagreements == ()
    assert list(agreement.latest) == [ANN, BOB]  # the current assessment's assessor last


def test_two_assessors_who_disagree_on_domains() -> None:
    # both "some concerns" overall, for different reasons: the domains differ, overall not
    ann = _row(1, ANN, missing_data="some_concerns")
    bob = _row(2, BOB, measurement="some_concerns")
    agreement = assessor_agreement([ann, bob])
    assert agreement.assessors == 2 and agreement.agree is False
    assert [(d.domain, d.label, d.judgments) for d in agreement.disagreements] == [
        ("missing_data", "Bias due to missing outcome data",
         {ANN: "some_concerns", BOB: "low"}),
        ("measurement", "Bias in measurement of the outcome",
         {ANN: "low", BOB: "some_concerns"})]
    # a domain judged higher usually moves the overall judgment too: both are listed
    high = assessor_agreement([_row(1, ANN), _row(2, BOB, missing_data="high")])
    assert [(d.domain, d.judgments) for d in high.disagreements] == [
        ("missing_data", {ANN: "low", BOB: "high"}), (OVERALL, {ANN: "low", BOB: "high"})]
    assert high.disagreements[-1].label == "Overall judgment" and OVERALL == "overall"


def test_two_assessors_who_disagree_on_the_overall_judgment_only() -> None:
    concerns = {"deviations": "some_concerns", "missing_data": "some_concerns"}
    ann = _row(1, ANN, **concerns)
    bob = _row(2, BOB, overall="high", **concerns)  # raised to high, with a note
    agreement = assessor_agreement([ann, bob])
    assert agreement.agree is False
    assert [(d.domain, d.judgments) for d in agreement.disagreements] == [
        (OVERALL, {ANN: "some_concerns", BOB: "high"})]


def test_a_person_counts_once_with_their_latest_assessment() -> None:
    ann_first = _row(1, ANN, missing_data="high")
    bob = _row(2, BOB)
    ann_again = _row(3, ANN)  # ann changed her mind: now she agrees with bob
    rows = [ann_first, bob, ann_again]
    for order in (rows, rows[::-1], random.Random(4).sample(rows, 3)):
        agreement = assessor_agreement(order)
        assert agreement.assessors == 2 and agreement.agree is True
        assert agreement.latest == {BOB: bob, ANN: ann_again}
        assert list(agreement.latest) == [BOB, ANN]
    # nor does assessing twice make one person two assessors
    alone = assessor_agreement([ann_first, ann_again])
    assert alone.assessors == 1 and alone.agree is None and alone.latest == {ANN: ann_again}
    # and an earlier row of hers that bob disagrees with no longer counts, but a later one does
    changed = assessor_agreement([_row(1, ANN), _row(2, BOB), _row(3, ANN, reporting="high")])
    assert [d.domain for d in changed.disagreements] == ["reporting", OVERALL]


def test_three_assessors_every_judgment_is_listed() -> None:
    rows = [_row(1, ANN), _row(2, CY, missing_data="high"), _row(3, BOB)]
    agreement = assessor_agreement(rows)
    assert agreement.assessors == 3 and agreement.agree is False
    assert list(agreement.latest) == [ANN, CY, BOB]
    missing, overall = agreement.disagreements
    assert missing.judgments == {ANN: "low", CY: "high", BOB: "low"}
    assert missing.grouped() == [("low", [ANN, BOB]), ("high", [CY])]  # least risk first
    assert overall.domain == OVERALL and overall.grouped() == [("low", [ANN, BOB]),
                                                              ("high", [CY])]
    three = assessor_agreement([_row(1, ANN), _row(2, BOB), _row(3, CY)])
    assert three.assessors == 3 and three.agree is True


def test_rows_of_several_endpoints_or_unsaved_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="one trial's endpoint, not of 2"):
        assessor_agreement([_row(1, ANN), _row(2, BOB, endpoint="OS")])
    with pytest.raises(ValueError, match="one trial's endpoint, not of 2"):
        assessor_agreement([_row(1, ANN), _row(2, BOB, trial_id=2)])
    unsaved = _row(1, ANN)
    unsaved.id = None
    with pytest.raises(ValueError, match="save them first"):
        assessor_agreement([unsaved])


# ----------------------------------------------------------------------------- the query
def test_history_by_endpoint_groups_newest_first(ctx: Any) -> None:
    with ctx.sessions() as s:
        one, two, ann, bob = _people(s)

        def judge(trial: Trial, user: User, endpoint: str, **judgments: str) -> int:
            row = add_assessment(s, trial=trial, user=user, assessment=validate_assessment(
                endpoint=endpoint, domains=_domains(**judgments)))
            assert row.id is not None
            return row.id

        a = judge(one, ann, "PFS")
        b = judge(one, ann, "OS")
        c = judge(one, bob, "PFS", randomization="high")
        d = judge(two, bob, "PFS")
        s.commit()
        assert one.id is not None and two.id is not None
        grouped = history_by_endpoint(s)
        assert {key: [r.id for r in rows] for key, rows in grouped.items()} == {
            (one.id, "PFS"): [c, a], (one.id, "OS"): [b], (two.id, "PFS"): [d]}
        assert set(history_by_endpoint(s, trial_ids=[two.id])) == {(two.id, "PFS")}
        assert history_by_endpoint(s, trial_ids=[]) == {}
        # the first of each list is the current assessment, whoever's it is
        for (trial_id, endpoint), rows in grouped.items():
            current = current_assessment(s, trial_id, endpoint)
            assert current is not None and rows[0].id == current.id
        assert assessor_agreement(grouped[(one.id, "PFS")]).agree is False


# ----------------------------------------------------------------------------- the page
def _assess_as(app: Any, trial_id: int, email: str, endpoint: str = "PFS", **judgments: str,
               ) -> int:
    with db(app) as session:
        trial = session.get(Trial, trial_id)
        user = session.exec(select(User).where(User.email == email)).one()
        assert trial is not None
        row = add_assessment(session, trial=trial, user=user, assessment=validate_assessment(
            endpoint=endpoint, domains=_domains(**judgments)))
        session.commit()
        assert row.id is not None
        return row.id


def _endpoint(html: str, endpoint: str = "PFS") -> str:
    return _section(html).split(f'id="rob-{endpoint}"')[1].split('class="rob-endpoint"')[0]


def test_page_says_how_many_assessed_and_whether_they_agree(app: Any,
                                                            users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    viewer = as_role(app, users, "viewer")
    assert "rob-agreement" not in viewer.get(f"/trials/{trial_id}").text  # nothing assessed

    _assess_as(app, trial_id, users["curator"], missing_data="high")
    part = _endpoint(viewer.get(f"/trials/{trial_id}").text)
    assert "Assessed by one assessor (Cochrane recommends two)." in part
    assert "disagree" not in part

    # the same person again is still one assessor
    _assess_as(app, trial_id, users["curator"])
    assert "one assessor (Cochrane recommends two)" in _endpoint(
        viewer.get(f"/trials/{trial_id}").text)

    _assess_as(app, trial_id, users["admin"])
    part = _endpoint(viewer.get(f"/trials/{trial_id}").text)
    assert ("Assessed independently by 2 people: the two assessors agree on every domain "
            "and on the overall judgment.") in part
    assert "Cochrane recommends two" not in part and "disagree" not in part


def test_page_warns_of_each_disagreement_and_says_which_is_pooled(
        app: Any, users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    _assess_as(app, trial_id, users["curator"], deviations="some_concerns")
    newest = _assess_as(app, trial_id, users["admin"], missing_data="high")
    part = _endpoint(as_role(app, users, "viewer").get(f"/trials/{trial_id}").text)
    warning = part.split('class="rob-agreement rob-disagree"')[1].split("</div>")[0]
    assert "Assessed independently by 2 people." in warning
    assert "Warning: the assessors disagree</strong> on 3 judgments" in warning
    curator, admin = users["curator"], users["admin"]
    assert (f"Bias due to deviations from intended interventions: low ({admin}) vs some "
            f"concerns ({curator})") in warning
    assert f"Bias due to missing outcome data: low ({curator}) vs high ({admin})" in warning
    assert f"Overall judgment: some concerns ({curator}) vs high ({admin})" in warning
    assert "Bias arising from the randomization process" not in warning  # they agree there
    assert (f"The current (newest) assessment, by {admin}, is the one pooled until someone "
            "re-assesses to reconcile.") in warning
    # the warning stands before the current assessment, which is still the newest row
    assert part.index("rob-disagree") < part.index(f'data-assessment="{newest}"')
    assert f'data-assessment="{newest}"' in part.split('<details class="rob-history">')[0]

    # the curator re-assesses as the admin did: reconciled, the warning goes
    _assess_as(app, trial_id, users["curator"], missing_data="high")
    part = _endpoint(as_role(app, users, "viewer").get(f"/trials/{trial_id}").text)
    assert "disagree" not in part and "the two assessors agree" in part


def test_assessors_e_mail_addresses_are_escaped_in_the_warning(app: Any,
                                                               users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    odd = "<b>o'neil</b>&co@example.org"
    with db(app) as session:
        session.add(User(email=odd, role="curator"))
        session.commit()
    _assess_as(app, trial_id, odd, reporting="high")
    _assess_as(app, trial_id, users["curator"])
    html = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    warning = _endpoint(html).split('class="rob-agreement rob-disagree"')[1].split("</div>")[0]
    escaped = "&lt;b&gt;o&#39;neil&lt;/b&gt;&amp;co@example.org"
    assert f"Bias in selection of the reported result: low ({users['curator']}) vs high " \
           f"({escaped})" in warning
    assert odd not in html and "<b>o'neil" not in html


# ----------------------------------------------------------------------------- the API
@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_api_gives_assessors_and_disagreements(app: Any, api: TestClient,
                                               users: dict[str, str]) -> None:
    trial_id = _with_estimate(app)
    _assess_as(app, trial_id, users["curator"], measurement="some_concerns")
    _assess_as(app, trial_id, users["admin"], measurement="high")
    _assess_as(app, trial_id, users["curator"], endpoint="OS")
    with db(app) as session:
        ids = {email: session.exec(select(User.id).where(User.email == email)).one()
               for email in (users["curator"], users["admin"])}
    headers = _token(app, users["viewer"])
    listed = {t["id"]: t for t in api.get("/api/trials", headers=headers).json()["trials"]}
    rob = listed[trial_id]["risk_of_bias"]
    curator, admin = str(ids[users["curator"]]), str(ids[users["admin"]])
    assert rob["PFS"]["assessors"] == 2
    assert rob["PFS"]["disagreements"] == [
        {"domain": "measurement", "judgments": {curator: "some_concerns", admin: "high"}},
        {"domain": "overall", "judgments": {curator: "some_concerns", admin: "high"}}]
    # the existing keys are still those of the current (newest) assessment
    assert rob["PFS"]["overall"] == "high" and rob["PFS"]["assessed_by"] == ids[users["admin"]]
    assert {"overall", "overall_note", "domains", "created_at"} <= set(rob["PFS"])
    assert (rob["OS"]["assessors"], rob["OS"]["disagreements"]) == (1, [])
    # an entry with the new keys may still be sent back as a new assessment
    back = api.post(f"/api/trials/{trial_id}/risk-of-bias",
                    headers=_token(app, users["curator"]),
                    json={**rob["PFS"], "endpoint": "PFS"})
    assert back.status_code == 201, back.text
    again = {t["id"]: t for t in api.get("/api/trials", headers=headers).json()["trials"]}
    assert again[trial_id]["risk_of_bias"]["PFS"]["disagreements"] == []  # now reconciled
