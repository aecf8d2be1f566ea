"""The PRISMA 2020 flow diagram (``reports.prisma_diagram``), the counts since the last digest
(``reports.prisma.prisma_since``), the ``/prisma`` page and ``/prisma.svg``, and the diagram
written by ``mmlr export prisma``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import test_web
from conftest import cli_env, run_cli
from fastapi.testclient import TestClient
from sqlmodel import select
from test_exports import seed, seed_votes
from test_web import as_role

from reports.exports import export
from reports.prisma import (
    ASSESSED_STAGE,
    AUTOMATION_STAGE,
    AWAITING_STAGE,
    BELOW_THRESHOLD_STAGE,
    CONFLICT_STAGE,
    CURATORS_STAGE,
    DELETED_STAGE,
    DUPLICATES_STAGE,
    ELIGIBLE_STAGE,
    ELIGIBLE_UNLINKED_STAGE,
    EXCLUDED_REASON_PREFIX,
    FULLTEXT_AWAITING_STAGE,
    FULLTEXT_EXCLUDED_STAGE,
    IDENTIFIED_STAGE,
    INCLUDED_STAGE,
    NEW_REPORTS_OF_PREVIOUS_STAGE,
    NEW_REPORTS_STAGE,
    NEW_TRIALS_STAGE,
    NOT_RETRIEVED_STAGE,
    OTHER_IDENTIFIED_STAGE,
    OTHER_PREFIX,
    PREVIOUS_REPORTS_STAGE,
    PREVIOUS_TRIALS_STAGE,
    REPORTS_STAGE,
    REVISED_STAGE,
    SCREENED_STAGE,
    TRIALS_STAGE,
    PrismaSince,
    prisma_counts,
    prisma_since,
    prisma_since_last_digest,
)
from reports.prisma_diagram import (
    BOLD_RATIO,
    EM_RATIO,
    FONT_SIZE,
    LEFT_W,
    PAD,
    RIGHT_W,
    prisma_svg,
    wrap_text,
)
from screening.web.app import create_app
from store.models import (
    Decision,
    Digest,
    FullTextAssessment,
    ModelVersion,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
    User,
)

app = test_web.app
users = test_web.users

SVG = "{http://www.w3.org/2000/svg}"
CUT = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
BEFORE, AFTER = CUT - timedelta(days=1), CUT + timedelta(days=1)
#: Which box of the diagram shows which stage.
BOX_OF = {IDENTIFIED_STAGE: "identified", DUPLICATES_STAGE: "removed",
          DELETED_STAGE: "removed", SCREENED_STAGE: "screened", AUTOMATION_STAGE: "removed",
          REVISED_STAGE: "identified", NEW_REPORTS_OF_PREVIOUS_STAGE: "included",
          ELIGIBLE_UNLINKED_STAGE: "assessed",
          CURATORS_STAGE: "excluded", CONFLICT_STAGE: "conflicts", AWAITING_STAGE: "awaiting",
          INCLUDED_STAGE: "included-records", TRIALS_STAGE: "included",
          REPORTS_STAGE: "included", NOT_RETRIEVED_STAGE: "not-retrieved",
          PREVIOUS_TRIALS_STAGE: "included", NEW_TRIALS_STAGE: "included",
          PREVIOUS_REPORTS_STAGE: "included", NEW_REPORTS_STAGE: "included",
          FULLTEXT_AWAITING_STAGE: "not-retrieved", ASSESSED_STAGE: "assessed",
          ELIGIBLE_STAGE: "assessed", FULLTEXT_EXCLUDED_STAGE: "fulltext-excluded"}


def box_of(stage: str) -> str:
    """The box of a stage; every reason of a full-text exclusion is in the excluded box; the
    other-methods column's boxes are named "other-" and the databases column's box."""
    if stage == OTHER_IDENTIFIED_STAGE:
        return "other-identified"
    if stage.startswith(OTHER_PREFIX):
        return "other-" + box_of(stage.removeprefix(OTHER_PREFIX))
    return "fulltext-excluded" if stage.startswith(EXCLUDED_REASON_PREFIX) else BOX_OF[stage]
EXTRA_LOW_SCORES = 1500  # enough records for thousands separators


# ----------------------------------------------------------------------------- helpers
def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def boxes(svg: str) -> dict[str, str]:
    """Box name (its ``box-NAME`` class) -> its text, wrapped lines joined by spaces."""
    found = {}
    for g in parse(svg).iter(f"{SVG}g"):
        classes = (g.get("class") or "").split()
        if "box" in classes:
            name = next(c[4:] for c in classes if c.startswith("box-"))
            found[name] = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
    return found


def seed_many(ctx: Any) -> None:
    """``test_exports.seed`` plus 1,500 records the classifier excluded."""
    seed(ctx)
    with ctx.sessions() as s:
        s.add_all([Record(pmid=1000 + i, title=f"low {i}", score=0.01, flagged=False)
                   for i in range(EXTRA_LOW_SCORES)])
        s.commit()


def seed_since(ctx: Any) -> None:
    """Records, revisions, decisions, trials and reports on both sides of ``CUT``."""
    with ctx.sessions() as s:
        a, b = User(email="a@example.org", role="curator"), User(email="b@example.org",
                                                                 role="curator")
        s.add_all([a, b])
        s.flush()

        def record(pmid: int, seen: datetime, decision: str | None = None,
                   deleted: datetime | None = None) -> None:
            s.add(Record(pmid=pmid, title=f"record {pmid}", first_seen_at=seen,
                         decision=decision, deleted=deleted is not None, deleted_at=deleted,
                         score=0.9, flagged=True))

        def decide(pmid: int, decision: str, at: datetime, user: User = a) -> None:
            s.add(Decision(pmid=pmid, user_id=user.id, decision=decision, created_at=at))

        record(10, BEFORE, "include")
        decide(10, "include", BEFORE)  # included before the cut: not new
        record(11, BEFORE, "include")
        decide(11, "exclude", BEFORE)
        decide(11, "include", AFTER)  # changed its mind after the cut: a new include
        record(12, AFTER, "include")
        decide(12, "include", AFTER)
        record(13, AFTER, "exclude")
        decide(13, "exclude", AFTER)
        record(14, BEFORE, "exclude")
        decide(14, "exclude", BEFORE)
        record(15, AFTER, "include", deleted=AFTER)  # deleted: out of the included box
        decide(15, "include", AFTER)
        record(16, BEFORE, "include")  # decided without a row (import): no date, not new
        record(17, AFTER)  # new, undecided
        record(18, BEFORE, "include")  # dual screening: the second, agreeing vote after
        decide(18, "include", BEFORE, a)
        decide(18, "include", AFTER, b)
        record(19, AFTER, "maybe")
        decide(19, "maybe", AFTER)
        record(20, CUT)  # at the cut itself: not after it
        s.add_all([RecordRevision(pmid=10, revision=1, content_hash="a", recorded_at=BEFORE),
                   RecordRevision(pmid=10, revision=2, content_hash="b", recorded_at=AFTER),
                   RecordRevision(pmid=11, revision=1, content_hash="c", recorded_at=AFTER)])
        old = Trial(name="Old trial", drug="thalidomide", setting="post_asct", created_at=BEFORE)
        new = Trial(name="New trial", drug="lenalidomide", setting="post_asct", created_at=AFTER)
        s.add_all([old, new])
        s.flush()
        # a report enters the included box when it is both a trial's and settled eligible
        s.add_all([TrialReport(trial_id=old.id, pmid=10, citation="old 1", created_at=BEFORE),
                   TrialReport(trial_id=old.id, pmid=12, citation="old update",
                               created_at=AFTER),
                   TrialReport(trial_id=new.id, pmid=19, citation="new 1", created_at=AFTER)])
        s.add_all([FullTextAssessment(pmid=10, user_id=a.id, verdict="eligible",
                                      created_at=BEFORE),
                   FullTextAssessment(pmid=12, user_id=a.id, verdict="eligible",
                                      created_at=AFTER),
                   FullTextAssessment(pmid=19, user_id=a.id, verdict="eligible",
                                      created_at=AFTER)])
        s.commit()


SINCE_EXPECTED = {
    IDENTIFIED_STAGE: 5,  # 12, 13, 15, 17, 19: a new version of 10 or 11 is no new record
    REVISED_STAGE: 2,  # 10 and 11 (10 twice: once since)
    DELETED_STAGE: 1,  # 15
    CURATORS_STAGE: 1,  # 13
    INCLUDED_STAGE: 4,  # 11, 12, 18, and 19 (maybe: on to the full text)
    NOT_RETRIEVED_STAGE: 0, ASSESSED_STAGE: 2, FULLTEXT_EXCLUDED_STAGE: 0, ELIGIBLE_STAGE: 2,
    TRIALS_STAGE: 1,  # the new trial; the old one's first report entered before the cut
    REPORTS_STAGE: 2,  # 12 and 19
}


# ----------------------------------------------------------------------------- the diagram
def test_every_count_is_in_its_box(ctx: Any) -> None:
    seed_many(ctx)
    with ctx.sessions() as s:
        counts = prisma_counts(s, automation_stops=True)
    n = {stage: value for stage, value, _ in counts}
    # 1,506 PMIDs, each once (pmid 3's two later versions are a note, not records)
    assert n[IDENTIFIED_STAGE] == 1506 and n[AUTOMATION_STAGE] == 1501
    assert n[REVISED_STAGE] == 1 and n[DUPLICATES_STAGE] == 0
    assert n[BELOW_THRESHOLD_STAGE] == 0
    svg = prisma_svg(counts)
    root = parse(svg)
    assert root.get("role") == "img"
    shown = boxes(svg)
    assert CONFLICT_STAGE not in n and "conflicts" not in shown
    for stage, value, _ in counts:
        # parts of a box, shown when not 0; without records added by PMID the other-methods
        # column is its 0 line, and not drawn
        if stage not in (BELOW_THRESHOLD_STAGE, ELIGIBLE_UNLINKED_STAGE,
                         OTHER_IDENTIFIED_STAGE):
            assert f"n = {value:,}" in shown[box_of(stage)], stage
    assert n[OTHER_IDENTIFIED_STAGE] == 0 and not any(b.startswith("other-") for b in shown)
    assert "n = 1,506" in shown["identified"] and "n = 1,501" in shown["removed"]
    assert ("of which revised in PubMed after first retrieval (counted once, not removed): "
            "n = 1") in shown["identified"]
    assert "Registers: none searched" in shown["identified"]
    assert "of which" not in shown["awaiting"]
    # duplicates 0, not screened (the stopping rule) 1,501, deleted 1
    assert shown["removed"].count("n = ") == 3 and "n = 0" in shown["removed"]
    assert "stopping rule (the prioritised-order stopping test" in shown["removed"]
    assert "by curators n = 1 by automation tools: none" in shown["excluded"]
    # the trial's report with a PMID awaits its full text; the other has no PMID: neither is
    # an included report yet
    assert "Reports of total included studies n = 0" in shown["included"]
    # the template's phase bars, and the accessible name and description
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"Identification", "Screening", "Included"} <= set(texts)
    assert root.get("aria-labelledby") == "prisma-title prisma-desc"
    assert root.find(f"{SVG}title").text == "PRISMA 2020 flow diagram"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert desc == (
        "Identification: 1,506 records identified from PubMed, each PMID once (of which 1 "
        "revised in PubMed after first retrieval, counted once); no register searched; "
        "removed before screening: 0 duplicate records, 1,501 records not screened "
        "(screening stopped by the stopping rule) and 1 record deleted from PubMed. "
        "Screening: 1 awaiting a screening decision; 3 records screened; excluded: 1 by "
        "curators, none by automation tools; 2 records included after title/abstract "
        "screening. Full text: 0 reports not retrieved, 2 awaiting assessment; 0 assessed "
        "for eligibility: 0 eligible, 0 excluded. Included: 0 studies (randomised trials) "
        "with 0 reports (0 studies with 0 reports from the previous version of the review; 0 "
        "new studies and 0 new reports).")
    assert shown["included"] == (
        "New studies included in review n = 0 Reports of new included studies n = 0 "
        "Studies included in previous version of review n = 0 Reports of studies included "
        "in previous version of review n = 0 Total studies included in review (randomised "
        "trials) n = 0 Reports of total included studies n = 0")
    assert "since" not in svg  # no cut-off given: no since figures, no note


def test_below_threshold_records_await_until_the_stopping_test_supports_stopping(
        ctx: Any) -> None:
    seed_many(ctx)
    with ctx.sessions() as s:
        counts = prisma_counts(s)  # no stopping test said yes
    n = {stage: value for stage, value, _ in counts}
    assert n[AUTOMATION_STAGE] == 0 and n[AWAITING_STAGE] == 1502
    assert n[BELOW_THRESHOLD_STAGE] == 1501
    svg = prisma_svg(counts)
    shown = boxes(svg)
    assert ("Records marked as ineligible by automation tools: not screened, screening "
            "stopped by the stopping rule") in shown["removed"]
    assert n[SCREENED_STAGE] == 3 and "by automation tools: none" in shown["excluded"]
    assert shown["awaiting"] == (
        "Records awaiting a screening decision (not screened yet) n = 1,502 of which below "
        "the classifier's flag threshold, not read by a person (the stopping test does not "
        "support stopping yet) n = 1,501")
    desc = parse(svg).find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert ("0 records not screened (screening stopped by the stopping rule)" in desc)
    assert ("Screening: 1,502 awaiting a screening decision (of which 1,501 below the "
            "classifier's flag threshold, not read by a person); 3 records screened; excluded: "
            "1 by curators, none by automation tools;") in desc


def test_hostile_text_is_escaped() -> None:
    counts = [(stage, 1, "") for stage in BOX_OF if stage != CONFLICT_STAGE]
    title = 'Review <script>alert("x")</script> & co'
    svg = prisma_svg(counts, title=title)
    root = parse(svg)
    assert root.find(f"{SVG}title").text == title  # type: ignore[union-attr]
    assert "<script" not in svg and not list(root.iter(f"{SVG}script"))
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in svg
    # drawn above the diagram too, as text
    assert any("<script>" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_missing_stages_are_refused() -> None:
    with pytest.raises(ValueError, match="records screened"):
        prisma_svg([(stage, 1, "") for stage in BOX_OF if stage != SCREENED_STAGE])


def test_conflict_box_only_under_dual_screening(ctx: Any) -> None:
    seed(ctx)
    seed_votes(ctx)
    with ctx.sessions() as s:
        dual, single = prisma_counts(s, dual=True), prisma_counts(s)
    dual_boxes, single_boxes = boxes(prisma_svg(dual)), boxes(prisma_svg(single))
    assert "conflicts" not in single_boxes
    assert dual_boxes["conflicts"].endswith("n = 1")  # pmid 2
    assert "in conflict awaiting resolution" in dual_boxes["conflicts"]
    assert dual_boxes["awaiting"].endswith("n = 1") and single_boxes["awaiting"].endswith("n = 2")
    assert "in conflict" in ET.fromstring(prisma_svg(dual)).find(f"{SVG}desc").text  # type: ignore[union-attr, operator]


def test_long_labels_are_wrapped_inside_their_boxes() -> None:
    counts = [(stage, 123_456_789, "") for stage in BOX_OF]
    since = PrismaSince(at=CUT, counts={IDENTIFIED_STAGE: 98_765_432})
    svg = prisma_svg(counts, title="A very long title " * 12, since=since)
    root = parse(svg)
    width = int(root.get("width") or 0)
    for g in root.iter(f"{SVG}g"):
        if "box" not in (g.get("class") or ""):
            continue
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        box_w = float(rect.get("width") or 0)
        assert box_w in (LEFT_W, RIGHT_W)
        for t in g.iter(f"{SVG}text"):
            ratio = BOLD_RATIO if t.get("font-weight") == "bold" else EM_RATIO
            assert len(t.text or "") * FONT_SIZE * ratio <= box_w - 2 * PAD, t.text
    title_lines = [t for t in root.iter(f"{SVG}text") if t.get("font-size") == "16"]
    assert len(title_lines) >= 3  # wrapped, not one line running off the drawing
    assert all(len(t.text or "") * 16 * BOLD_RATIO <= width for t in title_lines)
    assert "n = 123,456,789" in boxes(svg)["included"]
    assert "(+98,765,432 since 2025-11-02)" in boxes(svg)["identified"]
    assert wrap_text("one two three four", 10.5 * FONT_SIZE * EM_RATIO, FONT_SIZE) == [
        "one two", "three four"]


# ----------------------------------------------------------------------------- since
def test_since_counts_dated_additions_only(ctx: Any) -> None:
    seed_since(ctx)
    with ctx.sessions() as s:
        since = prisma_since(s, CUT)
        # the same instant in another time zone: the same cut-off
        elsewhere = prisma_since(s, CUT.astimezone(timezone(timedelta(hours=2))))
        everything = prisma_since(s, BEFORE - timedelta(days=1))
    assert dict(since.counts) == SINCE_EXPECTED
    assert dict(elsewhere.counts) == SINCE_EXPECTED
    # stages without a stored date are left out, not estimated
    assert not {SCREENED_STAGE, AUTOMATION_STAGE, AWAITING_STAGE,
                CONFLICT_STAGE} & set(since.counts)
    # before everything: every dated addition counts (16 has no decision row: never)
    assert dict(everything.counts) == {IDENTIFIED_STAGE: 11, REVISED_STAGE: 2,
                                       DELETED_STAGE: 1, CURATORS_STAGE: 2, INCLUDED_STAGE: 5,
                                       TRIALS_STAGE: 2, REPORTS_STAGE: 3,
                                       NOT_RETRIEVED_STAGE: 0, ASSESSED_STAGE: 3,
                                       FULLTEXT_EXCLUDED_STAGE: 0, ELIGIBLE_STAGE: 3}


def test_since_the_newest_digest(ctx: Any) -> None:
    seed_since(ctx)
    with ctx.sessions() as s:
        assert prisma_since_last_digest(s) is None
        s.add(Digest(period_end=BEFORE - timedelta(days=5), html="", text=""))
        s.add(Digest(period_end=CUT, html="", text=""))
        s.commit()
        since = prisma_since_last_digest(s)
        counts = prisma_counts(s)
    assert since is not None and since.at == CUT and since.what == "the last digest"
    assert dict(since.counts) == SINCE_EXPECTED
    svg = prisma_svg(counts, since=since)
    shown = boxes(svg)
    # 11 PMIDs, 5 of them first stored after the cut; the new versions of 10 and 11 are no
    # new records (a note in the box, not a count that adds to the records identified)
    assert "PubMed (each PMID once) n = 11 (+5 since 2025-11-02)" in shown["identified"]
    assert ("revised in PubMed after first retrieval (counted once, not removed): n = 2 (+2 "
            "since 2025-11-02)") in shown["identified"]
    # included: 10, 11, 12, 16 (no decision row), 18 and 19 (maybe); decided after the cut:
    # 11, 12, 18, 19
    assert shown["included-records"].endswith("n = 6 (+4 since 2025-11-02)")
    assert "n = 2 (+1 since 2025-11-02)" in shown["included"]
    assert "n = 3 (+2 since 2025-11-02)" in shown["included"]
    # 10 live records, of which 17 and 20 await a decision; no dated figure for screened
    assert shown["screened"].endswith("n = 8")
    assert "n = 1 (+1 since 2025-11-02)" in shown["removed"]  # deleted after the cut
    note = " ".join(t.text or "" for t in parse(svg).iter(f"{SVG}text")
                    if "since-note" in (t.get("class") or ""))
    assert "after the last digest (2025-11-02 12:00 UTC)" in note
    desc = parse(svg).find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert "11 (5 added since 2025-11-02) records identified" in (desc or "")


# ----------------------------------------------------------------------------- web
def _cells(html: str) -> dict[str, list[str]]:
    doc = lxml.html.fromstring(html)
    return {tr.get("data-stage"): [td.text_content().strip() for td in tr.xpath("td")]
            for tr in doc.xpath("//table[contains(@class, 'prisma-counts')]/tbody/tr")}


def test_pages_need_login(app: Any) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    for url in ("/prisma", "/prisma.svg"):
        got = anonymous.get(url, follow_redirects=False)
        assert got.status_code == 303, url
        assert got.headers["location"] == f"/login?next={url.replace('/', '%2F')}"


def test_page_shows_the_counts_and_the_diagram(app: Any, users: dict[str, str]) -> None:
    seed_many(app.state.ctx)
    page = as_role(app, users, "viewer").get("/prisma")
    assert page.status_code == 200
    rows = _cells(page.text)
    assert rows[IDENTIFIED_STAGE][:2] == [IDENTIFIED_STAGE, "1,506"]
    assert rows[REVISED_STAGE][1] == "1" and rows[DUPLICATES_STAGE][1] == "0"
    # the stopping test is far from met: nothing is left unscreened yet
    assert rows[AUTOMATION_STAGE][1] == "0" and rows[INCLUDED_STAGE][1] == "2"  # + maybe
    assert rows[AWAITING_STAGE][1] == "1,502" and rows[BELOW_THRESHOLD_STAGE][1] == "1,501"
    assert CONFLICT_STAGE not in rows and len(rows[SCREENED_STAGE]) == 3  # no since column
    assert "No digest yet" in page.text
    # 1,501 records no person read, and the stopping test far from met: the page says so
    note = lxml.html.fromstring(page.text).xpath('string(//p[@id="automation-note"])')
    assert ("The 1,501 records ranked below the classifier's flag threshold have not been "
            "read by a person, so they count as awaiting screening: the stopping rule, the "
            "prioritised-order stopping test (Callaghan & Müller-Hansen 2020) on the "
            "classifier's ranking, does not support stopping yet") in note
    assert "never as excluded by a person" in note
    revised = lxml.html.fromstring(page.text).xpath('string(//p[@id="revised-note"])')
    assert "PubMed revised 1 record after mmlr first stored it" in revised
    assert "neither is a duplicate" in revised
    doc = lxml.html.fromstring(page.text)
    [svg] = doc.xpath("//figure[@class='prisma']/svg")
    assert svg.get("role") == "img"
    assert "n = 1,506" in " ".join(svg.xpath(".//g[contains(@class, 'box-identified')]"
                                             "//text/text()"))
    nav = [a.text for a in doc.xpath("//header//nav/a")]
    assert nav[nav.index("Summary of findings") + 1] == "PRISMA"


def _stopped_screening(app: Any) -> None:
    """Screened in queue order, every include early and a long run of excludes after the last
    one: the stopping test supports stopping; 10 records below the threshold left."""
    with app.state.ctx.sessions() as s:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(400):
            decided = i < 390
            decision = ("include" if i < 5 else "exclude") if decided else None
            s.add(Record(pmid=5000 + i, title=f"r {i}", score=1 - i / 1000,
                         flagged=i < 5, decision=decision,
                         first_seen_at=start - timedelta(days=1)))
            if decided:
                s.add(Decision(pmid=5000 + i, decision=decision or "", rank_shown=1,
                               created_at=start + timedelta(minutes=i)))
        s.commit()


def test_page_says_when_the_stopping_test_supports_the_classifiers_exclusions(
        app: Any, users: dict[str, str]) -> None:
    """The stopping test supports stopping, and the page says the exclusions rest on it (no
    caution)."""
    _stopped_screening(app)
    page = as_role(app, users, "viewer").get("/prisma").text
    note = lxml.html.fromstring(page).xpath('string(//p[@id="automation-note"])')
    assert "10 records were not screened by a person" in note, note
    assert ("screening stopped there under the stopping rule, the prioritised-order stopping "
            "test (Callaghan & Müller-Hansen 2020) on the classifier's ranking, which supports "
            "stopping") in note
    assert "removed before screening" in note
    cells = _cells(page)
    assert cells[AUTOMATION_STAGE][1] == "10" and cells[AWAITING_STAGE][1] == "0"
    # the diagram alone counts them as the page does
    svg = as_role(app, users, "viewer").get("/prisma.svg").text
    assert "n = 10" in boxes(svg)["removed"] and "n = 10" not in boxes(svg)["excluded"]


def test_the_threshold_is_described_as_the_active_model_made_it(settings: Any) -> None:
    """The page stated MMLR_TARGET_RECALL as the calibration ("calibrated to a recall of 90%")
    although the active classifier was calibrated to another target (a changed setting takes
    effect at the next training), and called the keyword prior's fixed 0.5 calibrated too."""
    app = create_app(settings.model_copy(update={"target_recall": 0.9}))
    try:
        _threshold_words(app)
    finally:
        app.state.ctx.dispose()


def _threshold_words(app: Any) -> None:
    _stopped_screening(app)
    test_web.make_user(app, "viewer@example.org", "viewer")
    viewer = as_role(app, {"viewer": "viewer@example.org"}, "viewer")
    with app.state.ctx.sessions() as s:
        s.add(ModelVersion(name="mmlr-default", config={"target_recall": 0.975},
                           threshold=0.4, n_positive=100, active=True))
        s.commit()
    note = lxml.html.fromstring(viewer.get("/prisma").text).xpath(
        'string(//p[@id="automation-note"])')
    assert "flag threshold (calibrated by cross-validation to a recall of 97.5%)" in note
    assert "90%" not in note
    with app.state.ctx.sessions() as s:
        for mv in s.exec(select(ModelVersion)).all():
            mv.active = False
            s.add(mv)
        s.add(ModelVersion(name="keyword-prior", config={"query": "q"}, threshold=0.5,
                           active=True))
        s.commit()
    note = lxml.html.fromstring(viewer.get("/prisma").text).xpath(
        'string(//p[@id="automation-note"])')
    assert ("below the keyword prior's flag threshold (a fixed score of 0.5, not calibrated: "
            "no classifier has been trained yet)") in note
    assert "calibrated to" not in note


def test_a_threshold_from_fewer_than_100_includes_is_said_to_be_unverified(
        settings: Any) -> None:
    """Below 100 includes a 99% target lets no include fall below the threshold: it is the
    lowest out-of-fold include score, the stored cross-validated recall is 1.0 by
    construction, and the page stated the target as if it had been met."""
    app = create_app(settings)
    try:
        _stopped_screening(app)
        test_web.make_user(app, "viewer@example.org", "viewer")
        viewer = as_role(app, {"viewer": "viewer@example.org"}, "viewer")
        for n_positive, unverified in ((99, True), (100, False)):
            with app.state.ctx.sessions() as s:
                for mv in s.exec(select(ModelVersion)).all():
                    mv.active = False
                    s.add(mv)
                s.add(ModelVersion(name="mmlr-default", config={"target_recall": 0.99},
                                   threshold=0.4, n_positive=n_positive, active=True))
                s.commit()
            note = " ".join(lxml.html.fromstring(viewer.get("/prisma").text).xpath(
                'string(//p[@id="automation-note"])').split())
            caveat = ("flag threshold (calibrated by cross-validation to a recall of 99%, "
                      "which cannot be verified with only 99 includes)")
            assert (caveat in note) is unverified, note
            assert "recall of 99%" in note and ("cannot be verified" in note) is unverified
    finally:
        app.state.ctx.dispose()


def test_page_under_dual_screening_and_since_the_last_digest(settings: Any) -> None:
    dual = create_app(settings.model_copy(update={"screeners_per_record": 2}))
    try:
        test_web.make_user(dual, "viewer@example.org", "viewer")
        seed_since(dual.state.ctx)
        with dual.state.ctx.sessions() as s:  # a conflict: two screeners, no agreement
            a, b = (s.exec(select(User).where(User.email == e)).one()
                    for e in ("a@example.org", "b@example.org"))
            s.add(Record(pmid=30, title="disputed", first_seen_at=BEFORE, score=0.9,
                         flagged=True))
            s.add_all([Decision(pmid=30, user_id=a.id, decision="include", created_at=AFTER),
                       Decision(pmid=30, user_id=b.id, decision="exclude", created_at=AFTER)])
            s.add(Digest(period_end=CUT, html="", text=""))
            s.commit()
        client = as_role(dual, {"viewer": "viewer@example.org"}, "viewer")
        page = client.get("/prisma")
        assert page.status_code == 200
        rows = _cells(page.text)
        assert rows[CONFLICT_STAGE][1:3] == ["1", "—"]
        assert rows[IDENTIFIED_STAGE][1:3] == ["12", "+5"]
        assert rows[REVISED_STAGE][1:3] == ["2", "+2"]
        assert DUPLICATES_STAGE in rows and rows[DUPLICATES_STAGE][1:3] == ["0", "—"]
        assert rows[INCLUDED_STAGE][1:3] == ["6", "+4"]  # with the maybe, 19
        assert rows[DELETED_STAGE][1:3] == ["1", "+1"]
        # 11 live, of which 17 and 20 await a decision (30 is in conflict: screened twice);
        # a difference: no dated figure
        assert rows[SCREENED_STAGE][1:3] == ["9", "—"]
        assert ("records (PMIDs) first stored after that time; a new version of a record "
                "held is not a new record") in rows[IDENTIFIED_STAGE][3]
        assert "period end 2025-11-02 12:00 UTC" in page.text
        doc = lxml.html.fromstring(page.text)
        conflict = " ".join(doc.xpath("//svg//g[contains(@class, 'box-conflicts')]"
                                      "//text/text()"))
        assert conflict.endswith("n = 1")
        image = client.get("/prisma.svg")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/svg+xml"
        assert image.headers["content-security-policy"].startswith("default-src 'none'")
        shown = boxes(image.text)
        assert shown["conflicts"].endswith("n = 1")
        assert "PubMed (each PMID once) n = 12 (+5 since 2025-11-02)" in shown["identified"]
    finally:
        dual.state.retrainer.join(timeout=30)
        dual.state.ctx.dispose()


# ----------------------------------------------------------------------------- export
def test_export_writes_the_diagram_beside_the_tables(ctx: Any, tmp_path: Path) -> None:
    seed_since(ctx)
    with ctx.sessions() as s:
        s.add(Digest(period_end=CUT, html="", text=""))
        s.commit()
    (tmp_path / "out").mkdir()
    written = export(ctx, "prisma", tmp_path / "out")
    assert [p.name for p in written] == ["prisma.csv", "prisma.md", "prisma.svg"]
    shown = boxes(written[2].read_text(encoding="utf-8"))
    # 11 PMIDs, 5 of them first stored after the cut; the new versions of 10 and 11 are no
    # new records (a note in the box, not a count that adds to the records identified)
    assert "PubMed (each PMID once) n = 11 (+5 since 2025-11-02)" in shown["identified"]
    assert ("revised in PubMed after first retrieval (counted once, not removed): n = 2 (+2 "
            "since 2025-11-02)") in shown["identified"]
    assert "conflicts" not in shown  # the test settings screen once


def test_cli_export_prisma(ctx: Any, db_url: str, tmp_path: Path) -> None:
    seed_many(ctx)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    folder = tmp_path / "prisma"
    folder.mkdir()
    proc = run_cli("export", "prisma", "--out", str(folder), env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["prisma.csv", "prisma.md", "prisma.svg"]
    assert str(folder / "prisma.svg") in proc.stderr.splitlines()
    assert "n = 1,506" in boxes((folder / "prisma.svg").read_text(encoding="utf-8"))["identified"]
    # without --out: the CSV on standard output, as before, and no diagram
    plain = run_cli("export", "prisma", env=env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0] == "stage,count,note" and lines[1].startswith(f"{IDENTIFIED_STAGE},1506,")
    assert "<svg" not in plain.stdout


# ----------------------------------------------------------------------------- real fonts
@pytest.mark.browser
def test_text_fits_its_boxes_in_chromium(chromium_path: str) -> None:
    """The wrapping estimates character widths; Chromium measures the text as drawn, in the
    worst case we expect (nine-digit counts, since figures, dual screening, a long title)."""
    from playwright.sync_api import sync_playwright
    from test_browser_web import CHROMIUM_ARGS

    counts = [(stage, 123_456_789, "") for stage in BOX_OF]
    since = PrismaSince(at=CUT, counts=dict.fromkeys(BOX_OF, 98_765_432))
    svg = prisma_svg(counts, title="Maintenance therapy in multiple myeloma: a living "
                     "systematic review, updated whenever PubMed has news " * 2, since=since)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_content(f"<!doctype html><html><body>{svg}</body></html>")
            overflow = page.evaluate("""() => {
                const out = [];
                const svg = document.querySelector('svg');
                const width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height;
                // the rotated phase labels are measured against their bars below
                for (const t of svg.querySelectorAll('text:not([transform])')) {
                    const b = t.getBBox();
                    const box = t.closest('g.box');
                    const r = box ? box.querySelector('rect').getBBox()
                                  : {x: 0, y: 0, width: width, height: height};
                    if (b.x < r.x || b.x + b.width > r.x + r.width
                        || b.y < r.y || b.y + b.height > r.y + r.height) {
                        out.push(t.textContent);
                    }
                }
                for (const bar of svg.querySelectorAll('rect.phase')) {
                    const label = bar.nextElementSibling.getBoundingClientRect();
                    const r = bar.getBoundingClientRect();
                    if (label.top < r.top || label.bottom > r.bottom) {
                        out.push(bar.nextElementSibling.textContent);
                    }
                }
                return out;
            }""")
        finally:
            browser.close()
    assert overflow == []


#: A stored code as a reader must never meet it: lower-case words joined by underscores.
_CODE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


def test_page_gives_every_full_text_reason_in_words(app: Any, users: dict[str, str]) -> None:
    """The reasons for excluding reports after reading them, and their notes, are words on
    the page: never a stored code such as ``not_randomised``, nor a code a later version
    renamed (stored rows keep it)."""
    from store.fulltext import REASONS
    from store.fulltext import assess as record_assessment

    with app.state.ctx.sessions() as s:
        curator = s.exec(select(User).where(User.email == users["curator"])).one()
        for pmid, code in enumerate(REASONS, start=1):
            s.add(Record(pmid=pmid, title=f"Included {pmid}", decision="include"))
            s.flush()
            record_assessment(s, user=curator, pmid=pmid, verdict="excluded", reason=code,
                              note="single arm" if code == "other" else None,
                              screeners_per_record=1)
        # a reason code of an earlier version, stored before it was renamed
        s.add(Record(pmid=99, title="Included long ago", decision="include"))
        s.add(FullTextAssessment(pmid=99, user_id=curator.id, verdict="excluded",
                                 reason="wrong_population", kind="verdict"))
        s.commit()
    page = as_role(app, users, "viewer").get("/prisma").text
    rows = _cells(page)
    for code, words in REASONS.items():
        stage = f"{EXCLUDED_REASON_PREFIX}{'other reasons' if code == 'other' else words}"
        assert rows[stage][1] == "1", (code, rows)
    assert rows[f"{EXCLUDED_REASON_PREFIX}wrong population"][1] == "1"
    # nothing a reader meets in the table, stage or note, is a code
    leaked = {cell for cells in rows.values() for cell in cells if _CODE.search(cell)}
    assert not leaked, leaked
