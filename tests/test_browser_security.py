"""Defences that only a real browser proves: hostile text from PubMed and a hostile stored
digest run nothing in Chromium, and the login cookie is out of reach of page scripts."""

from __future__ import annotations

from typing import Any

import pytest
import test_browser_web
import test_web
from sqlmodel import select
from test_web import db

from store.models import Decision, Digest

pytestmark = pytest.mark.browser

app = test_web.app
users = test_web.users
records = test_web.records
server = test_browser_web.server
browser = test_browser_web.browser

#: A digest as no template of ours writes it (the stored HTML is shown as it was stored):
#: every way in to run a script that a mail client or a page might honour.
HOSTILE_DIGEST = (
    "<html><body><h1>Digest</h1>"
    "<script>alert('script')</script>"
    "<img src=x onerror=\"alert('onerror')\">"
    "<a id=js href=\"javascript:alert('href')\">click</a>"
    "<form action=\"https://evil.example/\"><button id=steal>go</button></form>"
    "<iframe src=\"javascript:alert('frame')\"></iframe>"
    "</body></html>")


def test_hostile_text_and_a_hostile_digest_run_nothing(app: Any, users: dict[str, str],
                                                       records: int, server: str,
                                                       browser: Any) -> None:
    with db(app) as session:
        digest = Digest(subject="hostile", html=HOSTILE_DIGEST, text="plain")
        session.add(digest)
        session.commit()
        digest_id = digest.id
    dialogs: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    test_browser_web._log_in(page, server, users["viewer"])
    # the record whose title and abstract carry <script> and onerror (tests/test_web.py)
    page.goto(f"{server}/records/90000002")
    assert page.get_by_role("heading", level=1).inner_text().startswith("<script>")
    page.goto(f"{server}/digests/{digest_id}")
    frame = page.frame_locator("iframe")
    assert frame.locator("h1").inner_text() == "Digest"  # the digest itself is shown
    frame.locator("#js").click()  # a javascript: link in the sandbox goes nowhere
    frame.locator("#steal").click()  # nor does a form (the sandbox has no allow-forms)
    page.wait_for_load_state("load")
    assert page.url == f"{server}/digests/{digest_id}"
    # the stored HTML opened on its own is sandboxed by its own policy too
    page.goto(f"{server}/digests/{digest_id}/html")
    page.wait_for_load_state("load")
    assert dialogs == []
    # The login cookie: HttpOnly (no script reads it), SameSite=Lax (no cross-site form
    # carries it). Playwright's evaluate() runs despite the page's policy, as an injected
    # script would if the policy were missing.
    page.goto(f"{server}/account")
    assert "mmlr_session" not in page.evaluate("document.cookie")
    [cookie] = [c for c in context.cookies() if c["name"] == "mmlr_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    context.close()


def test_a_form_posted_by_another_site_is_refused_without_echoing_it(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any) -> None:
    """A logged-in curator visits another site whose page posts a form to mmlr. Chromium
    sends no login cookie with it (SameSite=Lax): mmlr answered that the curator was logged
    out and listed the other site's fields. It now says the form came from another site,
    shows none of it, and the curator's login is untouched."""
    evil_text = "Your session expired: call +1 555 0100 to restore it"
    attack = (f'<html><body><form id=f method=post action="{server}/records/90000001/decision">'
              f'<input name=decision value=include><input name=reason value="{evil_text}">'
              "</form><script>document.getElementById('f').submit()</script></body></html>")
    context = browser.new_context()
    page = context.new_page()
    test_browser_web._log_in(page, server, users["curator"])
    page.route("http://evil.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body=attack))
    with page.expect_navigation(url=f"{server}/records/90000001/decision"):
        page.goto("http://evil.example/")
    text = page.content()
    assert "this form was sent from another site, not from mmlr's own pages: nothing was " \
        "saved" in page.locator("body").inner_text()
    assert evil_text not in text and "no longer logged in" not in text
    page.goto(f"{server}/account")  # still logged in
    assert page.url == f"{server}/account"
    with db(app) as session:
        assert session.exec(select(Decision)).first() is None
    context.close()
