"""Form fields a screen reader user can fill in: each field's hint and error are read with it.
Over the real app and database (starlette TestClient)."""

from __future__ import annotations

import re
from typing import Any

import test_web
from test_web import as_role, csrf_from
from test_web_evidence import _trial

app = test_web.app
users = test_web.users


def _field(page: str, field_id: str) -> str:
    match = re.search(rf'<(?:input|textarea)[^>]*\bid="{field_id}"[^>]*>', page)
    assert match, field_id
    return match.group(0)


def test_a_fields_hint_and_error_are_tied_to_it(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    page = curator.get(f"/trials/{trial_id}").text
    citation = _field(page, "rep-citation")
    assert 'aria-describedby="rep-citation-hint"' in citation
    assert '<p class="hint" id="rep-citation-hint">authors, journal, year' in page
    assert "aria-describedby" not in _field(page, "rep-year")  # no hint, no error: nothing
    # a bad report: the error comes first, then the hint
    refused = curator.post(f"/trials/{trial_id}/reports", data={
        "pmid": "abc", "year": "", "kind": "primary", "citation": "",
        "csrf_token": csrf_from(page)}).text
    assert 'aria-describedby="rep-citation-error rep-citation-hint"' in _field(refused,
                                                                             "rep-citation")
    assert 'id="rep-citation-error"' in refused
    assert 'aria-invalid="true" aria-describedby="rep-pmid-error"' in _field(refused, "rep-pmid")


def test_login_and_password_errors_are_tied_to_their_fields(
        app: Any, users: dict[str, str]) -> None:
    from fastapi.testclient import TestClient
    from test_web import login

    with TestClient(app, raise_server_exceptions=False) as anonymous:
        failed = login(anonymous, users["curator"], password="wrong password").text
    assert '<p class="error-message" id="login-error" role="alert">' in failed
    for field in ("email", "password"):
        assert 'aria-invalid="true" aria-describedby="login-error"' in _field(failed, field)
    curator = as_role(app, users, "curator")
    page = curator.get("/account").text
    refused = curator.post("/account/password", data={
        "current_password": "not my password", "new_password": "a-new-password-1",
        "confirm_password": "a-new-password-1", "csrf_token": csrf_from(page)}).text
    assert 'id="password-error" role="alert"' in refused
    assert 'aria-describedby="password-error"' in _field(refused, "current_password")
    admin = as_role(app, users, "admin").get("/admin/users").text
    assert 'aria-describedby="new-password-hint"' in _field(admin, "new-password")


def test_each_estimates_controls_are_named_after_it(app: Any, users: dict[str, str]) -> None:
    """A screen reader's list of controls tells one estimate's Verify from another's."""
    import lxml.html
    from sqlmodel import select

    from monitor.bootstrap import load_seed_evidence
    from store.models import Trial

    with test_web.db(app) as session:
        load_seed_evidence(session)
        session.commit()
        trial = session.exec(select(Trial).where(Trial.name == "CALGB 100104")).one()
    page = lxml.html.fromstring(as_role(app, users, "curator").get(f"/trials/{trial.id}").text)
    rows = page.xpath('//tr[contains(@class, "estimate-row")]')
    assert len(rows) >= 2
    names = []
    for row in rows:
        number = row.get("id").removeprefix("estimate-")
        endpoint = row.xpath("string(td[2])").strip()
        hr = row.xpath('string(td[contains(@class, "hr")])').strip()
        which = f"estimate {number} ({endpoint}, HR {hr})"
        [button] = row.xpath('.//form[contains(@action, "/verify")]//button')
        assert button.get("aria-label") == f"{button.text_content().strip()} {which}"
        assert row.xpath('.//a[contains(@href, "/edit")]/@aria-label') == [f"Correct {which}"]
        assert row.xpath(".//summary/@aria-label") == [f"Withdraw {which}"]
        names.append(button.get("aria-label"))
    assert len(set(names)) == len(names)


def button_names(html: str) -> list[str]:
    """The accessible name of every button in the page's main part: its aria-label, else its
    text; each must start with the words a sighted user sees on it (WCAG 2.5.3)."""
    import lxml.html

    names = []
    for button in lxml.html.fromstring(html).xpath("//main//button"):
        visible = " ".join(button.text_content().split())
        name = button.get("aria-label") or visible
        assert name.startswith(visible), (name, visible)
        names.append(name)
    return names


def test_the_buttons_of_each_row_are_named_after_it(app: Any, users: dict[str, str]) -> None:
    """A screen reader's list of buttons tells one user's, subscriber's or analysis' buttons
    from another's, instead of reading "Change, Deactivate, Issue API token" once per row."""
    from test_pool import add_estimate, add_trial

    from reports.pool import pool_all
    from store.subscribers import add_subscriber

    with test_web.db(app) as session:
        for email in ("ana@example.org", "bo@example.org"):
            add_subscriber(session, email, actor="test")
        lonely = add_trial(session, "Trial A")
        add_estimate(session, lonely, "0.60", "0.45", "0.80", year=2010)
        session.commit()
    pool_all(app.state.ctx)
    admin = as_role(app, users, "admin")
    for path, at_least in [("/admin/users", 9), ("/admin/subscribers", 2), ("/estimates", 2)]:
        names = button_names(admin.get(path).text)
        assert len(names) >= at_least, (path, names)
        assert len(set(names)) == len(names), (path, names)
    users_page = button_names(admin.get("/admin/users").text)
    assert {"Change role of viewer@example.org", "Deactivate viewer@example.org",
            "Issue API token for viewer@example.org"} <= set(users_page)


def test_the_extraction_forms_report_error_is_tied_to_its_select(
        app: Any, users: dict[str, str]) -> None:
    """The Report select got aria-invalid but named no error, and its error had no id: a
    screen reader on the select did not read why it was refused."""
    import lxml.html
    from test_web_evidence import _post_estimate

    trial_id = _trial(app)
    refused = _post_estimate(as_role(app, users, "curator"), trial_id, report_id="999",
                             hr="0.5", ci_low="0.4", ci_high="0.6")
    assert refused.status_code == 400, refused.text
    page = lxml.html.fromstring(refused.text)
    (select,) = page.xpath('//select[@id="report_id"]')
    assert select.get("aria-invalid") == "true"
    (error,) = page.xpath(f'//*[@id="{select.get("aria-describedby")}"]')
    assert "field-error" in error.get("class")
    assert "Report 999 does not belong to trial TEST-1" in error.text_content()
    # the summary above the form links to it
    (summary,) = page.xpath('//div[contains(@class, "error-summary")]')
    assert summary.xpath(".//a/@href") == ["#report_id"]
