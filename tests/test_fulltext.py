"""The full-text stage (``store.fulltext``): verdicts and their rules, the counts and the
PRISMA flow built on them, the record page's form, ``/fulltext`` and the API."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import test_web
from sqlmodel import func, select
from test_prisma_diagram import boxes
from test_web import api_as, as_role, csrf_from, db

from reports.exports import export
from reports.prisma import (
    ASSESSED_STAGE,
    ELIGIBLE_STAGE,
    EXCLUDED_REASON_PREFIX,
    FULLTEXT_AWAITING_STAGE,
    FULLTEXT_EXCLUDED_STAGE,
    INCLUDED_STAGE,
    NOT_RETRIEVED_STAGE,
    prisma_counts,
    prisma_since,
)
from reports.prisma_diagram import REQUIRED_STAGES, prisma_svg
from store.errors import NotFoundError, ValidationError
from store.fulltext import REASONS, fulltext_counts, outcomes
from store.fulltext import assess as record_assessment
from store.models import AuditLog, FullTextAssessment, Record, Trial, TrialReport, User

app = test_web.app
users = test_web.users

XSS_NOTE = "<script>alert('note')</script>"


def assess(session: Any, **fields: Any) -> FullTextAssessment:
    """One assessor (the default setting): each judgement is a verdict that settles."""
    return record_assessment(session, screeners_per_record=1, **fields)


def _seed(session: Any) -> User:
    """Five included records (one deleted), one excluded, one undecided; a curator."""
    user = User(email="ft@example.org", role="curator")
    session.add(user)
    for pmid in (1, 2, 3, 4, 5):
        session.add(Record(pmid=pmid, title=f"Included {pmid}", decision="include"))
    session.add(Record(pmid=6, title="Deleted include", decision="include", deleted=True))
    session.add(Record(pmid=7, title="Excluded", decision="exclude"))
    session.add(Record(pmid=8, title="Undecided"))
    session.commit()
    session.refresh(user)
    return user


# ----------------------------------------------------------------------------- rules
@pytest.mark.parametrize(("pmid", "verdict", "reason", "note", "error", "message"), [
    (1, "maybe", None, None, ValidationError, "full-text verdict 'maybe' is not valid"),
    (1, "excluded", None, None, ValidationError, "needs a reason"),
    (1, "excluded", "boring", None, ValidationError, "reason 'boring' is not valid"),
    (1, "excluded", "other", " ", ValidationError, "'other' needs a note"),
    (1, "eligible", "not_randomised", None, ValidationError, "only an excluded report takes"),
    (1, "eligible", None, "x" * 2001, ValidationError, "the note is 2001 characters long"),
    (6, "eligible", None, None, ValidationError, "deleted from PubMed"),
    (7, "eligible", None, None, ValidationError, "not included at title/abstract screening "
                                                 "(current decision: exclude)"),
    (8, "eligible", None, None, ValidationError, "(current decision: none)"),
    (99, "eligible", None, None, NotFoundError, "record PMID 99 is not in the database"),
])
def test_a_verdict_that_breaks_a_rule_is_refused_and_stores_nothing(
        ctx: Any, pmid: int, verdict: str, reason: str | None, note: str | None,
        error: type[Exception], message: str) -> None:
    with ctx.sessions() as s:
        user = _seed(s)
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            assess(s, user=user, pmid=pmid, verdict=verdict, reason=reason, note=note)
        s.rollback()
        assert s.exec(select(func.count()).select_from(FullTextAssessment)).one() == 0


def test_the_latest_verdict_counts_and_the_flow_adds_up(ctx: Any) -> None:
    with ctx.sessions() as s:
        user = _seed(s)
        assess(s, user=user, pmid=1, verdict="eligible")
        assess(s, user=user, pmid=2, verdict="excluded", reason="not_maintenance")
        assess(s, user=user, pmid=3, verdict="not_retrieved", note="  asked the authors  ")
        assess(s, user=user, pmid=4, verdict="excluded", reason="not_randomised")
        assess(s, user=user, pmid=4, verdict="eligible")  # read again: the newest counts
        s.commit()
        counts = fulltext_counts(s)
        assert (counts.sought, counts.awaiting, counts.not_retrieved, counts.eligible,
                counts.excluded_total, counts.assessed) == (5, 1, 1, 2, 1, 3)
        assert counts.excluded == {**dict.fromkeys(REASONS, 0), "not_maintenance": 1}
        assert counts.sought == counts.not_retrieved + counts.awaiting + counts.assessed
        settled = outcomes(s, [3, 4, 5])
        assert settled[3].row is not None and settled[3].row.note == "asked the authors"
        assert settled[4].verdict == "eligible" and settled[4].state == "resolved"
        assert settled[5].state == "awaiting" and settled[5].row is None
        assert s.exec(select(func.count()).select_from(AuditLog)
                      .where(AuditLog.action == "fulltext.assess")).one() == 5
        # the title/abstract decision changes: the verdict stays in history, counts nowhere
        s.get(Record, 2).decision = "exclude"  # type: ignore[union-attr]
        s.commit()
        after = fulltext_counts(s)
        assert (after.sought, after.excluded_total, after.assessed) == (4, 0, 2)
        assert outcomes(s, [2])[2].verdict == "excluded"  # kept, though it counts nowhere


def test_prisma_lines_diagram_and_since_follow_the_verdicts(ctx: Any, tmp_path: Path) -> None:
    with ctx.sessions() as s:
        user = _seed(s)
        assess(s, user=user, pmid=1, verdict="eligible")
        assess(s, user=user, pmid=2, verdict="excluded", reason="no_outcome")
        assess(s, user=user, pmid=3, verdict="excluded", reason="other", note="single arm")
        s.commit()
        cut = s.exec(select(FullTextAssessment.created_at)
                     .where(FullTextAssessment.pmid == 2)).one()
        assess(s, user=user, pmid=4, verdict="not_retrieved")
        s.commit()
        counts = prisma_counts(s)
        since = prisma_since(s, cut)
    n = {stage: value for stage, value, _ in counts}
    assert (n[INCLUDED_STAGE], n[NOT_RETRIEVED_STAGE], n[FULLTEXT_AWAITING_STAGE],
            n[ASSESSED_STAGE], n[ELIGIBLE_STAGE], n[FULLTEXT_EXCLUDED_STAGE]) == (5, 1, 1, 3, 1, 2)
    assert n[f"{EXCLUDED_REASON_PREFIX}{REASONS['no_outcome']}"] == 1
    assert n[f"{EXCLUDED_REASON_PREFIX}other reasons"] == 1
    assert n[f"{EXCLUDED_REASON_PREFIX}{REASONS['population']}"] == 0
    # after the cut: pmid 3's exclusion and pmid 4's "not retrieved"
    assert (since.counts[ASSESSED_STAGE], since.counts[FULLTEXT_EXCLUDED_STAGE],
            since.counts[NOT_RETRIEVED_STAGE], since.counts[ELIGIBLE_STAGE]) == (1, 1, 1, 0)
    shown = boxes(prisma_svg(counts))
    assert shown["included-records"].startswith("Reports sought for retrieval")
    assert shown["not-retrieved"] == ("Reports not retrieved n = 1 Reports awaiting full-text "
                                      "assessment n = 1")
    # pmid 1 is eligible, and no trial has it yet: the box says so
    assert shown["assessed"] == ("Reports assessed for eligibility n = 3 of which eligible n = 1 "
                                 "of those, not linked to a study yet (not among the reports "
                                 "of included studies): n = 1")
    excluded = shown["fulltext-excluded"]
    assert excluded.startswith("Reports excluded: n = 2")
    assert "no time-to-event outcome (PFS, EFS or OS) reported (n = 1)" in excluded
    # a diagram has no note to see: "other reasons", not "other reason (see the note)"
    assert "other reasons (n = 1)" in excluded and "see the note" not in excluded
    assert "population" not in excluded  # a reason nobody used stays out of the box
    # the counts of a review stored before the stage existed still draw, without it
    old = [row for row in counts if row[0] in REQUIRED_STAGES]
    assert "Reports sought" not in prisma_svg(old) and "Records included after" in \
        prisma_svg(old)
    table = list(csv.DictReader(io.StringIO(
        export(ctx, "prisma", tmp_path / "p.csv")[0].read_text(), newline="")))
    assert [r["count"] for r in table if r["stage"] == ASSESSED_STAGE] == ["3"]


# ----------------------------------------------------------------------------- web
@pytest.fixture
def included(app: Any) -> None:
    with db(app) as s:
        s.add(Record(pmid=90000011, title="<b>Included</b> trial", decision="include",
                     score=0.9))
        s.add(Record(pmid=90000012, title="Second include", decision="include", score=0.8))
        s.add(Record(pmid=90000013, title="Excluded record", decision="exclude", score=0.1))
        trial = Trial(name="Myeloma XI", drug="lenalidomide", setting="post_asct")
        s.add(trial)
        s.flush()
        s.add(TrialReport(trial_id=trial.id, pmid=90000012, citation="x"))
        s.commit()


def test_an_other_reason_is_its_note_in_the_list_and_the_digest(
        app: Any, users: dict[str, str], included: None) -> None:
    """"other reason (see the note)" in the /fulltext list and the digest, neither of which
    showed the note."""
    from reports.digest import build_digest

    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000011").text)
    assert curator.post("/records/90000011/fulltext", follow_redirects=False, data={
        "verdict": "excluded", "reason": "other", "note": "single-arm  phase 2\n" + "x " * 90,
        "csrf_token": token}).status_code == 303
    listing = curator.get("/fulltext?show=all").text
    row = listing.split('data-pmid="90000011"')[1].split("</tr>")[0]
    assert "excluded: other reason: single-arm phase 2 x x" in row and "see the note" not in row
    assert "…" in row  # a long note is cut at a word boundary
    digest = build_digest(app.state.ctx)
    (excluded,) = digest.summary["fulltext"]["excluded"]
    assert excluded["reason"].startswith("other reason: single-arm phase 2 x")
    assert "see the note" not in digest.html and "see the note" not in digest.text


def test_a_retracted_report_is_marked_in_the_list(
        app: Any, users: dict[str, str], included: None) -> None:
    """Only its record page said so; the list showed it as any eligible report."""
    with db(app) as s:
        record = s.get(Record, 90000011)
        assert record is not None
        record.retracted = True
        s.add(record)
        s.commit()
    curator = as_role(app, users, "curator")
    listing = curator.get("/fulltext?show=all").text
    rows = {p: listing.split(f'data-pmid="{p}"')[1].split("</tr>")[0]
            for p in (90000011, 90000012)}
    assert '<span class="badge warn retracted">retracted</span>' in rows[90000011]
    assert "retracted" not in rows[90000012]
    items = {i["pmid"]: i for i in api_as(app, users, "curator").get(
        "/api/fulltext").json()["reports"]}
    assert items[90000011]["retracted"] is True and items[90000012]["retracted"] is False


def test_a_curator_records_a_verdict_on_the_record_page(app: Any, users: dict[str, str],
                                                        included: None) -> None:
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000011")
    assert 'class="fulltext-form' in page.text and "awaiting assessment" in page.text
    assert "ft-dual" not in page.text and "Save full-text verdict" in page.text  # one assessor
    token = csrf_from(page.text)
    saved = curator.post("/records/90000011/fulltext", follow_redirects=False, data={
        "verdict": "excluded", "reason": "other", "note": XSS_NOTE, "csrf_token": token})
    assert saved.status_code == 303 and saved.headers["location"].endswith("#fulltext")
    page = curator.get("/records/90000011").text
    # the note is the reason: said where the reason is, escaped
    assert "excluded: other reason: &lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt;" in page
    assert XSS_NOTE not in page
    # a broken rule is a 400 page saying which, and stores nothing
    bad = curator.post("/records/90000011/fulltext", data={
        "verdict": "excluded", "note": "typed <b>before</b> the error", "csrf_token": token})
    assert bad.status_code == 400 and "needs a reason" in bad.text
    # ... on the record page, next to the form, with what was chosen and typed kept
    form = bad.text.split('class="fulltext-form')[1].split("</form>")[0]
    assert "needs a reason: nothing was saved." in form
    assert 'value="excluded" required checked' in form
    assert "typed &lt;b&gt;before&lt;/b&gt; the error</textarea>" in form
    # the message is read with the choices, the reason and the note (screen readers)
    assert 'id="ft-error"' in form
    assert '<fieldset aria-describedby="ft-error">' in form
    assert '<select id="ft-reason" name="reason" aria-describedby="ft-error">' in form
    assert 'name="note" rows="2" maxlength="2000" aria-describedby="ft-error">' in form
    refused = curator.post("/records/90000013/fulltext", data={
        "verdict": "eligible", "csrf_token": token})
    assert refused.status_code == 400 and "not included at title/abstract" in refused.text
    # an excluded record has no form; the list page comes back to the awaiting list
    assert 'class="fulltext-form' not in curator.get("/records/90000013").text
    back = curator.post("/records/90000012/fulltext", follow_redirects=False, data={
        "verdict": "eligible", "back": "list", "csrf_token": token})
    assert back.headers["location"] == "/fulltext?show=awaiting"
    with db(app) as s:
        assert [a.verdict for a in s.exec(select(FullTextAssessment)
                                          .order_by(FullTextAssessment.id))] == [
            "excluded", "eligible"]


def test_save_and_next_opens_the_next_report_awaiting_a_verdict(
        app: Any, users: dict[str, str], included: None) -> None:
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000011").text
    assert "Save and assess the next report" in page
    token = csrf_from(page)
    first = curator.post("/records/90000011/fulltext", follow_redirects=False, data={
        "verdict": "eligible", "then": "next", "csrf_token": token})
    assert first.headers["location"] == "/records/90000012#fulltext"
    assert ('Full-text verdict saved: eligible (PMID 90000011). '
            '<a href="/records/90000011#fulltext">Open it again</a>') in curator.get(
        first.headers["location"]).text  # the report just judged is a click away
    last = curator.post("/records/90000012/fulltext", follow_redirects=False, data={
        "verdict": "not_retrieved", "then": "next", "csrf_token": token})
    assert last.headers["location"] == "/fulltext"
    assert "No report awaits your full-text assessment" in curator.get("/fulltext").text
    with db(app) as s:
        assert [a.pmid for a in s.exec(select(FullTextAssessment)
                                       .order_by(FullTextAssessment.id))] == [
            90000011, 90000012]


def test_linking_to_a_trial_may_record_the_eligible_verdict_too(
        app: Any, users: dict[str, str], included: None) -> None:
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000011").text
    assert 'name="fulltext_eligible"' in page and "also record my full-text verdict" in page
    with db(app) as s:
        trial_id = s.exec(select(Trial.id)).one()
    form = {"csrf_token": csrf_from(page), "trial_id": str(trial_id), "kind": "update",
            "citation": "Jackson GH et al. 2026", "fulltext_eligible": "1"}
    linked = curator.post("/records/90000011/reports", data=form, follow_redirects=False)
    assert linked.status_code == 303
    assert "Full-text verdict recorded: eligible." in curator.get(linked.headers["location"]).text
    with db(app) as s:
        assert outcomes(s, [90000011])[90000011].verdict == "eligible"
        assert s.exec(select(TrialReport).where(TrialReport.pmid == 90000011)).one()
    # settled now: the box is not offered again
    assert 'name="fulltext_eligible"' not in curator.get("/records/90000011").text
    # a judgement the rules refuse links nothing either (one transaction)
    assert 'name="fulltext_eligible"' not in curator.get("/records/90000013").text
    refused = curator.post("/records/90000013/reports", data={**form, "citation": "X 2026"},
                           follow_redirects=False)
    assert refused.status_code == 400 and "not included at title/abstract" in refused.text
    with db(app) as s:
        assert s.exec(select(TrialReport).where(TrialReport.pmid == 90000013)).all() == []
        assert s.exec(select(FullTextAssessment)
                      .where(FullTextAssessment.pmid == 90000013)).all() == []
    # without the box, linking records no verdict (the list then marks the mismatch)
    plain = {k: v for k, v in form.items() if k != "fulltext_eligible"}
    with db(app) as s:
        s.add(Record(pmid=90000014, title="Third include", decision="include"))
        s.commit()
    curator.post("/records/90000014/reports", data=plain, follow_redirects=False)
    with db(app) as s:
        assert outcomes(s, [90000014])[90000014].state == "awaiting"


def test_viewers_see_the_list_but_cannot_assess(app: Any, users: dict[str, str],
                                                included: None) -> None:
    viewer = as_role(app, users, "viewer")
    listing = viewer.get("/fulltext")
    assert listing.status_code == 200
    assert "&lt;b&gt;Included&lt;/b&gt; trial" in listing.text and "<b>Included</b>" not in \
        listing.text
    assert 'class="ft-sought">2<' in listing.text and 'class="ft-awaiting">2<' in listing.text
    assert "Myeloma XI" in listing.text  # the linked trial of 90000012
    assert 'class="fulltext-form' not in viewer.get("/records/90000011").text
    token = csrf_from(viewer.get("/fulltext").text)
    denied = viewer.post("/records/90000011/fulltext",
                         data={"verdict": "eligible", "csrf_token": token})
    assert denied.status_code == 403
    assert test_web.TestClient(app).get("/fulltext", follow_redirects=False).status_code == 303


def test_the_list_pages_through_every_report_sought(app: Any, users: dict[str, str]) -> None:
    """More reports than a page: none is out of reach, on the page or through the API."""
    from screening.web.fulltext import LIST_LIMIT

    n = LIST_LIMIT + 3
    with db(app) as s:
        s.add_all([Record(pmid=91000000 + i, title=f"report {i}", decision="include")
                   for i in range(n)])
        s.commit()
    viewer = as_role(app, users, "viewer")
    seen: list[str] = []
    url: str | None = "/fulltext"
    while url is not None:
        page = lxml.html.fromstring(viewer.get(url).text)
        seen += page.xpath('//tr[contains(@class, "ft-row")]/@data-pmid')
        following = page.xpath('//nav[@class="pager"]/a[contains(., "Next")]/@href')
        url = following[0] if following else None
    assert len(seen) == n and len(set(seen)) == n
    last = lxml.html.fromstring(viewer.get(f"/fulltext?offset={LIST_LIMIT}").text)
    assert " ".join(last.xpath('string(//span[@class="pager-position"])').split()) \
        == f"Reports {LIST_LIMIT + 1}–{n}"
    assert last.xpath('//nav[@class="pager"]/a[contains(., "Previous")]/@href') \
        == ["/fulltext?show=all&offset=0"]
    beyond = viewer.get("/fulltext?offset=5000").text
    assert "No reports on this page" in beyond
    api = api_as(app, users, "viewer")
    first = api.get("/api/fulltext").json()
    assert len(first["reports"]) == LIST_LIMIT and first["next_offset"] == LIST_LIMIT
    rest = api.get(f"/api/fulltext?offset={LIST_LIMIT}").json()
    assert len(rest["reports"]) == 3 and rest["next_offset"] is None
    assert {r["pmid"] for r in first["reports"]} | {r["pmid"] for r in rest["reports"]} \
        == {91000000 + i for i in range(n)}


def test_an_eligible_report_without_a_trial_is_marked(app: Any, users: dict[str, str],
                                                      included: None) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/fulltext").text)
    for pmid in (90000011, 90000012):
        curator.post(f"/records/{pmid}/fulltext", data={"verdict": "eligible",
                                                        "csrf_token": token})
    html = curator.get("/fulltext").text
    row = html.split('data-pmid="90000011"')[1].split("</tr>")[0]
    assert "eligible, not linked to a trial" in row
    assert "not linked" not in html.split('data-pmid="90000012"')[1].split("</tr>")[0]
    assert "No report awaits a full-text verdict." in curator.get("/fulltext?show=awaiting").text


def test_the_api_reads_and_writes_verdicts(app: Any, users: dict[str, str],
                                           included: None) -> None:
    api = api_as(app, users, "curator")
    made = api.post("/api/records/90000011/fulltext",
                    json={"verdict": "excluded", "reason": "population"})
    assert made.status_code == 201
    assert made.json()["reason_label"] == REASONS["population"]
    assert made.json()["user"] == users["curator"]
    for body, status, text in [
        ({}, 400, "verdict is required"),
        ({"verdict": "excluded", "reason": 5}, 400, "reason must be a string"),
        ({"verdict": "eligible", "reason": "population"}, 400, "only an excluded report"),
    ]:
        response = api.post("/api/records/90000011/fulltext", json=body)
        assert response.status_code == status and text in response.json()["error"], body
    assert api.post("/api/records/1/fulltext", json={"verdict": "eligible"}).status_code == 404
    viewer = api_as(app, users, "viewer")
    assert viewer.post("/api/records/90000012/fulltext",
                       json={"verdict": "eligible"}).status_code == 403
    read = viewer.get("/api/fulltext").json()
    assert read["counts"]["sought"] == 2 and read["counts"]["excluded"] == 1
    assert read["counts"]["excluded_by_reason"]["population"] == 1
    assert [r["pmid"] for r in read["reports"]] == [90000012, 90000011]  # awaiting first
    assert read["reports"][0]["trials"] == [{"id": 1, "name": "Myeloma XI"}]
    assert [r["pmid"] for r in viewer.get("/api/fulltext?show=awaiting").json()["reports"]] \
        == [90000012]
    listed = {r["pmid"]: (r["fulltext"], r["fulltext_reason"])
              for r in viewer.get("/api/records").json()["records"]}
    assert listed == {90000011: ("excluded", "population"), 90000012: ("awaiting", None),
                      90000013: (None, None)}


def test_the_records_csv_carries_each_included_records_verdict(ctx: Any,
                                                               tmp_path: Path) -> None:
    with ctx.sessions() as s:
        user = _seed(s)
        assess(s, user=user, pmid=1, verdict="eligible")
        assess(s, user=user, pmid=2, verdict="excluded", reason="no_results")
        assess(s, user=user, pmid=3, verdict="not_retrieved")
        s.commit()
    out = export(ctx, "csv", tmp_path / "records.csv")[0]
    rows = {int(r["pmid"]): (r["fulltext"], r["fulltext_reason"])
            for r in csv.DictReader(io.StringIO(out.read_text(), newline=""))}
    assert rows == {1: ("eligible", ""), 2: ("excluded", REASONS["no_results"]),
                    3: ("not_retrieved", ""), 4: ("awaiting", ""), 5: ("awaiting", ""),
                    6: ("", ""), 7: ("", ""), 8: ("", "")}


def test_the_records_csv_says_what_an_other_reason_was(ctx: Any, tmp_path: Path) -> None:
    """PRISMA asks for every reason for exclusion: a report excluded for "other reason (see
    the note)" carries the note in the export, where there is no note to see otherwise."""
    with ctx.sessions() as s:
        user = _seed(s)
        assess(s, user=user, pmid=1, verdict="excluded", reason="other",
               note="single-arm phase 2;\nno control group")
        assess(s, user=user, pmid=2, verdict="excluded", reason="other", note="=cmd")
        s.commit()
    out = export(ctx, "csv", tmp_path / "records.csv")[0]
    rows = {int(r["pmid"]): r["fulltext_reason"]
            for r in csv.DictReader(io.StringIO(out.read_text(), newline=""))}
    # one line, as the other cells of a row; the curator's words as typed
    assert rows[1] == "other reason: single-arm phase 2; no control group"
    assert rows[2] == "other reason: =cmd"  # not first in its cell: no formula either


def test_verdicts_that_disagree_with_the_trial_links_are_listed(
        app: Any, users: dict[str, str], included: None) -> None:
    """An eligible report no trial has, and an excluded one a trial has (its numbers may be in
    the analyses though the review ruled it out), are both marked and listed together."""
    api = api_as(app, users, "curator")
    # a trial's report not settled yet: not counted as included in the PRISMA flow
    (waiting,) = api.get("/api/fulltext?show=mismatch").json()["reports"]
    assert (waiting["pmid"], waiting["link_problem"]) == (90000012, "awaiting")
    api.post("/api/records/90000011/fulltext", json={"verdict": "eligible"})
    api.post("/api/records/90000012/fulltext",
             json={"verdict": "excluded", "reason": "not_randomised"})
    listed = {r["pmid"]: (r["eligible_not_linked"], r["linked_though_excluded"])
              for r in api.get("/api/fulltext?show=mismatch").json()["reports"]}
    assert listed == {90000011: (True, False), 90000012: (False, True)}
    html = as_role(app, users, "viewer").get("/fulltext?show=mismatch").text
    row = html.split('data-pmid="90000012"')[1].split("</tr>")[0]
    assert "a trial's report, though excluded: check its estimates" in row \
        and "Myeloma XI" in row
    api.post("/api/records/90000012/fulltext", json={"verdict": "eligible"})  # read again
    assert [r["pmid"] for r in api.get("/api/fulltext?show=mismatch").json()["reports"]] \
        == [90000011]
    assert "Every settled verdict agrees" not in html
    with db(app) as s:
        s.add(TrialReport(trial_id=1, pmid=90000011, citation="linked now"))
        s.commit()
    assert api.get("/api/fulltext?show=mismatch").json()["reports"] == []
    assert ("Every settled verdict agrees with the trial links, and every trial's report is "
            "counted as included.") in as_role(app, users, "viewer").get(
                "/fulltext?show=mismatch").text


def test_a_maybe_goes_on_to_the_full_text(ctx: Any, app: Any, users: dict[str, str]) -> None:
    """A *maybe* at title/abstract means the abstract cannot decide: the record is a report
    sought for retrieval, assessed like an include, and leaves "awaiting screening"."""
    with ctx.sessions() as s:
        user = _seed(s)
        s.add(Record(pmid=9, title="Unclear from the abstract", decision="maybe"))
        s.commit()
        before = fulltext_counts(s)
        assert (before.sought, before.awaiting) == (6, 6)  # 1–5 and 9; 6 is deleted
        assess(s, user=user, pmid=9, verdict="excluded", reason="not_maintenance")
        s.commit()
        after = fulltext_counts(s)
        assert (after.sought, after.awaiting, after.excluded_total) == (6, 5, 1)
        lines = {stage: n for stage, n, _ in prisma_counts(s)}
    assert lines[INCLUDED_STAGE] == 6 and lines[FULLTEXT_EXCLUDED_STAGE] == 1
    with db(app) as s:
        s.add(Record(pmid=90000031, title="A maybe", decision="maybe"))
        s.commit()
    html = as_role(app, users, "viewer").get("/fulltext").text
    row = html.split('data-pmid="90000031"')[1].split("</tr>")[0]
    assert "maybe at title/abstract" in row and "awaiting assessment" in row
    assert 'class="fulltext-form' in as_role(app, users, "curator").get(
        "/records/90000031").text
