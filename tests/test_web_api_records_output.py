"""GET /api/records byte for byte: every field of every record, under each filter, in single
and dual screening.

The expected bodies (``api_records_expected.json``) were written by the handler as it was on
2026-12-02 before its speed-up (commit 312b85b), from the database built here; the handler
may be reworked for speed, and this file says its answers did not change. Since then each
record also says how it was first identified (``identified_via``, migration 0016); the file
was written again with that field added and compared: nothing else differed. On 2026-12-02 a
score tie started to go to the newest PMID, as in the queue (``store.models.BY_SCORE``; it
went to the oldest): the file was written again, and a comparison showed every answer with
the same records, each byte for byte, in that order, each page a slice of its full list.

The review holds a trial with a registration, a previous-version report of it linked forward
by PubMed, and records that match it by registration, by name in the title or abstract and by
a comment link; records at both screening stages, full-text verdicts, votes, a deleted record,
unscored records (pages that end, start or lie among them), non-ASCII text and a score that
has no short decimal form.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import select
from test_web import db, make_user
from test_web_api import _token

from store.audit import SEED_TRIAL
from store.models import AuditLog, Decision, FullTextAssessment, Record, Trial, TrialReport, User

app = test_web.app
users = test_web.users
records = test_web.records

EXPECTED = Path(__file__).with_name("api_records_expected.json")
SINGLE = ("status=all", "status=undecided", "status=decided", "status=include",
          "status=maybe", "status=exclude", "status=deleted", "status=all&flagged=true",
          "status=all&limit=3&offset=2", "status=all&limit=3&offset=9",
          "status=all&limit=2&offset=11", "status=all&limit=5&offset=12",
          "status=all&offset=20", "status=undecided&limit=4&offset=3",
          "status=decided&limit=2&offset=4", "status=all&flagged=true&offset=3", "q=calgb",
          "q=myeloma&status=undecided", "q=nothing-holds-this")
DUAL = ("status=all", "status=undecided", "status=conflict", "status=decided")


@pytest.fixture
def review(app: Any, users: dict[str, str], records: int) -> None:
    """The records fixture's five records, plus a trial, its reports and matches, decisions,
    full-text verdicts and votes."""
    make_user(app, "curator2@example.org", "curator")
    with db(app) as s:
        curator = s.exec(select(User).where(User.email == users["curator"])).one()
        second = s.exec(select(User).where(User.email == "curator2@example.org")).one()
        trial = Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct",
                      registry_ids=["NCT00114101"])
        other = Trial(name="Myeloma XI", drug="lenalidomide", setting="post_asct",
                      registry_ids=["ISRCTN49407852"])
        s.add(trial)
        s.add(other)
        s.flush()
        # A previous-version report (seed trial, source key): out of the screening pool.
        s.add(AuditLog(actor="seed", action=SEED_TRIAL, object_type="trial",
                       object_id=str(trial.id), details={}))
        s.add(TrialReport(trial_id=trial.id, pmid=90000010, citation="McCarthy 2012",
                          source_key="seed:calgb"))
        s.add(Record(pmid=90000010, title="Lenalidomide after stem-cell transplantation",
                     score=0.8, flagged=True, journal="N Engl J Med", year=2012,
                     comments_corrections=[{"ref_type": "UpdateIn", "pmid": 90000011}]))
        s.add(Record(pmid=90000011, title="Lenalidomide maintenance: long-term follow-up",
                     abstract="Updated analysis.", score=0.1 + 0.2, flagged=False,
                     journal="Lancet Haematol", year=2017, volume="4", issue="9",
                     pages="e431-e442", doi="10.1016/x", status="MEDLINE",
                     publication_types=["Journal Article", "Randomized Controlled Trial"]))
        s.add(Record(pmid=90000012, title="A review of maintenance trials",
                     abstract="CALGB 100104 and Myeloma 11 (ISRCTN49407852) were randomised.",
                     score=0.65, decision="include", journal="Blood", year=2021,
                     authors=["Müller K", "Ñúñez P"], keywords=["maintenance"]))
        s.add(Record(pmid=90000013, title="Comment on CALGB 100104 — ≥65 years, 11-year data",
                     score=0.3, decision="maybe", elocation="pii: S0000",
                     comments_corrections=[{"ref_type": "CommentOn", "pmid": 90000010}]))
        s.add(Record(pmid=90000014, title="Excluded after reading", score=0.7, flagged=True,
                     decision="include", retracted=True))
        s.add(Record(pmid=90000015, title="Voted on, in conflict", score=0.55))
        # unscored records come last, the newest PMID first (the fixture has 90000004)
        s.add(Record(pmid=90000016, title="Unscored, found later", flagged=True))
        s.add(Record(pmid=90000009, title="Unscored, decided", decision="exclude"))
        for pmid, decision in ((90000012, "include"), (90000013, "maybe"),
                               (90000014, "include"), (90000003, "exclude")):
            s.add(Decision(pmid=pmid, user_id=curator.id, decision=decision))
        s.add(Decision(pmid=90000012, user_id=second.id, decision="include"))
        s.add(Decision(pmid=90000015, user_id=curator.id, decision="include"))
        s.add(Decision(pmid=90000015, user_id=second.id, decision="exclude"))
        record = s.get(Record, 90000003)
        assert record is not None
        record.decision = "exclude"
        s.add(record)
        s.add(FullTextAssessment(pmid=90000014, user_id=curator.id, verdict="excluded",
                                 reason="population"))
        s.add(FullTextAssessment(pmid=90000012, user_id=curator.id, verdict="eligible"))
        s.commit()


def _bodies(app: Any, email: str, queries: tuple[str, ...], prefix: str) -> dict[str, str]:
    api = TestClient(app, raise_server_exceptions=False, headers=_token(app, email))
    out = {}
    for query in queries:
        response = api.get(f"/api/records?{query}")
        assert response.status_code == 200, (query, response.text)
        assert response.headers["content-type"] == "application/json"
        out[f"{prefix} {query}"] = response.text
    return out


def _expected(keys: dict[str, str]) -> dict[str, str]:
    stored: dict[str, str] = json.loads(EXPECTED.read_text(encoding="utf-8"))
    return {key: stored[key] for key in keys}


def test_records_api_answers_as_before(app: Any, users: dict[str, str], review: None) -> None:
    bodies = _bodies(app, users["viewer"], SINGLE, "single")
    assert bodies == _expected(bodies)
    # every record has its trial matches, and some have several reasons
    assert '"reasons":["registration NCT00114101 listed in the record"]' in bodies[
        "single status=all"]


class TestDual:
    @pytest.fixture
    def settings(self, settings: Any) -> Any:
        return settings.model_copy(update={"screeners_per_record": 2})

    def test_records_api_answers_as_before(self, app: Any, users: dict[str, str],
                                           review: None) -> None:
        bodies = _bodies(app, users["curator"], DUAL, "dual")
        assert bodies == _expected(bodies)
