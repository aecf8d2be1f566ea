"""Two independent full-text assessors (MMLR_SCREENERS_PER_RECORD=2): the settling rule
(``store.fulltext.outcome``), votes refused by state, resolutions and who may make them,
blinding on the record page and in the API, the list, the counts and PRISMA lines, agreement,
the digest, switching the setting, and migration 0010. Real app and database (SQLite, or
PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import pytest
import test_web
import test_web_dual_screening
from fastapi.testclient import TestClient
from migration_steps import alembic_config
from sqlalchemy import text
from sqlmodel import func, select
from test_web import as_role, csrf_from, db
from test_web_api import _token
from test_web_dual_screening import FIRST, SECOND, THIRD

from reports.digest import build_digest
from reports.prisma import FULLTEXT_AWAITING_STAGE, prisma_counts
from store.errors import StateError
from store.fulltext import (
    REASONS,
    RESOLUTION,
    VERDICT,
    VOTE,
    assess,
    fulltext_counts,
    outcome,
    outcomes,
)
from store.models import AuditLog, FullTextAssessment, Record, Trial, User, utcnow

app = test_web.app
users = test_web.users

settings = test_web_dual_screening.settings  # two screeners (assessors) per record
team = test_web_dual_screening.team
PMID, OTHER = 90000021, 90000022
XSS = "<img src=x onerror=alert(1)>"


# ----------------------------------------------------------------------------- the rule
def _row(id_: int, user_id: int | None, verdict: str, reason: str | None = None,
         kind: str = VOTE) -> FullTextAssessment:
    return FullTextAssessment(id=id_, pmid=1, user_id=user_id, verdict=verdict, reason=reason,
                              kind=kind)


@pytest.mark.parametrize(("rows", "state", "settled_by"), [
    ([], "awaiting", None),
    ([_row(1, 7, "eligible")], "awaiting_second", None),
    ([_row(1, 7, "eligible"), _row(2, 8, "eligible")], "resolved", 2),
    ([_row(1, 7, "eligible"), _row(2, 8, "not_retrieved")], "conflict", None),
    # the same verdict for two reasons: PRISMA reports one reason per report
    ([_row(1, 7, "excluded", "population"), _row(2, 8, "excluded", "no_outcome")],
     "conflict", None),
    ([_row(1, 7, "excluded", "population"), _row(2, 8, "excluded", "population")],
     "resolved", 2),
    # a voter changes their vote after discussing it: the latest vote per person counts
    ([_row(1, 7, "eligible"), _row(2, 8, "excluded", "population"), _row(3, 7, "excluded",
                                                                         "population")],
     "resolved", 3),
    ([_row(1, 7, "eligible"), _row(2, 7, "excluded", "other")], "awaiting_second", None),
    ([_row(1, 7, "eligible"), _row(2, 8, "not_retrieved"),
      _row(3, 9, "eligible", kind=RESOLUTION)], "resolved", 3),
    # one assessor's verdict settles; so does a resolution after agreement (an admin's change)
    ([_row(1, 7, "eligible", kind=VERDICT)], "resolved", 1),
    ([_row(1, 7, "eligible"), _row(2, 8, "eligible"),
      _row(3, 9, "excluded", "population", kind=RESOLUTION)], "resolved", 3),
    # a vote without a user (an import) is nobody's: it cannot be one of two people
    ([_row(1, None, "eligible"), _row(2, 8, "eligible")], "awaiting_second", None),
])
def test_the_settling_rule(rows: list[FullTextAssessment], state: str,
                           settled_by: int | None) -> None:
    o = outcome(list(reversed(rows)))  # any order: ids decide
    assert o.state == state
    assert (o.row.id if o.row is not None else None) == settled_by
    if state in ("awaiting", "awaiting_second", "conflict"):
        assert o.verdict == state and o.reason is None


# ----------------------------------------------------------------------------- store
def _seed(session: Any) -> list[User]:
    people = [User(email=f"a{i}@example.org", role="curator") for i in range(3)]
    session.add_all(people)
    session.add(Record(pmid=1, title="Included 1", decision="include"))
    session.add(Record(pmid=2, title="Included 2", decision="include"))
    session.commit()
    for p in people:
        session.refresh(p)
    return people


def _vote(session: Any, user: User, pmid: int, verdict: str, reason: str | None = None,
          ) -> FullTextAssessment:
    row = assess(session, user=user, pmid=pmid, verdict=verdict, reason=reason,
                 screeners_per_record=2).row
    session.commit()
    return row


def test_votes_are_refused_on_a_settled_report_and_by_a_third_person_in_a_conflict(
        ctx: Any) -> None:
    with ctx.sessions() as s:
        a, b, c = _seed(s)
        assert _vote(s, a, 1, "eligible").kind == VOTE
        assert outcomes(s, [1])[1].state == "awaiting_second"
        _vote(s, b, 1, "eligible")
        assert outcomes(s, [1])[1].verdict == "eligible"
        with pytest.raises(StateError, match="settled \\(eligible\\); votes no longer"):
            _vote(s, c, 1, "not_retrieved")
        s.rollback()
        _vote(s, a, 2, "eligible")
        _vote(s, b, 2, "excluded", "not_randomised")
        with pytest.raises(StateError, match="disagree; a third vote does not settle it"):
            _vote(s, c, 2, "eligible")
        s.rollback()
        assert s.exec(select(func.count()).select_from(FullTextAssessment)).one() == 4
        assert StateError("x").http_status == 409
        # one of the two may change their vote: that is how a discussion settles it
        _vote(s, a, 2, "excluded", "not_randomised")
        assert outcomes(s, [2])[2].reason == "not_randomised"
        audited = s.exec(select(AuditLog).where(AuditLog.action == "fulltext.assess")
                         .order_by(AuditLog.id)).all()
        assert [(e.details or {}).get("state") for e in audited] == [
            "awaiting_second", "resolved", "awaiting_second", "conflict", "resolved"]


def test_counts_and_prisma_count_settled_reports_only(ctx: Any) -> None:
    with ctx.sessions() as s:
        a, b, _ = _seed(s)
        s.add(Record(pmid=3, title="Included 3", decision="include"))
        s.commit()
        _vote(s, a, 1, "excluded", "population")
        _vote(s, b, 1, "excluded", "population")
        cut = utcnow()
        _vote(s, a, 2, "eligible")
        _vote(s, b, 2, "not_retrieved")
        _vote(s, a, 3, "eligible")
        counts = fulltext_counts(s)
        assert (counts.sought, counts.awaiting, counts.awaiting_second, counts.conflicts,
                counts.assessed, counts.excluded_total, counts.eligible) == (3, 2, 1, 1, 1, 1, 0)
        assert counts.excluded == {**dict.fromkeys(REASONS, 0), "population": 1}
        assert counts.to_json()["conflicts"] == 1
        assert fulltext_counts(s, since=cut).assessed == 0  # settled before the cut
        lines = {stage: (n, note) for stage, n, note in prisma_counts(s)}
        assert lines[FULLTEXT_AWAITING_STAGE] == (
            2, "included, full-text assessment not settled yet (1 awaiting a second "
               "assessor, 1 in conflict)")


def test_two_assessors_agreeing_on_other_keep_both_notes(ctx: Any, tmp_path: Any) -> None:
    """Both exclude for "other" in their own words: that is agreement (the reason is the
    same), but the settled outcome keeps both notes; it showed the last vote's only, in the
    API and the records export, and the first assessor's reason was lost."""
    import csv
    import io

    from reports.exports import export

    with ctx.sessions() as s:
        a, b, _ = _seed(s)
        for user, note in ((a, "single-arm study"), (b, "conference abstract only")):
            assess(s, user=user, pmid=1, verdict="excluded", reason="other", note=note,
                   screeners_per_record=2)
            s.commit()
    out = export(ctx, "csv", tmp_path / "records.csv")[0]
    rows = {int(r["pmid"]): r["fulltext_reason"]
            for r in csv.DictReader(io.StringIO(out.read_text(), newline=""))}
    assert rows[1] == "other reason: single-arm study / conference abstract only"
    with ctx.sessions() as s:
        (o,) = outcomes(s, [1]).values()
        assert o.state == "resolved" and o.reason == "other"
        assert o.note == "single-arm study / conference abstract only"


def test_switching_the_setting_never_unsettles_a_report(ctx: Any) -> None:
    with ctx.sessions() as s:
        a, b, c = _seed(s)
        assess(s, user=a, pmid=1, verdict="eligible", screeners_per_record=1)
        s.commit()
        assert outcomes(s, [1])[1].state == "resolved"  # one assessor's verdict
        with pytest.raises(StateError, match="settled"):  # then two assessors: still settled
            _vote(s, b, 1, "not_retrieved")
        s.rollback()
        _vote(s, a, 2, "eligible")
        _vote(s, b, 2, "not_retrieved")
        # back to one assessor: the conflict waits, and one person's verdict settles it
        assert outcomes(s, [2])[2].state == "conflict"
        row = assess(s, user=c, pmid=2, verdict="not_retrieved", screeners_per_record=1).row
        s.commit()
        assert row.kind == VERDICT and outcomes(s, [2])[2].verdict == "not_retrieved"


# ----------------------------------------------------------------------------- web app
@pytest.fixture
def included(app: Any) -> None:
    """Two records included at title/abstract screening."""
    with db(app) as s:
        s.add(Record(pmid=PMID, title="<b>Maintenance</b> trial", decision="include"))
        s.add(Record(pmid=OTHER, title="Second include", decision="include"))
        s.commit()


def _api(app: Any, email: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, headers=_token(app, email))


def _post(client: TestClient, path: str, **data: str) -> Any:
    token = csrf_from(client.get(f"/records/{PMID}").text)
    return client.post(path, follow_redirects=False, data={**data, "csrf_token": token})


def _section(html: str) -> str:
    return html.split('id="fulltext"')[1].split("</section>")[0]


def test_the_second_assessor_cannot_see_the_first_vote(
        app: Any, team: dict[str, str], included: None) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    # A verdict changed while alone is still one assessor's ("2 votes recorded" said two).
    assert _post(first, f"/records/{PMID}/fulltext", verdict="eligible").status_code == 303
    saved = _post(first, f"/records/{PMID}/fulltext", verdict="excluded",
                  reason="not_maintenance", note=XSS)
    assert saved.status_code == 303
    mine = _section(first.get(f"/records/{PMID}").text)
    assert "awaiting a second assessor" in mine and "Your vote:" in mine
    assert "&lt;img src=x" in mine and XSS not in mine
    theirs = _section(second.get(f"/records/{PMID}").text)
    assert "1 vote recorded, hidden until you assess" in theirs
    # (the form lists every reason; the vote itself appears nowhere)
    assert "excluded" not in theirs.split("<form")[0] and "ft-votes" not in theirs \
        and "ft-history" not in theirs and "onerror" not in theirs and "img src" not in theirs
    assert 'class="fulltext-form' in theirs  # and they may cast the second vote
    # the API blinds the same way
    blind = _api(app, SECOND).get(f"/api/records/{PMID}/fulltext").json()
    assert (blind["state"], blind["hidden_votes"], blind["history"], blind["votes"]) == (
        "awaiting_second", 1, [], [])
    own = _api(app, FIRST).get(f"/api/records/{PMID}/fulltext").json()
    assert own["your_vote"] == "excluded" and len(own["history"]) == 2
    listing = second.get("/fulltext").text
    row = listing.split(f'data-pmid="{PMID}"')[1].split("</tr>")[0]
    assert "awaiting a second assessor" in row and "excluded" not in row
    # each person's to-do: the reports still needing their vote
    def yours(email: str) -> list[int]:
        reports = _api(app, email).get("/api/fulltext?show=yours").json()["reports"]
        return [r["pmid"] for r in reports]
    assert yours(FIRST) == [OTHER]
    assert yours(SECOND) == [OTHER, PMID]  # unassessed first, then awaiting a second
    assert "awaiting your vote" in listing


def test_save_and_next_skips_the_reports_you_voted_on(
        app: Any, team: dict[str, str], included: None) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    assert "Save and assess the next report" in first.get(f"/records/{PMID}").text
    to_other = _post(first, f"/records/{PMID}/fulltext", verdict="eligible", then="next")
    assert to_other.headers["location"] == f"/records/{OTHER}#fulltext"
    done = _post(first, f"/records/{OTHER}/fulltext", verdict="eligible", then="next")
    assert done.headers["location"] == "/fulltext"  # both voted: nothing left for them
    # the second assessor is led to the report they have not assessed yet
    back = _post(second, f"/records/{OTHER}/fulltext", verdict="eligible", then="next")
    assert back.headers["location"] == f"/records/{PMID}#fulltext"
    # the agreeing second vote settles the report and says so (this flash once raised a 500)
    assert back.status_code == 303
    assert "the two assessors agree: settled" in second.get(f"/records/{PMID}").text


def test_linking_with_the_box_casts_a_vote_and_keeps_the_blinding(
        app: Any, team: dict[str, str], included: None) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    with db(app) as s:
        trial = Trial(name="GIMEMA", drug="lenalidomide", setting="post_asct")
        s.add(trial)
        s.commit()
        trial_id = trial.id
    linked = _post(first, f"/records/{PMID}/reports", trial_id=str(trial_id), kind="primary",
                   citation="X 2026", fulltext_eligible="1")
    assert linked.status_code == 303
    assert "Full-text vote recorded: eligible." in first.get(linked.headers["location"]).text
    with db(app) as s:
        assert outcomes(s, [PMID])[PMID].state == "awaiting_second"
    assert "also record my full-text" not in first.get(f"/records/{PMID}").text  # voted
    theirs = second.get(f"/records/{PMID}").text
    assert "1 vote recorded, hidden until you assess" in theirs
    assert "also record my full-text vote, eligible" in theirs


def test_a_conflict_is_resolved_by_a_third_person_with_a_note(
        app: Any, team: dict[str, str], included: None) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    third, viewer = as_role(app, team, "curator3"), as_role(app, team, "viewer")
    _post(first, f"/records/{PMID}/fulltext", verdict="eligible")
    voted = _post(second, f"/records/{PMID}/fulltext", verdict="excluded", reason="population")
    assert voted.status_code == 303
    flashed = second.get(f"/records/{PMID}").text
    assert "the two assessors disagree: a conflict to resolve" in flashed
    page = _section(flashed)
    assert "conflict: the two assessors disagree" in page
    assert f"{FIRST}</span>: eligible" in page and "excluded: not multiple myeloma" in page
    assert "fulltext-resolve-form" not in page  # an assessor does not resolve their conflict
    assert "a conflict is resolved by an admin or a curator who did not assess it" in page
    # a third vote is refused; a third person's resolution needs a note
    refused = _post(third, f"/records/{PMID}/fulltext", verdict="eligible")
    assert refused.status_code == 409 and "a third vote does not settle it" in refused.text
    assert "fulltext-resolve-form" in _section(third.get(f"/records/{PMID}").text)
    no_note = _post(third, f"/records/{PMID}/fulltext/resolve", verdict="eligible")
    assert no_note.status_code == 400 and "a resolution needs a note" in no_note.text
    by_voter = _post(first, f"/records/{PMID}/fulltext/resolve", verdict="eligible",
                     note="mine")
    assert by_voter.status_code == 403
    assert _post(viewer, f"/records/{PMID}/fulltext/resolve", verdict="eligible",
                 note="x").status_code == 403
    done = _post(third, f"/records/{PMID}/fulltext/resolve", verdict="eligible",
                 note="the population includes <i>myeloma</i> patients only")
    assert done.status_code == 303
    flashed = third.get(f"/records/{PMID}").text
    assert "Full-text assessment resolved: eligible" in flashed
    page = _section(flashed)
    assert "ft-state-resolved" in page and "&lt;i&gt;myeloma&lt;/i&gt;" in page
    # settled: only an admin changes it
    again = _post(third, f"/records/{PMID}/fulltext/resolve", verdict="not_retrieved",
                  note="changed my mind")
    assert again.status_code == 403 and "only an admin" in again.text
    admin = as_role(app, team, "admin")
    assert "Change the settled verdict" in admin.get(f"/records/{PMID}").text
    assert _post(admin, f"/records/{PMID}/fulltext/resolve", verdict="not_retrieved",
                 note="the journal withdrew the full text").status_code == 303
    with db(app) as s:
        rows = s.exec(select(FullTextAssessment).order_by(FullTextAssessment.id)).all()
        assert [(r.kind, r.verdict) for r in rows] == [
            (VOTE, "eligible"), (VOTE, "excluded"), (RESOLUTION, "eligible"),
            (RESOLUTION, "not_retrieved")]
        assert s.exec(select(func.count()).select_from(AuditLog)
                      .where(AuditLog.action == "fulltext.resolve")).one() == 2


def test_a_vote_sent_again_after_a_resolution_does_not_say_the_assessors_agree(
        app: Any, team: dict[str, str], included: None) -> None:
    """Back, then the vote form sent again, after a third person resolved the conflict: the
    flash said "the two assessors agree: settled" of votes eligible and excluded."""
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    third = as_role(app, team, "curator3")
    _post(first, f"/records/{PMID}/fulltext", verdict="eligible")
    _post(second, f"/records/{PMID}/fulltext", verdict="excluded", reason="population")
    assert _post(third, f"/records/{PMID}/fulltext/resolve", verdict="excluded",
                 reason="population", note="read the methods").status_code == 303
    again = _post(first, f"/records/{PMID}/fulltext", verdict="eligible")
    assert again.status_code == 303
    page = first.get(f"/records/{PMID}").text
    assert (f"Full-text vote already saved: eligible (PMID {PMID}); settled as excluded: not "
            f"multiple myeloma, or not the review's population by a resolution by {THIRD}, "
            "whatever the votes.") in page.replace("&#39;", "'")
    assert "the two assessors agree" not in page


def test_resolving_needs_a_conflict_and_two_assessors(
        app: Any, team: dict[str, str], included: None) -> None:
    admin = as_role(app, team, "admin")
    early = _post(admin, f"/records/{PMID}/fulltext/resolve", verdict="eligible", note="x")
    assert early.status_code == 409 and "votes from 0 of 2 assessors" in early.text
    _api(app, FIRST).post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"})
    one = _api(app, THIRD).post(f"/api/records/{PMID}/fulltext/resolve",
                                json={"verdict": "eligible", "note": "x"})
    assert one.status_code == 409 and "1 of 2 assessors" in one.json()["error"]
    with db(app) as s:
        assert s.exec(select(func.count()).select_from(FullTextAssessment)
                      .where(FullTextAssessment.kind == RESOLUTION)).one() == 0


def test_with_one_assessor_a_resolution_is_refused(ctx: Any) -> None:
    """Single assessment has no conflicts: a new verdict changes a report (409 otherwise)."""
    from screening.web.fulltext import resolve

    with ctx.sessions() as s:
        a, _, _ = _seed(s)
        assess(s, user=a, pmid=1, verdict="eligible", screeners_per_record=1)
        s.commit()
        admin = User(email="admin@example.org", role="admin")
        with pytest.raises(StateError, match="assessed by one person"):
            resolve(s, user=admin, pmid=1, verdict="not_retrieved", reason=None, note="x",
                    dual=False)
        s.rollback()
        assert outcomes(s, [1])[1].verdict == "eligible"


def test_the_list_puts_conflicts_first_and_reports_agreement(
        app: Any, team: dict[str, str], included: None) -> None:
    a, b = _api(app, FIRST), _api(app, SECOND)
    assert a.post(f"/api/records/{OTHER}/fulltext", json={"verdict": "eligible"}).json()[
        "state"] == "awaiting_second"
    assert b.post(f"/api/records/{OTHER}/fulltext", json={"verdict": "eligible"}).json()[
        "state"] == "resolved"
    a.post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"})
    made = b.post(f"/api/records/{PMID}/fulltext",
                  json={"verdict": "excluded", "reason": "no_outcome"})
    assert made.status_code == 201 and made.json()["kind"] == VOTE
    assert made.json()["state"] == "conflict"
    read = _api(app, team["viewer"]).get("/api/fulltext").json()
    assert [r["pmid"] for r in read["reports"]] == [PMID, OTHER]
    assert [v["verdict"] for v in read["reports"][0]["votes"]] == ["eligible", "excluded"]
    assert read["reports"][1]["votes"] == []  # settled: the list shows the verdict
    assert (read["counts"]["conflicts"], read["counts"]["eligible"]) == (1, 1)
    assert read["agreement"]["n"] == 2 and read["agreement"]["raw_agreement"] == 0.5
    # first assessor always eligible, second half and half: chance agreement 0.5, so κ = 0
    assert read["agreement"]["kappa"] == pytest.approx(0.0)
    conflicts = _api(app, team["viewer"]).get("/api/fulltext?show=conflict").json()
    assert [r["pmid"] for r in conflicts["reports"]] == [PMID]
    pointer = as_role(app, team, "viewer").get("/conflicts").text
    assert '<a href="/fulltext?show=conflict">1 report whose two assessors disagree</a>' \
        in pointer
    html = as_role(app, team, "viewer").get("/fulltext").text
    assert 'class="ft-conflicts">1<' in html and 'class="ft-agreement-n">2<' in html
    assert 'class="ft-kappa">0.000<' in html
    assert "Cohen&#39;s κ" in html or "Cohen's κ" in html
    records = {r["pmid"]: r["fulltext"] for r in
               _api(app, team["viewer"]).get("/api/records").json()["records"]}
    assert records == {PMID: "conflict", OTHER: "eligible"}


def test_a_verdict_corrected_before_the_second_assessor_voted_counts_as_agreement(
        app: Any, team: dict[str, str], included: None) -> None:
    """As at title/abstract screening: the first assessor's latest vote before the second's
    first is their blind judgement. Counting the first vote (not_retrieved, corrected to
    eligible while alone) made one of two agreeing reports a disagreement: raw 0.5."""
    a, b = _api(app, FIRST), _api(app, SECOND)
    a.post(f"/api/records/{PMID}/fulltext", json={"verdict": "not_retrieved"})
    a.post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"})
    assert b.post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"}).json()[
        "state"] == "resolved"
    a.post(f"/api/records/{OTHER}/fulltext", json={"verdict": "excluded", "reason": "population"})
    assert b.post(f"/api/records/{OTHER}/fulltext",
                  json={"verdict": "excluded", "reason": "population"}).json()[
        "state"] == "resolved"
    agreement = _api(app, team["viewer"]).get("/api/fulltext").json()["agreement"]
    assert agreement["n"] == 2 and agreement["raw_agreement"] == 1.0
    assert agreement["kappa"] == pytest.approx(1.0)  # p_e = .5·.5 + .5·.5 = .5


def test_the_digest_lists_settled_reports_and_counts_votes_only(
        app: Any, team: dict[str, str], included: None) -> None:
    a, b = _api(app, FIRST), _api(app, SECOND)
    a.post(f"/api/records/{OTHER}/fulltext", json={"verdict": "excluded", "reason": "other",
                                                   "note": "single arm"})
    a.post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"})
    b.post(f"/api/records/{PMID}/fulltext", json={"verdict": "eligible"})
    digest = build_digest(app.state.ctx)
    ft = digest.summary["fulltext"]
    # votes: how many, never which way; the report their agreement settled, by its verdict
    assert ft["counts"] == {"eligible": 1, "votes": 3}
    assert [r["pmid"] for r in ft["eligible"]] == [PMID] and ft["excluded"] == []
    assert ft["now"]["awaiting_second"] == 1
    assert "other" not in digest.html.split('id="fulltext"')[1].split("</div>")[0]


@pytest.mark.empty_database
def test_migration_0010_keeps_every_verdict_settling(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0009")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO fulltext_assessments (pmid, verdict, created_at) "
                              "VALUES (5, 'eligible', :at)"), {"at": utcnow()})
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT kind FROM fulltext_assessments")).scalar() \
                == VERDICT
        command.downgrade(cfg, "0009")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM fulltext_assessments")).scalar() == 1
    finally:
        engine.dispose()
