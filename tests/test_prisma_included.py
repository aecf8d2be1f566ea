"""The PRISMA flow's last box counts what its flow carries there: a trial's report counts as
a new included report only once its record passed title/abstract screening, was settled
eligible at full text and is not deleted (each PMID once), and a new trial only with such a
report. Every other trial's report (unscreened, excluded at either stage, deleted, awaiting
its verdict) is pooled once verified, so it is flagged instead: on /fulltext's mismatch
list and its API, in the digest, and in the message of the link or the new trial."""

from __future__ import annotations

from typing import Any

import test_web
from sqlmodel import select
from test_web import api_as, as_role, csrf_from, db

from reports.digest import build_digest
from reports.prisma import (
    ELIGIBLE_STAGE,
    ELIGIBLE_UNLINKED_STAGE,
    INCLUDED_STAGE,
    NEW_REPORTS_OF_PREVIOUS_STAGE,
    NEW_REPORTS_STAGE,
    NEW_TRIALS_STAGE,
    REPORTS_STAGE,
    SCREENED_STAGE,
    TRIALS_STAGE,
    prisma_counts,
    prisma_identities,
    prisma_since,
)
from store.models import Record, Trial, TrialReport, utcnow

app = test_web.app
users = test_web.users


def _flow(app: Any) -> dict[str, int]:
    with db(app) as s:
        counts = prisma_counts(s)
    assert all(whole == parts for _, whole, parts in prisma_identities(counts))
    return {stage: n for stage, n, _ in counts}


def _mismatch(api: Any) -> dict[int, str | None]:
    return {r["pmid"]: r["link_problem"]
            for r in api.get("/api/fulltext?show=mismatch").json()["reports"]}


def test_only_reports_that_passed_both_stages_are_included(app: Any,
                                                          users: dict[str, str]) -> None:
    with db(app) as s:
        for pmid in (90000083, 90000088):
            s.add(Record(pmid=pmid, title=f"Unscreened {pmid}"))
        s.add(Record(pmid=90000179, title="Eligible report", decision="include"))
        old = Trial(name="OLD-1", drug="lenalidomide", setting="post_asct")
        s.add(old)
        s.commit()
        old_id = old.id
    curator = as_role(app, users, "curator")
    api = api_as(app, users, "curator")
    token = csrf_from(curator.get("/trials").text)

    # a new trial from a record nobody screened: the message says the flow does not count it
    made = curator.post("/trials/new", data={
        "csrf_token": token, "name": "SYN-NEW-A", "drug": "lenalidomide",
        "setting": "post_asct", "from_pmid": "90000083"}, follow_redirects=False)
    assert made.status_code == 303
    page = curator.get(made.headers["location"]).text
    assert "PMID 90000083 has no title/abstract decision yet" in page
    assert "so that the PRISMA flow counts it as included" in page
    linked = curator.post("/records/90000088/reports", data={
        "csrf_token": token, "trial_id": str(old_id), "kind": "secondary",
        "citation": "X", "year": "2025"}, follow_redirects=False)
    assert linked.status_code == 303
    n = _flow(app)
    assert n[SCREENED_STAGE] == 1 and n[INCLUDED_STAGE] == 1 and n[ELIGIBLE_STAGE] == 0
    # neither report passed screening: no new study, no new report
    assert (n[TRIALS_STAGE], n[NEW_TRIALS_STAGE], n[REPORTS_STAGE], n[NEW_REPORTS_STAGE]) \
        == (0, 0, 0, 0)
    assert _mismatch(api) == {90000083: "unscreened", 90000088: "unscreened"}
    html = as_role(app, users, "viewer").get("/fulltext?show=mismatch").text
    row = html.split('data-pmid="90000083"')[1].split("</tr>")[0]
    assert "not counted as included in the PRISMA flow" in row and "SYN-NEW-A" in row

    # an included record settled eligible and linked to two trials: one report, two trials
    assert api.post("/api/records/90000179/fulltext",
                    json={"verdict": "eligible"}).status_code == 201
    with db(app) as s:
        new_id = s.exec(select(Trial.id).where(Trial.name == "SYN-NEW-A")).one()
        s.add(TrialReport(trial_id=old_id, pmid=90000179, citation="a"))
        s.add(TrialReport(trial_id=new_id, pmid=90000179, citation="a"))
        s.commit()
    n = _flow(app)
    assert (n[TRIALS_STAGE], n[NEW_TRIALS_STAGE], n[REPORTS_STAGE], n[NEW_REPORTS_STAGE],
            n[NEW_REPORTS_OF_PREVIOUS_STAGE]) == (2, 2, 1, 1, 0)
    # the eligible linked reports are the new reports: eligible − not linked yet
    assert n[ELIGIBLE_STAGE] - n[ELIGIBLE_UNLINKED_STAGE] == n[NEW_REPORTS_STAGE]
    with db(app) as s:
        since = prisma_since(s, utcnow().replace(year=2000)).counts
    assert (since[TRIALS_STAGE], since[REPORTS_STAGE]) == (2, 1)

    # excluded at title/abstract after all: out of the box, and flagged
    decided = api.post("/api/decisions", json={"pmid": 90000179, "decision": "exclude"})
    assert decided.status_code in (200, 201), decided.text
    n = _flow(app)
    assert (n[TRIALS_STAGE], n[REPORTS_STAGE]) == (0, 0)
    assert _mismatch(api)[90000179] == "excluded_at_screening"
    digest = build_digest(app.state.ctx)
    flagged = {r["pmid"]: r["problem"]
               for r in digest.summary["fulltext"]["linked_not_included"]}
    assert flagged[90000179] == "a trial's report excluded at title/abstract screening"
    assert "CHECK: trials' reports the PRISMA flow does not count as included" in digest.text

    # included again, then deleted from PubMed: still out, flagged as deleted
    api.post("/api/decisions", json={"pmid": 90000179, "decision": "include"})
    assert _flow(app)[NEW_REPORTS_STAGE] == 1
    with db(app) as s:
        record = s.get(Record, 90000179)
        assert record is not None
        record.deleted = True
        s.add(record)
        s.commit()
    n = _flow(app)
    assert (n[TRIALS_STAGE], n[REPORTS_STAGE]) == (0, 0)
    assert _mismatch(api)[90000179] == "deleted"


def test_a_linked_report_awaiting_its_verdict_is_flagged_until_settled(
        app: Any, users: dict[str, str]) -> None:
    with db(app) as s:
        s.add(Record(pmid=90000140, title="Included", decision="include"))
        trial = Trial(name="NEW-2", drug="lenalidomide", setting="post_asct")
        s.add(trial)
        s.commit()
        trial_id = trial.id
    curator = as_role(app, users, "curator")
    api = api_as(app, users, "curator")
    token = csrf_from(curator.get("/records/90000140").text)
    done = curator.post("/records/90000140/reports", data={
        "csrf_token": token, "trial_id": str(trial_id), "kind": "primary", "citation": "X"},
        follow_redirects=False)
    assert done.status_code == 303
    assert "PMID 90000140 has no settled full-text verdict yet" in curator.get(
        done.headers["location"]).text
    assert _mismatch(api) == {90000140: "awaiting"}
    assert _flow(app)[NEW_TRIALS_STAGE] == 0
    api.post("/api/records/90000140/fulltext", json={"verdict": "eligible"})
    assert _mismatch(api) == {}
    assert _flow(app)[NEW_TRIALS_STAGE] == 1
