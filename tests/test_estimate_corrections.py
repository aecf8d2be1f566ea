"""Correcting and withdrawing estimates: the web flow, the trail, and the pooled results."""

from __future__ import annotations

import math
import re
from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_web import as_role, csrf_from, db
from test_web_evidence import (
    _estimates,
    _post_estimate,
    _trial,
    _verify,
    second_curator,
    verified_by_second_person,
)

from reports.analyses import Analysis, Candidate, select_inputs
from screening.web.corrections import EstimateWithdrawnError, withdraw_estimate
from store.models import AuditLog, Estimate, PooledResult, User

app = test_web.app
users = test_web.users

LEN_PFS = "lenalidomide/PFS/post_asct"


def _one_estimate(app: Any, c: TestClient, **fields: str) -> tuple[int, Estimate]:
    """One estimate entered by ``c`` and verified by a second curator."""
    trial_id = _trial(app)
    fields = {"hr": "0.50", "ci_low": "0.40", "ci_high": "0.625", **fields}
    assert _post_estimate(c, trial_id, **fields).status_code == 303
    verified_by_second_person(app)
    (estimate,) = _estimates(app)
    assert estimate.verified
    return trial_id, estimate


def _withdraw(c: TestClient, trial_id: int, estimate_id: int, reason: str) -> Any:
    token = csrf_from(c.get(f"/trials/{trial_id}").text)
    return c.post(f"/estimates/{estimate_id}/withdraw", follow_redirects=False,
                  data={"reason": reason, "csrf_token": token})


def _correct(c: TestClient, estimate_id: int, **fields: str) -> Any:
    """The Correct form of ``estimate_id`` sent by ``c``: the lenalidomide PFS post-ASCT
    fields as read from the paper (reported CI, maintenance vs control), ``fields`` over them."""
    token = csrf_from(c.get(f"/estimates/{estimate_id}/edit").text)
    return c.post(f"/estimates/{estimate_id}/edit", follow_redirects=False, data={
        "csrf_token": token, "endpoint": "PFS", "setting": "post_asct",
        "method": "reported_ci", "orientation": "maint_vs_control", **fields})


def _audits(app: Any, action: str) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == action)
                                 .order_by(col(AuditLog.id))))


# ----------------------------------------------------------------------------- withdraw
def test_withdraw_keeps_the_row_with_who_when_why(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    response = _withdraw(curator, trial_id, estimate.id, "  duplicate of <b>the</b> 2012 cut ")
    assert response.status_code == 303
    assert response.headers["location"] == f"/trials/{trial_id}#estimate-{estimate.id}"
    (after,) = _estimates(app)
    assert after.withdrawn_at is not None
    assert after.withdrawn_reason == "duplicate of <b>the</b> 2012 cut"
    with db(app) as session:
        curator_id = session.exec(select(User.id).where(User.email == users["curator"])).one()
    assert after.withdrawn_by == curator_id
    # the numbers themselves are untouched
    assert (after.hr, after.ci_low, after.ci_high, after.verified) == (
        estimate.hr, estimate.ci_low, estimate.ci_high, True)
    (row,) = _audits(app, "estimate.withdraw")
    assert row.object_id == str(estimate.id) and row.actor == users["curator"]
    assert row.details["reason"] == "duplicate of <b>the</b> 2012 cut"

    page = curator.get(f"/trials/{trial_id}").text
    assert f"Estimate {estimate.id} withdrawn" in page
    assert 'class="estimate-row withdrawn"' in page
    assert "duplicate of &lt;b&gt;the&lt;/b&gt; 2012 cut" in page  # escaped, never raw
    assert "<b>the</b>" not in page
    assert users["curator"] in page
    # a withdrawn estimate has no buttons left
    assert f"/estimates/{estimate.id}/edit" not in page
    assert f"/estimates/{estimate.id}/withdraw" not in page
    assert f"/estimates/{estimate.id}/verify" not in page


def _listed_estimates(c: TestClient, trial_id: int) -> int:
    page = c.get("/trials").text
    row = page[page.index(f'href="/trials/{trial_id}"'):]
    row = row[:row.index("</tr>")]
    return int(re.findall(r'<td class="num">(\d+)</td>', row)[-1])


def test_trial_list_counts_only_current_estimates(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    assert _listed_estimates(curator, trial_id) == 1
    assert _withdraw(curator, trial_id, estimate.id, "entered twice").status_code == 303
    assert _listed_estimates(curator, trial_id) == 0


def test_withdraw_needs_a_reason(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    response = _withdraw(curator, trial_id, estimate.id, "   ")
    assert response.status_code == 400
    assert "Reason is required: say why the estimate is withdrawn" in response.text
    assert f'id="reason-{estimate.id}" name="reason"' in response.text
    (after,) = _estimates(app)
    assert after.withdrawn_at is None and after.withdrawn_reason is None
    assert _audits(app, "estimate.withdraw") == []


def test_viewer_cannot_withdraw_or_correct(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    viewer = as_role(app, users, "viewer")
    page = viewer.get(f"/trials/{trial_id}").text
    assert "Withdraw" not in page and f"/estimates/{estimate.id}/edit" not in page
    assert _withdraw(viewer, trial_id, estimate.id, "no").status_code == 403
    assert viewer.get(f"/estimates/{estimate.id}/edit").status_code == 403
    token = csrf_from(page)
    assert viewer.post(f"/estimates/{estimate.id}/edit", data={
        "csrf_token": token, "endpoint": "PFS", "hr": "0.6", "ci_low": "0.5",
        "ci_high": "0.7"}).status_code == 403
    (after,) = _estimates(app)
    assert after.withdrawn_at is None


def test_withdraw_and_correct_refuse_a_missing_csrf_token(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    _, estimate = _one_estimate(app, curator)
    for data in ({"reason": "x"}, {"reason": "x", "csrf_token": "y" * 43}):
        response = curator.post(f"/estimates/{estimate.id}/withdraw", data=data)
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
        edit = curator.post(f"/estimates/{estimate.id}/edit",
                            data={**data, "endpoint": "PFS", "hr": "0.6", "ci_low": "0.5",
                                  "ci_high": "0.7"})
        assert edit.status_code == 403
    assert len(_estimates(app)) == 1 and _estimates(app)[0].withdrawn_at is None


def test_a_withdrawn_estimate_cannot_be_withdrawn_verified_or_corrected(
        app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    assert _withdraw(curator, trial_id, estimate.id, "wrong arm").status_code == 303
    again = _withdraw(curator, trial_id, estimate.id, "again")
    assert again.status_code == 409
    assert f"estimate {estimate.id} was already withdrawn (wrong arm)" in again.text
    token = csrf_from(curator.get(f"/trials/{trial_id}").text)
    verify = curator.post(f"/estimates/{estimate.id}/verify", data={"csrf_token": token})
    assert verify.status_code == 409 and "already withdrawn" in verify.text
    assert curator.get(f"/estimates/{estimate.id}/edit").status_code == 409
    edit = curator.post(f"/estimates/{estimate.id}/edit", data={
        "csrf_token": token, "endpoint": "PFS", "hr": "0.6", "ci_low": "0.5", "ci_high": "0.7"})
    assert edit.status_code == 409 and "already withdrawn" in edit.text
    (after,) = _estimates(app)  # nothing new was saved, nothing changed
    assert after.withdrawn_reason == "wrong arm" and after.verified
    assert len(_audits(app, "estimate.withdraw")) == 1
    assert _audits(app, "estimate.correct") == []


def test_the_withdraw_form_sent_twice_says_it_is_withdrawn_already(
        app: Any, users: dict[str, str]) -> None:
    """A double click on Withdraw (or Back, then Withdraw again) answered the second with a
    409 "already withdrawn" page for a curator who had done nothing wrong: it lands on the
    trial page saying so, and nothing is done twice."""
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    assert _withdraw(curator, trial_id, estimate.id, "wrong arm").status_code == 303
    again = _withdraw(curator, trial_id, estimate.id, " wrong arm")
    assert again.status_code == 303
    assert again.headers["location"] == f"/trials/{trial_id}#estimate-{estimate.id}"
    page = curator.get(again.headers["location"]).text
    assert f"Estimate {estimate.id} is withdrawn already (wrong arm): nothing changed." in page
    (after,) = _estimates(app)
    assert after.withdrawn_reason == "wrong arm"
    assert len(_audits(app, "estimate.withdraw")) == 1


def test_concurrent_withdrawals_cannot_both_succeed(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    _, estimate = _one_estimate(app, curator)
    with db(app) as first, db(app) as second:
        user = first.exec(select(User).where(User.email == users["curator"])).one()
        stale = first.get(Estimate, estimate.id)  # read before the other withdrawal
        assert stale is not None and stale.withdrawn_at is None
        fresh = second.get(Estimate, estimate.id)
        assert fresh is not None
        withdraw_estimate(second, fresh, reason="first", user=user)
        second.commit()
        with pytest.raises(EstimateWithdrawnError, match="already withdrawn \\(first\\)"):
            withdraw_estimate(first, stale, reason="second", user=user)
    (after,) = _estimates(app)
    assert after.withdrawn_reason == "first"


# ----------------------------------------------------------------------------- correct
def test_edit_form_is_prefilled_as_maintenance_vs_control(app: Any, users: dict[str, str]) -> None:
    """An estimate stored before the HR was kept as printed (database revision 0011 and
    older) comes back as its stored numbers, maintenance vs control."""
    curator = as_role(app, users, "curator")
    _, estimate = _one_estimate(app, curator, orientation="control_vs_maint", hr="2.00",
                                ci_low="1.60", ci_high="2.50", data_cut="2016-03-01",
                                n_maintenance="231", notes="Table 2 <i>ITT</i>")
    with db(app) as session:
        row = session.get(Estimate, estimate.id)
        assert row is not None and row.printed == {"hr": "2.00", "ci_low": "1.60",
                                                   "ci_high": "2.50"}
        row.printed = None
        session.commit()
    page = curator.get(f"/estimates/{estimate.id}/edit")
    assert page.status_code == 200
    html = page.text
    assert f'action="/estimates/{estimate.id}/edit"' in html
    assert "The form shows the stored numbers as maintenance vs control." in " ".join(
        html.split())
    assert 'name="hr" type="text" value="0.5"' in html
    assert 'name="ci_low" type="text" value="0.4"' in html
    assert 'name="ci_high" type="text" value="0.625"' in html
    assert '<option value="maint_vs_control" selected>' in html
    assert '<option value="PFS" selected>' in html
    assert 'value="2016-03-01"' in html and 'value="231"' in html
    assert "Table 2 &lt;i&gt;ITT&lt;/i&gt;</textarea>" in html
    assert 'name="verified"' not in html  # a correction is verified later, by someone
    assert 'name="correction_note"' in html
    assert "Save correction" in html


@pytest.mark.parametrize(("orientation", "typed"), [
    ("maint_vs_control", ("0.50", "0.40", "0.630")),
    # typed as the paper prints it, control vs maintenance: stored inverted (2.0 → 0.5)
    ("control_vs_maint", ("2.00", "1.60", "2.50")),
])
def test_edit_form_is_prefilled_as_printed(app: Any, users: dict[str, str], orientation: str,
                                           typed: tuple[str, str, str]) -> None:
    """The Correct form gives back the HR and CI as they were typed from the paper — "0.50",
    not the stored float's "0.5" — in the orientation they were typed in, so a corrector
    compares like with like; saved unchanged it is the same estimate (refused: nothing to
    correct), and with a note added it stores the same numbers."""
    curator = as_role(app, users, "curator")
    hr, lo, hi = typed
    _, estimate = _one_estimate(app, curator, orientation=orientation, hr=hr,
                                       ci_low=lo, ci_high=hi)
    page = curator.get(f"/estimates/{estimate.id}/edit")
    form = lxml.html.fromstring(page.text).xpath(
        f'//form[@action="/estimates/{estimate.id}/edit"]')[0]
    assert (form.inputs["hr"].value, form.inputs["ci_low"].value,
            form.inputs["ci_high"].value) == typed
    assert form.inputs["orientation"].value == orientation
    hint = " ".join(lxml.html.fromstring(page.text).xpath("string(//p[@class='hint'])").split())
    assert "The form shows the HR and CI as they were typed from the paper" in hint
    assert "stored numbers as maintenance vs control" not in hint
    # saved unchanged: the same estimate in every field, so no correction (the verified one
    # would be withdrawn for an unverified copy)
    data = {name: value for name, value in form.form_values()}
    refused = curator.post(f"/estimates/{estimate.id}/edit", data=data, follow_redirects=False)
    assert refused.status_code == 400
    assert f"HR is what estimate {estimate.id} already says, with everything else" in refused.text
    assert len(_estimates(app)) == 1 and _estimates(app)[0].withdrawn_at is None
    # a note is a change: the same stored numbers, typed the same way
    data["notes"] = "checked against the paper"
    assert curator.post(f"/estimates/{estimate.id}/edit", data=data,
                        follow_redirects=False).status_code == 303
    old, new = _estimates(app)
    assert (new.hr, new.ci_low, new.ci_high, new.se) == (old.hr, old.ci_low, old.ci_high,
                                                         old.se)
    assert new.orientation_entered == orientation
    again = lxml.html.fromstring(curator.get(f"/estimates/{new.id}/edit").text).xpath(
        f'//form[@action="/estimates/{new.id}/edit"]')[0]
    assert again.inputs["hr"].value == hr


def test_correction_is_a_new_unverified_estimate_and_withdraws_the_old(
        app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, old = _one_estimate(app, curator, data_cut_label="median follow-up 34 months")
    response = _correct(curator, old.id, hr="0.55", ci_low="0.45", ci_high="0.67",
                        verified="1", data_cut_label="median follow-up 34 months",
                        correction_note="CI misread")
    assert response.status_code == 303
    old_after, new = _estimates(app)
    assert response.headers["location"] == f"/trials/{trial_id}#estimate-{new.id}"
    assert new.hr == pytest.approx(0.55) and new.ci_high == pytest.approx(0.67)
    assert new.supersedes_id == old.id and new.trial_id == old.trial_id
    assert new.verified is False and new.verified_by is None  # the box is ignored
    assert new.withdrawn_at is None
    assert old_after.withdrawn_at is not None
    assert old_after.withdrawn_reason == f"corrected by estimate {new.id}: CI misread"
    assert old_after.hr == pytest.approx(0.5)  # never changed in place
    (correct,) = _audits(app, "estimate.correct")
    assert correct.object_id == str(new.id) and correct.details["supersedes"] == old.id
    assert correct.details["old"]["hr"] == pytest.approx(0.5)
    assert correct.details["new"]["hr"] == pytest.approx(0.55)
    # what was typed from the paper, old and new, for whoever checks the correction
    assert (correct.details["old"]["printed"], correct.details["new"]["printed"]) == (
        {"hr": "0.50", "ci_low": "0.40", "ci_high": "0.625"},
        {"hr": "0.55", "ci_low": "0.45", "ci_high": "0.67"})
    (withdraw,) = _audits(app, "estimate.withdraw")
    assert withdraw.object_id == str(old.id)
    assert [a.object_id for a in _audits(app, "estimate.add")] == [str(old.id), str(new.id)]

    page = curator.get(f"/trials/{trial_id}").text
    assert f"Estimate {old.id} corrected by estimate {new.id}" in page
    assert f'href="#estimate-{new.id}">see correcting estimate {new.id}</a>' in page
    assert f'href="#estimate-{old.id}">corrects estimate {old.id}</a>' in page
    # the correction can itself be corrected or withdrawn, the old one cannot
    assert f"/estimates/{new.id}/edit" in page and f"/estimates/{old.id}/edit" not in page


def test_the_correct_form_sent_twice_is_saved_once_and_said_saved(
        app: Any, users: dict[str, str]) -> None:
    # A double click or Back then Save sent the form again to the estimate the first one
    # withdrew: a 409 "already withdrawn" for a curator who had done nothing wrong.
    curator = as_role(app, users, "curator")
    trial_id, old = _one_estimate(app, curator)
    token = csrf_from(curator.get(f"/estimates/{old.id}/edit").text)
    form = {"csrf_token": token, "endpoint": "PFS", "setting": "post_asct",
            "method": "reported_ci", "orientation": "maint_vs_control",
            "hr": "0.55", "ci_low": "0.45", "ci_high": "0.67", "correction_note": "CI misread"}
    assert curator.post(f"/estimates/{old.id}/edit", data=form,
                        follow_redirects=False).status_code == 303
    again = curator.post(f"/estimates/{old.id}/edit", data=form, follow_redirects=False)
    _, new = _estimates(app)  # one correction, not two
    assert again.status_code == 303
    assert again.headers["location"] == f"/trials/{trial_id}#estimate-{new.id}"
    assert (f"This correction is saved already: estimate {old.id} was corrected by estimate "
            f"{new.id} (HR 0.55 (0.45–0.67)). Nothing was saved again.") in curator.get(
        f"/trials/{trial_id}").text
    assert len(_audits(app, "estimate.correct")) == 1
    # another number sent to the withdrawn estimate is still refused: it is no repeat
    other = curator.post(f"/estimates/{old.id}/edit", data={**form, "hr": "0.56"})
    assert other.status_code == 409 and "already withdrawn" in other.text
    assert len(_estimates(app)) == 2


def test_bad_correction_names_the_field_and_changes_nothing(app: Any,
                                                            users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    _, old = _one_estimate(app, curator)
    token = csrf_from(curator.get(f"/estimates/{old.id}/edit").text)
    response = curator.post(f"/estimates/{old.id}/edit", data={
        "csrf_token": token, "endpoint": "PFS", "method": "reported_ci",
        "orientation": "maint_vs_control", "hr": "0.9", "ci_low": "0.4", "ci_high": "0.6",
        "correction_note": "keep <me>"})
    assert response.status_code == 400
    assert "HR 0.9 is not inside its confidence interval 0.4–0.6" in response.text
    assert 'value="keep &lt;me&gt;"' in response.text  # what was typed is kept, escaped
    (after,) = _estimates(app)
    assert after.withdrawn_at is None
    assert _audits(app, "estimate.correct") == [] and _audits(app, "estimate.withdraw") == []


def test_unknown_estimate_is_404(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/trials").text)
    assert curator.get("/estimates/999/edit").status_code == 404
    response = curator.post("/estimates/999/withdraw", data={"csrf_token": token, "reason": "x"})
    assert response.status_code == 404 and "estimate 999 does not exist" in response.text


# ----------------------------------------------------------------------------- analyses
def test_selection_drops_a_withdrawn_estimate_with_its_reason() -> None:
    def cand(estimate_id: int, **kw: Any) -> Candidate:
        return Candidate(estimate_id=estimate_id, trial_id=1, trial_name="T", drug="lenalidomide",
                         is_strategy=False, endpoint="PFS", setting="post_asct",
                         comparison="len vs placebo", log_hr=math.log(0.5), se=0.1,
                         verified=True, **kw)

    old, new = cand(1, withdrawn=True), cand(2)
    selection = select_inputs(Analysis("lenalidomide", "post_asct", "PFS"), [old, new])
    assert selection.chosen == [new]
    assert selection.dropped == [(old, "withdrawn")]
    only = select_inputs(Analysis("lenalidomide", "post_asct", "PFS"), [old])
    assert only.chosen == []


def test_withdrawn_estimate_leaves_the_pooled_result_and_the_digest_says_so(
        app: Any, users: dict[str, str]) -> None:
    from reports.digest import build_digest
    from reports.pool import pool_all
    from reports.selection import latest_results

    ctx = app.state.ctx
    curator = as_role(app, users, "curator")
    first = _trial(app, name="TRIAL-A")
    second = _trial(app, name="TRIAL-B")
    for trial_id, hr, lo, hi in ((first, "0.50", "0.40", "0.625"),
                                 (second, "0.80", "0.64", "1.00")):
        assert _post_estimate(curator, trial_id, hr=hr, ci_low=lo,
                              ci_high=hi).status_code == 303
    verified_by_second_person(app)
    a, b = _estimates(app)

    def snapshot() -> PooledResult:
        with db(app) as session:
            return next(r for r in latest_results(session) if r.analysis_key == LEN_PFS)

    run = pool_all(ctx)
    before = snapshot()
    assert before.k == 2
    assert {row["estimate_id"] for row in before.inputs} == {a.id, b.id}
    build_digest(ctx)

    assert _withdraw(curator, first, a.id, "wrong population").status_code == 303
    run = pool_all(ctx)
    after = snapshot()
    assert after.id != before.id and after.k == 1
    assert [row["estimate_id"] for row in after.inputs] == [b.id]
    assert after.estimate == pytest.approx(b.log_hr)
    assert after.estimate != pytest.approx(before.estimate)
    assert {"estimate_id": a.id, "trial": "TRIAL-A", "reason": "withdrawn"} in \
        after.result["dropped"]
    assert any(o.analysis.key == LEN_PFS and o.changed for o in run.outcomes)

    digest = build_digest(ctx)
    entry = next(x for x in digest.summary["analyses"] if x["key"] == LEN_PFS)
    assert entry["status"] == "updated"
    assert entry["removed_trials"] == ["TRIAL-A"]
    assert pool_all(ctx).changed == []  # nothing else to recompute


def test_api_lists_the_withdrawal_fields(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id, estimate = _one_estimate(app, curator)
    assert _withdraw(curator, trial_id, estimate.id, "retracted paper").status_code == 303
    body = curator.get("/api/trials").json()
    (row,) = [e for t in body["trials"] for e in t["estimates"]]
    assert row["withdrawn_reason"] == "retracted paper" and row["withdrawn_at"]
    assert row["supersedes_id"] is None


def test_correcting_a_multi_arm_trials_pooled_comparison_keeps_that_comparison(
        app: Any, users: dict[str, str]) -> None:
    """A three-arm trial (lenalidomide, lenalidomide + prednisone, observation) pools the
    comparison entered first. Correcting its HR makes a new estimate with a larger id: the
    pool keeps that comparison, with the corrected HR, instead of switching to the other arm
    (rule 4 ranked comparisons by the lowest current id)."""
    from reports.pool import pool_all
    from reports.selection import latest_results

    ctx = app.state.ctx
    curator = as_role(app, users, "curator")
    trial_id = _trial(app, name="THREE-ARM")
    for comparison, hr, lo, hi in (("lenalidomide vs observation", "0.50", "0.40", "0.625"),
                                   ("lenalidomide + prednisone vs observation", "0.80", "0.64",
                                    "1.00")):
        assert _post_estimate(curator, trial_id, comparison=comparison, setting="post_asct",
                              hr=hr, ci_low=lo, ci_high=hi).status_code == 303
    checker = second_curator(app)

    def verify_all() -> None:
        for estimate in _estimates(app):
            if not estimate.verified and estimate.withdrawn_at is None:
                assert _verify(checker, estimate).status_code == 303

    verify_all()
    first, other = _estimates(app)

    def pooled() -> dict[str, Any]:
        pool_all(ctx)
        with db(app) as session:
            snap = next(r for r in latest_results(session) if r.analysis_key == LEN_PFS)
            (row,) = snap.inputs
            return row

    assert pooled()["estimate_id"] == first.id
    assert _correct(curator, first.id, comparison="lenalidomide vs observation", hr="0.55",
                    ci_low="0.45", ci_high="0.67",
                    correction_note="CI misread").status_code == 303
    verify_all()
    corrected = _estimates(app)[-1]
    assert corrected.supersedes_id == first.id and corrected.id > other.id
    row = pooled()
    assert row["estimate_id"] == corrected.id
    assert row["hr"] == pytest.approx(0.55)
    # and a correction of the correction still ranks as the first extraction
    assert _correct(curator, corrected.id, comparison="lenalidomide vs observation", hr="0.56",
                    ci_low="0.46", ci_high="0.68",
                    correction_note="HR misread").status_code == 303
    verify_all()
    row = pooled()
    assert row["estimate_id"] == _estimates(app)[-1].id and row["hr"] == pytest.approx(0.56)


def test_a_correction_across_1_asks_to_confirm_the_direction(app: Any,
                                                             users: dict[str, str]) -> None:
    """The Correct form switched to the other orientation by mistake stores the HR inverted:
    the saved correction says it now favours the other arm and asks to confirm."""
    curator = as_role(app, users, "curator")
    trial_id, old = _one_estimate(app, curator)
    response = _correct(curator, old.id, orientation="control_vs_maint", hr="0.55",
                        ci_low="0.45", ci_high="0.67")
    assert response.status_code == 303
    _, new = _estimates(app)
    assert new.hr == pytest.approx(1 / 0.55)
    page = " ".join(curator.get(f"/trials/{trial_id}").text.split())
    assert (f"Check: the corrected HR 1.82 (1.49–2.22) favours control, where estimate "
            f"{old.id} (0.50 (0.40–0.63)) favoured maintenance (both as maintenance vs "
            "control): confirm the direction; the numbers were read as typed for control vs "
            "maintenance") in page
    # a correction on the same side of 1 says nothing of the kind
    assert _correct(curator, new.id, hr="1.80", ci_low="1.48",
                    ci_high="2.19").status_code == 303
    _, _, third = _estimates(app)
    assert "Check: the corrected HR" not in curator.get(f"/trials/{trial_id}").text
    assert "confirm the direction" not in (third.notes or "")


def test_the_correct_form_with_the_same_numbers_written_otherwise_corrects_nothing(
        app: Any, users: dict[str, str]) -> None:
    """"0.5" for the "0.50" typed, or the HR typed as control vs maintenance given as its
    inverse: the same estimate, so no correction (the text compared differed: one was made)."""
    curator = as_role(app, users, "curator")
    _, estimate = _one_estimate(app, curator, orientation="control_vs_maint", hr="2.00",
                                ci_low="1.60", ci_high="2.50")
    token = csrf_from(curator.get(f"/estimates/{estimate.id}/edit").text)
    form = {"csrf_token": token, "endpoint": "PFS", "setting": "post_asct",
            "method": "reported_ci"}
    for typed in ({"orientation": "control_vs_maint", "hr": "2", "ci_low": "1.6",
                   "ci_high": "2.5"},
                  {"orientation": "maint_vs_control", "hr": "0.5", "ci_low": "0.4",
                   "ci_high": "0.625"}):
        refused = curator.post(f"/estimates/{estimate.id}/edit", data={**form, **typed},
                               follow_redirects=False)
        assert refused.status_code == 400, typed
        assert (f"HR is what estimate {estimate.id} already says, with everything else: "
                "nothing changed, so nothing was saved") in " ".join(refused.text.split())
    assert len(_estimates(app)) == 1 and _estimates(app)[0].withdrawn_at is None


def test_a_correction_that_lost_the_race_gives_back_what_was_typed(
        app: Any, users: dict[str, str]) -> None:
    """Two curators open the Correct form of one estimate; the second to save was shown a
    bare 409 "already withdrawn" and lost what they had typed. The page names who corrected
    it and what is stored now, lists what was sent (not saved) and links to the estimate to
    correct now."""
    curator = as_role(app, users, "curator")
    admin = as_role(app, users, "admin")
    _, old = _one_estimate(app, curator)
    form = {"endpoint": "PFS", "setting": "post_asct", "method": "reported_ci",
            "orientation": "maint_vs_control", "hr": "0.55", "ci_low": "0.45",
            "ci_high": "0.67"}
    mine_token = csrf_from(curator.get(f"/estimates/{old.id}/edit").text)  # opened first
    token = csrf_from(admin.get(f"/estimates/{old.id}/edit").text)
    assert admin.post(f"/estimates/{old.id}/edit", follow_redirects=False,
                      data={**form, "csrf_token": token}).status_code == 303
    _, won = _estimates(app)
    lost = curator.post(f"/estimates/{old.id}/edit", follow_redirects=False, data={
        **form, "csrf_token": mine_token, "hr": "0.56", "ci_low": "0.46", "ci_high": "0.68",
        "correction_note": "Table 2, <ITT>"})
    assert lost.status_code == 409
    page = lxml.html.fromstring(lost.text)
    message = " ".join(page.xpath("string(//p[@class='error-message'])").split())
    assert message.startswith(f"estimate {old.id} was already withdrawn (corrected by estimate "
                              f"{won.id}) by admin@example.org at ")
    assert message.endswith(f"estimate {won.id} now says PFS HR 0.55 (0.45–0.67) (unverified)")
    sent = dict(zip(page.xpath("//section[@class='sent-form']//dt/text()"),
                    page.xpath("//section[@class='sent-form']//dd/pre/text()"), strict=True))
    assert sent == {**form, "hr": "0.56", "ci_low": "0.46", "ci_high": "0.68",
                    "correction_note": "Table 2, <ITT>"}
    assert page.xpath(f"//a[@href='/estimates/{won.id}/edit']/text()") == [
        f"Correct estimate {won.id}, stored now"]
    assert len(_estimates(app)) == 2 and len(_audits(app, "estimate.correct")) == 1


def test_concurrent_corrections_the_loser_is_told_who_won(app: Any,
                                                          users: dict[str, str]) -> None:
    """The race itself: both read the estimate current, the second's conditional withdrawal
    finds it withdrawn. Its new row is rolled back and the error says who corrected it and
    what is stored now (it said only "already withdrawn")."""
    from screening.web.corrections import correct_estimate
    from screening.web.extraction import parse_estimate
    from store.models import Trial

    curator = as_role(app, users, "curator")
    _, estimate = _one_estimate(app, curator)
    with db(app) as first, db(app) as second:
        trial = first.get(Trial, estimate.trial_id)
        user = first.exec(select(User).where(User.email == users["curator"])).one()
        stale = first.get(Estimate, estimate.id)  # read before the other correction
        assert trial is not None and stale is not None and stale.withdrawn_at is None
        admin = second.exec(select(User).where(User.email == "admin@example.org")).one()
        fresh = second.get(Estimate, estimate.id)
        assert fresh is not None
        typed = {"endpoint": "PFS", "hr": "0.55", "ci_low": "0.45", "ci_high": "0.67"}
        won = correct_estimate(second, fresh, trial=trial,
                               draft=parse_estimate(typed, trial=trial, reports=[]), user=admin)
        second.commit()
        with pytest.raises(EstimateWithdrawnError) as lost:
            correct_estimate(first, stale, trial=trial, draft=parse_estimate(
                {**typed, "hr": "0.56", "ci_low": "0.46", "ci_high": "0.68"}, trial=trial,
                reports=[]), user=user)
        assert lost.value.by == "admin@example.org"
        assert lost.value.current is not None and lost.value.current.id == won.id
        assert f"estimate {won.id} now says PFS HR 0.55 (0.45–0.67)" in lost.value.message
    assert len(_estimates(app)) == 2  # the loser's copy was rolled back
