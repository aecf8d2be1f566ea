"""``/fetch``: a curator fetches PubMed records by PMID from the web app — the same poll as
`mmlr poll --pmids`, against a real E-utilities replay server serving real PubMed records
from ../shared/data/pubmed, in a background thread under the poll's database lock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlmodel import select
from test_poll import _batches_done
from test_web import as_role, csrf_from, db, make_user

from monitor.replay_server import iter_indexed, start_replay_server
from monitor.service import fetch_pmids
from screening.web.app import create_app
from screening.web.fetch import MAX_PMIDS, parse_pmid_field
from store.errors import ValidationError
from store.locks import job_lock
from store.models import AuditLog, PollRun, Record

# Two real records of the replay folder (metapub's single-record efetch files), and a PMID
# the folder does not have (PubMed returns nothing for it).
REAL = (11618220, 11636720)
ABSENT = 99999998


@pytest.fixture
def served(settings: Any, pubmed_dir: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    """A web app that fetches from the replay server, with a user of each role."""
    with start_replay_server(pubmed_dir / "efetch_xml" / "metapub" / "pmid_xml",
                             rate_limit=None) as srv:
        app = create_app(settings.model_copy(update={"entrez_url": srv.url}),
                         fetch=fetch_pmids)
        users = {role: f"{role}@example.org" for role in ("admin", "curator", "viewer")}
        for role, email in users.items():
            make_user(app, email, role)
        yield app, users
        app.state.fetcher.join(timeout=30)
        app.state.ctx.dispose()


def _post(client: TestClient, pmids: str) -> Any:
    token = csrf_from(client.get("/fetch").text)
    return client.post("/fetch", data={"pmids": pmids, "csrf_token": token},
                       follow_redirects=False)


def test_a_curator_fetches_records_by_pmid(served: tuple[Any, dict[str, str]]) -> None:
    app, users = served
    curator = as_role(app, users, "curator")
    sent = _post(curator, f"{REAL[0]}, {REAL[1]}\n{ABSENT}  # from a reference list")
    assert sent.status_code == 303 and sent.headers["location"] == "/fetch"
    app.state.fetcher.join(timeout=30)
    page = curator.get("/fetch").text
    assert "Fetched from PubMed: 2 new, 1 not returned by PubMed." in page
    with db(app) as s:
        stored = {r.pmid: r for r in s.exec(select(Record))}
        assert set(stored) == set(REAL)
        runs = list(s.exec(select(PollRun)))
        assert [(r.kind, r.status, sorted(r.pmids)) for r in runs] == [
            ("pmids", "completed", sorted([*REAL, ABSENT]))]
        [asked] = s.exec(select(AuditLog).where(AuditLog.action == "record.fetch_requested"))
        assert asked.actor == users["curator"] and asked.details["pmids"] == [*REAL, ABSENT]
    for pmid in REAL:  # each linked to its record, named by its title
        title = str(escape(stored[pmid].title[:20]))
        assert f'<a href="/records/{pmid}">PMID {pmid}</a>: {title}' in page
    assert f"PMID {ABSENT}: <span class=\"muted\">not stored: PubMed returned no record" in page
    # the search page's "not stored" hint now finds it; another PMID gets the fetch button
    found = curator.get(f"/search?q={REAL[0]}", follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/records/{REAL[0]}"
    missing = curator.get(f"/search?q={ABSENT}").text
    assert f'<button type="submit" class="secondary">Fetch PMID {ABSENT} from PubMed' in missing
    # asked again: fetched again, nothing new
    assert _post(curator, str(REAL[0])).status_code == 303
    app.state.fetcher.join(timeout=30)
    assert "Fetched from PubMed: 1 unchanged." in curator.get("/fetch").text


@pytest.mark.parametrize(("typed", "said"), [
    ("", "no PMID given"),
    ("12345 abc", "line 1: 'abc' is not a PMID"),
    ("1\n2\n0", "line 3: '0' is not a PMID"),
    (" ".join(str(n) for n in range(1, MAX_PMIDS + 2)), f"{MAX_PMIDS + 1} PMIDs given; at most"),
])
def test_a_list_that_is_not_pmids_is_refused_beside_the_field_and_kept(
        served: tuple[Any, dict[str, str]], typed: str, said: str) -> None:
    app, users = served
    curator = as_role(app, users, "curator")
    refused = _post(curator, typed)
    assert refused.status_code == 400 and str(escape(said)) in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert f">{typed}</textarea>" in refused.text  # nothing typed is lost
    with db(app) as s:
        assert s.exec(select(PollRun)).first() is None  # nothing asked of PubMed


def test_typed_text_is_escaped(served: tuple[Any, dict[str, str]]) -> None:
    app, users = served
    refused = _post(as_role(app, users, "curator"), "<script>alert(1)</script>")
    assert refused.status_code == 400
    assert "<script>alert(1)" not in refused.text and "&lt;script&gt;alert(1)" in refused.text


def test_a_fetch_while_a_poll_runs_fetches_nothing_and_says_so(
        served: tuple[Any, dict[str, str]]) -> None:
    """The fetch is a poll: it takes the poll's database lock, so it never runs beside the
    scheduled poll (or `mmlr poll` by hand) and says so instead of waiting."""
    app, users = served
    curator = as_role(app, users, "curator")
    with job_lock(app.state.ctx.engine, "poll"):
        assert _post(curator, str(REAL[0])).status_code == 303
        app.state.fetcher.join(timeout=30)
    page = curator.get("/fetch").text
    assert "Nothing fetched: PubMed was being polled at that moment" in page
    assert "held by" not in page  # the lock's holder is the log's business
    with db(app) as s:
        assert s.exec(select(Record)).first() is None


def test_pubmed_unreachable_is_one_clear_line(settings: Any) -> None:
    """Nothing listens at the conftest's E-utilities address: the fetch fails, says why."""
    app = create_app(settings.model_copy(update={"entrez_max_retries": 0}), fetch=fetch_pmids)
    try:
        make_user(app, "curator@example.org", "curator")
        curator = as_role(app, {"curator": "curator@example.org"}, "curator")
        assert _post(curator, str(REAL[0])).status_code == 303
        app.state.fetcher.join(timeout=60)
        page = curator.get("/fetch").text
        assert "Failed: cannot reach E-utilities at " in page and "Traceback" not in page
        assert f"PMID {REAL[0]}: <span class=\"muted\">not fetched</span>" in page
    finally:
        app.state.ctx.dispose()


def test_only_curators_fetch_and_an_app_without_the_monitor_cannot(
        served: tuple[Any, dict[str, str]], settings: Any) -> None:
    app, users = served
    viewer = as_role(app, users, "viewer")
    assert viewer.get("/fetch").status_code == 403
    token = csrf_from(viewer.get("/").text)
    assert viewer.post("/fetch", data={"pmids": str(REAL[0]), "csrf_token": token},
                       follow_redirects=False).status_code == 403
    curator = as_role(app, users, "curator")
    assert curator.post("/fetch", data={"pmids": str(REAL[0])},
                        follow_redirects=False).status_code in (400, 403)  # no CSRF token
    assert "Fetch PMID" not in viewer.get(f"/search?q={ABSENT}").text
    # built without a fetcher (`create_app(settings)`): the page says so, nothing is offered
    plain = create_app(settings.model_copy(update={"database_url": settings.db_url}))
    try:
        make_user(plain, "c2@example.org", "curator")
        other = as_role(plain, {"curator": "c2@example.org"}, "curator")
        page = other.get("/fetch").text
        assert "This web app cannot fetch from PubMed" in page and "<textarea" not in page
        assert "Fetch PMID" not in other.get(f"/search?q={ABSENT}").text
        assert "mmlr poll --pmids" in other.get(f"/search?q={ABSENT}").text
        refused = _post(other, str(REAL[0]))
        assert refused.status_code == 409 and "cannot fetch from PubMed" in refused.text
    finally:
        plain.state.ctx.dispose()


def test_the_field_takes_lines_commas_and_comments_each_pmid_once() -> None:
    assert parse_pmid_field("3, 1;2\n# a comment\n 1 2 # again\n") == [3, 1, 2]
    with pytest.raises(ValidationError, match="longer than"):
        parse_pmid_field("1 " * 3000)


def test_a_fetch_ends_after_its_batch_when_the_app_shuts_down(
        settings: Any, pubmed_dir: Path) -> None:
    """`mmlr web`/`serve` stopping (SIGTERM) used to wait up to a minute while a curator's
    fetch went on asking PubMed, batch after batch; the process then ended it wherever it
    was. It now ends after the current batch, checkpointed, and the next poll resumes it."""
    folder = pubmed_dir / "efetch_xml" / "metapub" / "pmid_xml"
    pmids = sorted(record.pmid for record in iter_indexed(folder))[:8]
    with start_replay_server(folder, rate_limit=None, delay=0.3) as srv:
        app = create_app(settings.model_copy(update={"entrez_url": srv.url,
                                                     "entrez_batch_size": 1}),
                         fetch=fetch_pmids)
        try:
            with TestClient(app):  # the app's lifespan: its shutdown comes at the block's end
                app.state.fetcher.start(pmids, by="curator@example.org")
                deadline = time.monotonic() + 60
                while _batches_done(app.state.ctx) < 1:
                    assert time.monotonic() < deadline, "the fetch never stored a batch"
                    time.sleep(0.05)
            assert not app.state.fetcher.job.running
            with db(app) as s:
                run = s.exec(select(PollRun)).one()
            assert run.status == "interrupted" and 1 <= run.batches_done < len(pmids)
        finally:
            app.state.fetcher.join(timeout=30)
            app.state.ctx.dispose()

