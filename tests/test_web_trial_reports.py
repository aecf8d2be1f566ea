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

from store.models import AuditLog, Record, Trial, TrialReport

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
