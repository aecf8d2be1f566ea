"""The audit trail page (/admin/audit) and its CSV: filters, a trial's history, paging,
escaping, refusals, and admins only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import lxml.html
import pytest
import test_web
from test_web import as_role, db

from store.audit import AUDIT_CSV_COLUMNS, audit
from store.models import AuditLog, Estimate, Trial, TrialReport

app = test_web.app
users = test_web.users

HOSTILE = '<script>alert("x")</script> =HYPERLINK("http://evil")'


@pytest.fixture
def trail(app: Any, users: dict[str, str]) -> dict[str, int]:
    """Two trials, each with a report and an estimate, their audit rows on three days, and
    rows of other kinds (a login, a hostile detail)."""
    day = datetime(2026, 11, 1, 12, tzinfo=UTC)
    ids: dict[str, int] = {}
    with db(app) as s:
        for n, name in enumerate(("ALPHA", "BETA")):
            trial = Trial(name=name, drug="lenalidomide", setting="post_asct")
            s.add(trial)
            s.flush()
            report = TrialReport(trial_id=trial.id, pmid=31000000 + n, citation="x")
            s.add(report)
            s.flush()
            estimate = Estimate(trial_id=trial.id, report_id=report.id, endpoint="PFS",
                                setting="post_asct", hr=0.5, ci_low=0.4, ci_high=0.6,
                                log_hr=-0.69, se=0.1, method="reported_ci")
            s.add(estimate)
            s.flush()
            assert trial.id and report.id and estimate.id
            ids[name] = trial.id
            ids[f"{name}-estimate"] = estimate.id
            for offset, (action, kind, obj) in enumerate((
                    ("trial.add", "trial", trial.id),
                    ("report.add", "trial_report", report.id),
                    ("estimate.add", "estimate", estimate.id),
                    ("estimate.verify", "estimate", estimate.id))):
                s.add(AuditLog(at=day + timedelta(days=offset), actor=users["curator"],
                               action=action, object_type=kind, object_id=str(obj),
                               details={"trial": name, "warnings": ["a", "b"]}))
        s.add(AuditLog(at=day, actor="system", action="auth.login_failed",
                       object_type="login", object_id="someone@example.org",
                       details={"client": "203.0.113.9"}))
        audit(s, "trial.edit", actor=users["admin"], object_type="trial",
              object_id=ids["ALPHA"], note=HOSTILE)
        s.commit()
    return ids


def _rows(page: str) -> list[tuple[str, str]]:
    tree = lxml.html.fromstring(page)
    return [(tr.xpath("string(td[4])").strip(), tr.xpath("string(td[5])").strip())
            for tr in tree.xpath('//table[@class="audit-trail"]/tbody/tr')]


def test_only_admins_see_the_trail(app: Any, users: dict[str, str],
                                   trail: dict[str, int]) -> None:
    for role in ("viewer", "curator"):
        client = as_role(app, users, role)
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403
        assert "/admin/audit" not in client.get(f"/trials/{trail['ALPHA']}").text
    admin = as_role(app, users, "admin")
    page = admin.get("/admin/audit")
    assert page.status_code == 200
    # the fixture's rows, newest first, among the users' creation and the logins above
    ours = [a for a, _ in _rows(page.text) if a != "auth.login" and not a.startswith("user.")]
    assert ours[0] == "trial.edit" and len(ours) == 10
    assert "auth.login_failed" in ours
    assert f"{len(_rows(page.text))} entries" in page.text
    assert 'href="/admin/audit?trial=' in admin.get(f"/trials/{trail['ALPHA']}").text


def test_filters_narrow_the_trail(app: Any, users: dict[str, str],
                                  trail: dict[str, int]) -> None:
    admin = as_role(app, users, "admin")

    def actions(query: str) -> list[str]:
        response = admin.get(f"/admin/audit?{query}")
        assert response.status_code == 200, response.text
        return [action for action, _ in _rows(response.text)]

    # a family of actions, and one action
    assert actions("action=estimate") == ["estimate.verify", "estimate.verify",
                                          "estimate.add", "estimate.add"]
    assert actions("action=estimate.add") == ["estimate.add", "estimate.add"]
    # a person (any case), an object, a day range (both days included)
    assert len(actions(f"actor={users['curator'].upper()}")) == 8
    assert actions("object_type=login&object_id=someone@example.org") == ["auth.login_failed"]
    assert sorted(actions("since=2026-11-02&until=2026-11-03")) == [
        "estimate.add", "estimate.add", "report.add", "report.add"]
    # the last day a date picker offers is a bound like any other (the day after overflowed)
    assert sorted(actions("since=2026-11-02&until=9999-12-31")) == sorted(
        actions("since=2026-11-02"))
    assert admin.get("/admin/audit.csv?until=9999-12-31").status_code == 200
    # a trial's history: its own rows and its report's and estimate's, not the other trial's
    alpha = admin.get(f"/admin/audit?trial={trail['ALPHA']}")
    assert "<h1>Audit trail: ALPHA</h1>" in alpha.text
    history = _rows(alpha.text)
    assert [a for a, _ in history] == ["trial.edit", "estimate.verify", "estimate.add",
                                       "report.add", "trial.add"]
    assert all("BETA" not in obj for _, obj in history)
    assert f"estimate {trail['ALPHA-estimate']}" in [obj for _, obj in history]
    assert f"trial {trail['ALPHA']} (ALPHA)" in [obj for _, obj in history]  # named


def test_details_are_escaped_and_the_csv_is_spreadsheet_safe(
        app: Any, users: dict[str, str], trail: dict[str, int]) -> None:
    admin = as_role(app, users, "admin")
    page = admin.get("/admin/audit?action=trial.edit")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "warnings</strong>: a, b" in admin.get("/admin/audit?action=trial.add").text
    got = admin.get(f"/admin/audit.csv?trial={trail['BETA']}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="mmlr-audit-trail.csv"' in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert tuple(rows[0]) == AUDIT_CSV_COLUMNS
    assert [r["action"] for r in rows] == ["estimate.verify", "estimate.add", "report.add",
                                           "trial.add"]
    assert rows[0]["details"] == '{"trial": "BETA", "warnings": ["a", "b"]}'
    hostile = list(csv.DictReader(io.StringIO(
        admin.get("/admin/audit.csv?action=trial.edit").text)))
    assert hostile[0]["details"].startswith('{"note": "<script>')  # JSON: a brace first
    excel = admin.get(f"/admin/audit.csv?trial={trail['BETA']}&excel=1")
    assert excel.content == "\ufeff".encode() + got.content


@pytest.mark.parametrize(("query", "message"), [
    ("since=2026-13-01", "since &#39;2026-13-01&#39; is not a date"),
    ("until=2026W48", "until &#39;2026W48&#39; is not a date"),  # an ISO week
    ("since=2026-11-05&until=2026-11-01", "since 2026-11-05 is after until 2026-11-01"),
    ("action=drop%20table", "action &#39;drop table&#39; is not an action name"),
    ("trial=abc", "trial &#39;abc&#39; is not a trial id"),
    ("object_type=a.b", "object type &#39;a.b&#39; is not an object type"),
    ("actor=" + "a" * 300, "actor is longer than 254 characters"),
])
def test_a_bad_filter_is_said_beside_the_form_and_kept(
        app: Any, users: dict[str, str], trail: dict[str, int], query: str,
        message: str) -> None:
    admin = as_role(app, users, "admin")
    page = admin.get(f"/admin/audit?{query}")
    assert page.status_code == 400
    assert message in page.text
    tree = lxml.html.fromstring(page.text)
    field, _, value = query.split("&")[0].partition("=")
    assert tree.xpath(f'string(//input[@name="{field}"]/@value)') == value.replace("%20", " ")
    assert admin.get(f"/admin/audit.csv?{query}").status_code == 400


def test_the_trail_pages(app: Any, users: dict[str, str]) -> None:
    from screening.web.routes_audit import PAGE_SIZE

    with db(app) as s:
        for n in range(PAGE_SIZE + 5):
            audit(s, "pool.requested", actor=users["curator"], n=n)
        s.commit()
    admin = as_role(app, users, "admin")
    first = admin.get("/admin/audit?action=pool")
    assert len(_rows(first.text)) == PAGE_SIZE
    assert f"1–{PAGE_SIZE} of {PAGE_SIZE + 5}" in first.text
    second = admin.get(f"/admin/audit?action=pool&offset={PAGE_SIZE}")
    assert len(_rows(second.text)) == 5 and "← newer" in second.text
    past = admin.get("/admin/audit?action=pool&offset=1000")
    assert "past the last entry" in past.text
    # The CSV is for the review's records: every row the filters select, not one page.
    csv_text = admin.get("/admin/audit.csv?action=pool").text
    assert len(csv_text.strip().splitlines()) == 1 + PAGE_SIZE + 5


def test_a_trial_id_no_trial_has_is_said_not_shown_as_an_empty_history(
        app: Any, users: dict[str, str], trail: dict[str, int]) -> None:
    """Trials are never deleted: an id without a trial is a typo, which "0 entries" under the
    plain heading hid (the admin read it as a trial nobody touched)."""
    admin = as_role(app, users, "admin")
    missing = max(trail.values()) + 1000
    page = admin.get(f"/admin/audit?trial={missing}")
    assert page.status_code == 404
    assert f"there is no trial {missing}" in page.text
    tree = lxml.html.fromstring(page.text)
    assert tree.xpath('string(//input[@name="trial"]/@value)') == str(missing)  # kept to fix
    assert not tree.xpath("//table[contains(@class, 'audit-trail')]")
    got = admin.get(f"/admin/audit.csv?trial={missing}")
    assert got.status_code == 404 and "there is no trial" in got.text


def test_numbers_in_details_are_shown_short_and_kept_whole_in_the_csv(
        app: Any, users: dict[str, str]) -> None:
    with db(app) as s:
        audit(s, "decision.add", actor=users["curator"], object_type="record",
              object_id=90000001, score_shown=0.995929862284104, rank_shown=3)
        s.commit()
    admin = as_role(app, users, "admin")
    page = admin.get("/admin/audit?action=decision.add").text
    assert "score shown</strong>: 0.99593" in page and "0.995929862284104" not in page
    assert "rank shown</strong>: 3" in page
    (row,) = list(csv.DictReader(io.StringIO(
        admin.get("/admin/audit.csv?action=decision.add").text)))
    assert "0.995929862284104" in row["details"]


def test_the_api_gives_admins_the_trail_with_the_pages_filters(
        app: Any, users: dict[str, str], trail: dict[str, int]) -> None:
    """``GET /api/audit``: a script (an admin's token) reads what the page shows, as JSON."""
    from fastapi.testclient import TestClient
    from test_web_api import _token

    api = TestClient(app, raise_server_exceptions=False)
    for role in ("viewer", "curator"):
        refused = api.get("/api/audit", headers=_token(app, users[role]))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden" and "admin" in refused.json()["error"]
    assert api.get("/api/audit").status_code == 401
    admin = _token(app, users["admin"])
    alpha = api.get(f"/api/audit?trial={trail['ALPHA']}&limit=2", headers=admin)
    assert alpha.status_code == 200, alpha.text
    body = alpha.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 0)
    assert [r["action"] for r in body["rows"]] == ["trial.edit", "estimate.verify"]
    assert body["rows"][0]["details"] == {"note": HOSTILE}  # data, not markup: kept as it is
    assert set(body["rows"][0]) == set(AUDIT_CSV_COLUMNS)
    rest = api.get(f"/api/audit?trial={trail['ALPHA']}&limit=2&offset=2", headers=admin).json()
    assert [r["action"] for r in rest["rows"]] == ["estimate.add", "report.add"]
    day = api.get("/api/audit?since=2026-11-02&until=2026-11-02&action=report",
                  headers=admin).json()
    assert [(r["action"], r["at"][:10]) for r in day["rows"]] == [
        ("report.add", "2026-11-02"), ("report.add", "2026-11-02")]
    # the page's refusals, as the API's errors
    bad = api.get("/api/audit?since=2026-11-03&until=2026-11-01", headers=admin)
    assert bad.status_code == 400 and "is after until" in bad.json()["error"]
    missing = api.get("/api/audit?trial=999999", headers=admin)
    assert missing.status_code == 404 and "there is no trial 999999" in missing.json()["error"]
    assert api.get("/api/audit?limit=0", headers=admin).status_code == 400


def test_the_csv_reads_the_trail_in_batches_and_loses_no_row_where_many_share_a_second(
        app: Any, users: dict[str, str], trail: dict[str, int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole trail did not fit in memory (the file and every row at once); the CSV now
    reads it a batch at a time, each after the last row of the one before, where rows
    sharing a timestamp straddle a batch's end."""
    from sqlalchemy import event

    import screening.web.routes_audit as routes_audit

    same = datetime(2026, 11, 2, 12, tzinfo=UTC)
    with db(app) as s:
        for n in range(7):
            s.add(AuditLog(at=same, actor=users["curator"], action="pool.requested",
                           details={"n": n}))
        s.commit()
    admin = as_role(app, users, "admin")
    whole = list(csv.DictReader(io.StringIO(admin.get("/admin/audit.csv").text)))
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM audit_log" in statement:
            reads.append(statement)

    engine = app.state.ctx.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        monkeypatch.setattr(routes_audit, "CSV_BATCH", 2)
        batched = list(csv.DictReader(io.StringIO(admin.get("/admin/audit.csv").text)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [r["action"] for r in whole].count("pool.requested") == 7
    assert batched == whole  # the same rows, once each, in the same order
    assert len({r["id"] for r in batched}) == len(batched)
    assert len(reads) >= len(whole) // 2  # one statement per batch of two
    page_ids = [r.id for r in _page_rows(app)]
    assert [int(r["id"]) for r in batched] == page_ids  # newest first, as the page


def test_rows_written_while_the_csv_downloads_are_left_for_the_next_one(
        app: Any, users: dict[str, str], trail: dict[str, int]) -> None:
    from store.audit import AuditQuery, audit_row_batches

    batches = audit_row_batches(app.state.ctx.sessions, AuditQuery(), size=3)
    first = next(batches)
    with db(app) as s:
        audit(s, "pool.requested", actor=users["curator"])
        s.commit()
    rest = [row for batch in batches for row in batch]
    got = [row.id for row in first + rest]
    assert got == [r.id for r in _page_rows(app)][1:]  # all but the new row, once each
    empty = audit_row_batches(app.state.ctx.sessions, AuditQuery(actor="nobody@x.org"))
    assert list(empty) == []


def _page_rows(app: Any) -> list[AuditLog]:
    from store.audit import AuditQuery, audit_rows

    with db(app) as s:
        return audit_rows(s, AuditQuery())
