"""A trial's reports in the web app: a retracted record linked as a report, a record linked to
a second trial, and correcting or unlinking a report linked wrongly. Over the real app and
database."""

from __future__ import annotations

import html
from typing import Any

import lxml.html
import pytest
import test_web
from sqlmodel import col, select
from test_web import as_role, csrf_from, db

from store.models import AuditLog, Estimate, Record, Trial, TrialReport, User

app = test_web.app
users = test_web.users

RETRACTED = 90000031
PLAIN = 90000032


@pytest.fixture
def review(app: Any) -> dict[str, int]:
    """Two trials and two records: one PubMed marks retracted, one not."""
    with db(app) as s:
        calgb = Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct")
        ifm = Trial(name="IFM 2005-02", drug="lenalidomide", setting="post_asct")
        s.add(calgb)
        s.add(ifm)
        s.add(Record(pmid=RETRACTED, title="Lenalidomide after transplant (CALGB 100104)",
                     authors=["Doe J"], journal_abbrev="Blood", year=2025, retracted=True))
        s.add(Record(pmid=PLAIN, title="Lenalidomide maintenance: an update",
                     authors=["Roe R"], journal_abbrev="Blood", year=2026))
        s.commit()
        return {"calgb": int(calgb.id or 0), "ifm": int(ifm.id or 0)}


def _flashes(page: str) -> list[tuple[str, str]]:
    doc = lxml.html.fromstring(page)
    return [(p.get("class").split()[-1], " ".join(p.text_content().split()))
            for p in doc.xpath('//p[contains(@class, "flash")]')]


def _link(client: Any, pmid: int, trial_id: int, **extra: str) -> Any:
    token = csrf_from(client.get(f"/records/{pmid}").text)
    return client.post(f"/records/{pmid}/reports", follow_redirects=False, data={
        "csrf_token": token, "trial_id": str(trial_id), "kind": "update",
        "citation": f"PMID {pmid} citation", "year": "2025", **extra})


# ----------------------------------------------------------------------------- retraction
def test_linking_a_retracted_record_warns_and_the_report_is_flagged(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    response = _link(curator, RETRACTED, review["calgb"])
    assert response.status_code == 303
    page = curator.get(response.headers["location"]).text
    warnings = [text for kind, text in _flashes(page) if kind == "flash-warn"]
    assert warnings == [
        f"PMID {RETRACTED} is marked retracted in PubMed: a retracted report's numbers are "
        f"not evidence. Check the retraction notice on its record page (/records/{RETRACTED}) "
        "before entering or verifying any hazard ratio from it; its row among the trial's "
        "reports is marked retracted."]
    doc = lxml.html.fromstring(page)
    (row,) = doc.xpath('//table[.//th[text()="Citation"]]/tbody/tr')
    assert row.xpath('.//span[contains(@class, "report-retracted")]/text()') == ["retracted"]
    # the extraction form's report list says so too
    options = doc.xpath('//form[contains(@class, "extraction-form")]'
                        '//select[@name="report_id"]/option/text()')
    assert options[1] == f"PMID {RETRACTED} citation (retracted in PubMed)"
    # the JSON API gives each report's flag
    api = test_web.api_as(app, users, "viewer").get(f"/api/trials/{review['calgb']}").json()
    assert [(r["pmid"], r["retracted"]) for r in api["reports"]] == [(RETRACTED, True)]
    # a record that is not retracted: no warning, no flag
    plain = _link(curator, PLAIN, review["calgb"])
    page = curator.get(plain.headers["location"]).text
    assert [kind for kind, _ in _flashes(page) if kind == "flash-warn"] == []
    assert len(lxml.html.fromstring(page).xpath(
        '//span[contains(@class, "report-retracted")]')) == 1
    api = test_web.api_as(app, users, "viewer").get(f"/api/trials/{review['calgb']}").json()
    assert sorted((r["pmid"], r["retracted"]) for r in api["reports"]) == [
        (RETRACTED, True), (PLAIN, False)]


def test_adding_a_retracted_pmid_on_the_trial_page_warns(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get(f"/trials/{review['ifm']}").text)
    response = curator.post(f"/trials/{review['ifm']}/reports", follow_redirects=False, data={
        "csrf_token": token, "pmid": str(RETRACTED), "citation": "Doe J. Blood 2025",
        "year": "2025", "kind": "primary"})
    assert response.status_code == 303
    page = curator.get(response.headers["location"]).text
    assert any(kind == "flash-warn" and f"PMID {RETRACTED} is marked retracted" in text
               for kind, text in _flashes(page))


# ----------------------------------------------------------------------------- second trial
def test_linking_a_report_of_one_trial_to_another_needs_a_confirmation(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    assert _link(curator, PLAIN, review["calgb"]).status_code == 303
    # the record page offers the confirmation, naming the trial it reports now
    page = lxml.html.fromstring(curator.get(f"/records/{PLAIN}").text)
    (box,) = page.xpath('//form[@id="link-trial-form"]//input[@name="confirm_other_trial"]')
    assert " ".join(box.getparent().text_content().split()) == (
        "It reports the chosen trial too: link it although it is already a report of "
        "CALGB 100104")
    # without it: refused, next to the box, and nothing linked
    refused = _link(curator, PLAIN, review["ifm"])
    assert refused.status_code == 400
    doc = lxml.html.fromstring(refused.text)
    (error,) = doc.xpath('//p[@id="link-confirm_other_trial-error"]')
    assert " ".join(error.text_content().split()) == (
        f"PMID {PLAIN} is already a report of CALGB 100104. Tick the box to link it to "
        "IFM 2005-02 as well (a publication that reports two trials is a report of each); if "
        "it was linked to the wrong trial, correct that report on CALGB 100104's trial page "
        "instead")
    with db(app) as s:
        assert [r.trial_id for r in s.exec(select(TrialReport).where(
            TrialReport.pmid == PLAIN))] == [review["calgb"]]
    # confirmed: linked, and the message says to which other trial it belongs
    confirmed = _link(curator, PLAIN, review["ifm"], confirm_other_trial="1")
    assert confirmed.status_code == 303
    page = curator.get(confirmed.headers["location"]).text
    assert (f"PMID {PLAIN} added to IFM 2005-02 as its update report. It is also a report of "
            "CALGB 100104. Enter its hazard ratios below.") in html.unescape(page)
    with db(app) as s:
        row = s.exec(select(AuditLog).where(AuditLog.action == "report.add")
                     .order_by(col(AuditLog.id).desc())).first()
        assert row is not None and row.details["also_report_of"] == ["CALGB 100104"]


def test_the_trial_page_form_needs_the_confirmation_too(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    assert _link(curator, PLAIN, review["calgb"]).status_code == 303
    url = f"/trials/{review['ifm']}"
    form = {"csrf_token": csrf_from(curator.get(url).text), "pmid": str(PLAIN),
            "citation": "Roe R. Blood 2026", "year": "2026", "kind": "secondary"}
    assert 'name="confirm_other_trial"' not in curator.get(url).text  # only when needed
    refused = curator.post(f"{url}/reports", data=form, follow_redirects=False)
    assert refused.status_code == 400
    assert 'id="rep-confirm_other_trial-error"' in refused.text
    assert 'name="confirm_other_trial"' in refused.text
    done = curator.post(f"{url}/reports", data={**form, "confirm_other_trial": "1"},
                        follow_redirects=False)
    assert done.status_code == 303
    assert "Report added. It is also a report of CALGB 100104." in html.unescape(
        curator.get(url).text)
    # a new trial made from it asks as well
    token = csrf_from(curator.get(f"/trials/new?from_pmid={PLAIN}").text)
    new = {"csrf_token": token, "name": "GIMEMA X", "drug": "lenalidomide",
           "setting": "post_asct", "from_pmid": str(PLAIN)}
    refused = curator.post("/trials/new", data=new, follow_redirects=False)
    assert refused.status_code == 400
    assert (f"PMID {PLAIN} is already a report of CALGB 100104 and IFM 2005-02"
            in html.unescape(refused.text))
    assert 'name="confirm_other_trial"' in refused.text
    made = curator.post("/trials/new", data={**new, "confirm_other_trial": "1"},
                        follow_redirects=False)
    assert made.status_code == 303
    assert ("It is also a report of CALGB 100104 and IFM 2005-02." in
            html.unescape(curator.get(made.headers["location"]).text))


# ----------------------------------------------------------------------------- correct, unlink
def _report_of(app: Any, pmid: int) -> TrialReport:
    with db(app) as s:
        return s.exec(select(TrialReport).where(TrialReport.pmid == pmid)).one()


def _linked_to_calgb(app: Any, client: Any, review: dict[str, int]) -> tuple[TrialReport, str]:
    """PMID PLAIN linked by ``client`` to CALGB 100104: its report and the trial's page."""
    assert _link(client, PLAIN, review["calgb"]).status_code == 303
    return _report_of(app, PLAIN), f"/trials/{review['calgb']}"


def _audit(app: Any, action: str) -> list[AuditLog]:
    with db(app) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action)
                           .order_by(col(AuditLog.id))))


def test_a_report_linked_to_the_wrong_trial_is_moved_then_unlinked(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    assert _link(curator, PLAIN, review["calgb"]).status_code == 303  # the wrong trial
    report = _report_of(app, PLAIN)
    calgb, ifm = f"/trials/{review['calgb']}", f"/trials/{review['ifm']}"
    # an estimate entered from it, before the mistake was seen
    token = csrf_from(curator.get(calgb).text)
    assert curator.post(f"{calgb}/estimates", follow_redirects=False, data={
        "csrf_token": token, "endpoint": "PFS", "method": "reported_ci",
        "orientation": "maint_vs_control", "hr": "0.50", "ci_low": "0.40", "ci_high": "0.62",
        "report_id": str(report.id), "setting": "post_asct"}).status_code == 303
    with db(app) as s:
        (estimate,) = s.exec(select(Estimate)).all()
    form = {"csrf_token": token, "trial_id": str(review["ifm"]), "kind": "secondary",
            "citation": "Roe R et al. Blood 2026;147:1-9", "year": "2026",
            "reason": "reports IFM 2005-02, not CALGB"}
    # its current estimate keeps it where it is
    refused = curator.post(f"/reports/{report.id}/edit", data=form, follow_redirects=False)
    assert refused.status_code == 400
    (error,) = lxml.html.fromstring(refused.text).xpath(
        f'//tr[@id="report-{report.id}"]//span[@class="report-error"]')
    assert " ".join(error.text_content().split()) == (
        f"1 current estimate of CALGB 100104 (estimate {estimate.id}) comes from this "
        "report: withdraw or correct it first (their numbers are pooled under CALGB 100104), "
        "then move the report")
    assert _report_of(app, PLAIN).trial_id == review["calgb"]
    assert curator.post(f"/estimates/{estimate.id}/withdraw", follow_redirects=False, data={
        "reason": "wrong trial", "csrf_token": token}).status_code == 303
    # moved, with its kind, citation and year corrected
    moved = curator.post(f"/reports/{report.id}/edit", data=form, follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == f"{ifm}#report-{report.id}"
    page = html.unescape(curator.get(moved.headers["location"]).text)
    assert (f"Report {report.id} corrected: trial CALGB 100104 → IFM 2005-02; kind update → "
            "secondary; citation PMID 90000032 citation → Roe R et al. Blood 2026;147:1-9; "
            f"year 2025 → 2026. Withdrawn estimates {estimate.id} stay with CALGB 100104 and "
            "no longer name it.") in page
    after = _report_of(app, PLAIN)
    assert (after.id, after.trial_id, after.kind, after.citation, after.year) == (
        report.id, review["ifm"], "secondary", form["citation"], 2026)
    with db(app) as s:
        kept = s.get(Estimate, estimate.id)
        assert kept is not None and (kept.trial_id, kept.report_id) == (review["calgb"], None)
    (edit,) = _audit(app, "report.edit")
    assert (edit.actor, edit.object_type, edit.object_id) == (
        users["curator"], "trial_report", str(report.id))
    assert edit.details["old"] == {"trial": "CALGB 100104", "kind": "update",
                                   "citation": "PMID 90000032 citation", "year": 2025}
    assert edit.details["new"]["trial"] == "IFM 2005-02"
    assert edit.details["detached_estimates"] == [estimate.id]
    assert edit.details["reason"] == "reports IFM 2005-02, not CALGB"
    # the same form again changes nothing
    again = curator.post(f"/reports/{report.id}/edit", data=form, follow_redirects=False)
    assert again.status_code == 303
    assert f"Report {report.id}: nothing changed." in curator.get(again.headers["location"]).text
    assert len(_audit(app, "report.edit")) == 1
    # unlinked: no longer a report of any trial; the record stays
    token = csrf_from(curator.get(ifm).text)
    gone = curator.post(f"/reports/{report.id}/unlink", follow_redirects=False,
                        data={"csrf_token": token, "reason": "not a trial report"})
    assert gone.status_code == 303 and gone.headers["location"] == ifm
    assert (f"PMID {PLAIN} unlinked from IFM 2005-02: it is no longer one of its reports."
            in html.unescape(curator.get(ifm).text))
    with db(app) as s:
        assert s.exec(select(TrialReport).where(TrialReport.pmid == PLAIN)).all() == []
        assert s.get(Record, PLAIN) is not None
    (unlink,) = _audit(app, "report.unlink")
    assert unlink.details["trial"] == "IFM 2005-02" and unlink.details["pmid"] == PLAIN
    assert unlink.details["citation"] == form["citation"]
    assert unlink.details["reason"] == "not a trial report"
    assert _report_page_404(curator, report.id)


def _report_page_404(client: Any, report_id: int) -> bool:
    token = csrf_from(client.get("/trials").text)
    response = client.post(f"/reports/{report_id}/unlink", data={"csrf_token": token})
    return response.status_code == 404 and f"report {report_id} does not exist" in response.text


def test_unlinking_a_report_with_a_current_estimate_is_refused(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    report, url = _linked_to_calgb(app, curator, review)
    token = csrf_from(curator.get(url).text)
    assert curator.post(f"{url}/estimates", follow_redirects=False, data={
        "csrf_token": token, "endpoint": "OS", "method": "reported_ci",
        "orientation": "maint_vs_control", "hr": "0.80", "ci_low": "0.60", "ci_high": "1.05",
        "report_id": str(report.id), "setting": "post_asct"}).status_code == 303
    refused = curator.post(f"/reports/{report.id}/unlink", data={"csrf_token": token})
    assert refused.status_code == 400
    assert "withdraw or correct it first" in refused.text
    assert _report_of(app, PLAIN).trial_id == review["calgb"]
    # bad fields are named, and the form keeps what was typed
    bad = curator.post(f"/reports/{report.id}/edit", data={
        "csrf_token": token, "trial_id": "999", "kind": "sequel", "citation": "",
        "year": "2099"})
    assert bad.status_code == 400
    text = " ".join(lxml.html.fromstring(bad.text).text_content().split())
    for message in ("Trial 999 does not exist", "must be one of primary, update",
                    "Citation is required", "2099 is in the future"):
        assert message in text
    assert _audit(app, "report.edit") == [] and _audit(app, "report.unlink") == []


def test_correcting_a_report_needs_a_curator_and_the_form_token(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    report, url = _linked_to_calgb(app, curator, review)
    viewer = as_role(app, users, "viewer")
    page = viewer.get(url).text
    assert f"/reports/{report.id}/edit" not in page and "Correct or unlink" not in page
    assert f'action="/reports/{report.id}/edit"' in curator.get(url).text
    token = csrf_from(page)
    form = {"csrf_token": token, "trial_id": str(review["ifm"]), "kind": "update",
            "citation": "X", "year": "2025"}
    assert viewer.post(f"/reports/{report.id}/edit", data=form).status_code == 403
    assert viewer.post(f"/reports/{report.id}/unlink", data=form).status_code == 403
    for bad in (None, "y" * 43):
        data = {k: v for k, v in form.items() if k != "csrf_token"}
        if bad is not None:
            data["csrf_token"] = bad
        for action in ("edit", "unlink"):
            response = curator.post(f"/reports/{report.id}/{action}", data=data)
            assert response.status_code == 403
            assert "security token is missing or does not match" in response.text
    anonymous = test_web.TestClient(app, raise_server_exceptions=False)
    response = anonymous.post(f"/reports/{report.id}/unlink", data=form,
                              follow_redirects=False)
    assert response.status_code == 401  # not logged in
    assert _report_of(app, PLAIN).trial_id == review["calgb"]
    assert _audit(app, "report.edit") == [] and _audit(app, "report.unlink") == []


def _sent_while_the_report_moves(app: Any, review: dict[str, int], report: TrialReport,
                                 send: Any) -> Any:
    """Play a report's move to IFM 2005-02 as the report form makes it (CALGB 100104 locked,
    the report moved, committed) while ``send``, in a thread, has reached its first write.
    Returns ``send``'s response."""
    import threading

    from conftest import first_write_seen

    from screening.web.trials import correct_report
    from store.record_lock import locked_trial

    answer: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: answer.update(r=send()), daemon=True)
    with db(app) as s:
        locked_trial(s, review["calgb"])
        with first_write_seen(app.state.ctx.engine) as writing:
            sender.start()
            assert writing.wait(timeout=60), "the request never wrote"
        moving = s.get(TrialReport, report.id)
        assert moving is not None
        admin = s.exec(select(User).where(User.role == "admin")).first()
        assert admin is not None
        correct_report(s, moving, {"trial_id": str(review["ifm"]), "kind": moving.kind,
                                   "citation": moving.citation, "year": str(moving.year)},
                       user=admin)
        s.commit()
    sender.join(timeout=90)
    return answer["r"]


def test_an_estimate_sent_while_its_report_moves_to_another_trial_is_refused(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    """The estimate form read the trial's reports before it locked the trial: a report moved
    to another trial meanwhile was still taken, and the estimate, pooled under CALGB 100104,
    named a report of IFM 2005-02. Now the reports are read under the lock."""
    curator = as_role(app, users, "curator")
    report, url = _linked_to_calgb(app, curator, review)
    form = {"csrf_token": csrf_from(curator.get(url).text), "endpoint": "OS",
            "method": "reported_ci", "orientation": "maint_vs_control", "hr": "0.80",
            "ci_low": "0.60", "ci_high": "1.05", "report_id": str(report.id),
            "setting": "post_asct"}
    response = _sent_while_the_report_moves(
        app, review, report,
        lambda: curator.post(f"{url}/estimates", data=form, follow_redirects=False))
    assert _report_of(app, PLAIN).trial_id == review["ifm"]
    assert response.status_code == 400, response.status_code
    text = " ".join(lxml.html.fromstring(response.text).text_content().split())
    assert f"Report {report.id} does not belong to trial CALGB 100104" in text
    with db(app) as s:
        assert s.exec(select(Estimate)).all() == []


def test_a_correction_naming_a_report_that_moves_meanwhile_is_refused(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    """The Correct form, like the extraction form, read the trial's reports before anything
    locked the trial: a correction naming a report moved away meanwhile was stored."""
    curator = as_role(app, users, "curator")
    report, url = _linked_to_calgb(app, curator, review)
    form = {"csrf_token": csrf_from(curator.get(url).text), "endpoint": "OS",
            "method": "reported_ci", "orientation": "maint_vs_control", "hr": "0.80",
            "ci_low": "0.60", "ci_high": "1.05", "setting": "post_asct"}
    assert curator.post(f"{url}/estimates", data=form,
                        follow_redirects=False).status_code == 303
    with db(app) as s:
        (old,) = s.exec(select(Estimate)).all()
    response = _sent_while_the_report_moves(
        app, review, report,
        lambda: curator.post(f"/estimates/{old.id}/edit", follow_redirects=False,
                             data={**form, "report_id": str(report.id)}))
    assert _report_of(app, PLAIN).trial_id == review["ifm"]
    assert response.status_code == 400, response.status_code
    text = " ".join(lxml.html.fromstring(response.text).text_content().split())
    assert f"Report {report.id} does not belong to trial CALGB 100104" in text
    with db(app) as s:
        (after,) = s.exec(select(Estimate)).all()
        assert after.withdrawn_at is None and after.report_id is None


def test_the_api_refuses_an_estimate_or_correction_naming_a_report_that_moves_meanwhile(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    """POST /api/estimates and its corrections read the trial's reports before locking the
    trial, as the forms did: a report moved to another trial meanwhile was still taken."""
    from fastapi.testclient import TestClient
    from test_web_api import _token

    curator = as_role(app, users, "curator")
    report, _url = _linked_to_calgb(app, curator, review)
    api = TestClient(app, raise_server_exceptions=False)
    headers = _token(app, "curator@example.org")
    fields = {"endpoint": "OS", "method": "reported_ci", "orientation": "maint_vs_control",
              "hr": "0.80", "ci_low": "0.60", "ci_high": "1.05", "setting": "post_asct"}
    first = api.post("/api/estimates", headers=headers,
                     json={"trial_id": review["calgb"], **fields})
    assert first.status_code == 201, first.text
    response = _sent_while_the_report_moves(
        app, review, report,
        lambda: api.post("/api/estimates", headers=headers, json={
            "trial_id": review["calgb"], **fields, "endpoint": "PFS",
            "report_id": report.id}))
    assert response.status_code == 400, response.text
    assert f"report {report.id} does not belong to trial CALGB 100104" in response.text
    # and a correction, once the report is back with CALGB 100104
    with db(app) as s:
        back = s.get(TrialReport, report.id)
        assert back is not None
        back.trial_id = review["calgb"]
        s.add(back)
        s.commit()
    response = _sent_while_the_report_moves(
        app, review, report,
        lambda: api.post(f"/api/estimates/{first.json()['id']}/correct", headers=headers,
                         json={**fields, "report_id": report.id}))
    assert response.status_code == 400, response.text
    assert f"report {report.id} does not belong to trial CALGB 100104" in response.text
    with db(app) as s:
        (after,) = s.exec(select(Estimate)).all()
        assert after.withdrawn_at is None and after.report_id is None
