"""A refused form in real Chromium: the page that comes back puts the keyboard focus, and the
view, on the message that says what went wrong (a screen reader reads it at once), even when
the form sits far down a long page."""

from __future__ import annotations

from typing import Any

import pytest
import test_browser_web
import test_web
from test_browser_web import _add_trial, _log_in, _page

pytestmark = pytest.mark.browser

app = test_web.app
users = test_web.users
server = test_browser_web.server
browser = test_browser_web.browser


def test_a_refused_estimate_form_focuses_its_error_message(
        app: Any, users: dict[str, str], server: str, browser: Any) -> None:
    trial_id = _add_trial(app, name="FOCUS-TRIAL", comparator="placebo")
    problems: list[str] = []
    page = _page(browser, problems)
    page.set_viewport_size({"width": 1280, "height": 700})
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/trials/{trial_id}")
    form = page.locator("section.extraction form")
    form.get_by_label("HR", exact=True).fill("-1")
    form.get_by_role("button", name="Save estimate").click()
    page.wait_for_load_state()
    focused = page.evaluate("() => [document.activeElement.className,"
                            " document.activeElement.querySelector('p').textContent]")
    assert focused == ["error-message error-summary",
                       "Please correct the marked fields: nothing was saved."]
    top = page.evaluate("() => document.activeElement.getBoundingClientRect().top")
    assert 0 <= top < 700  # in view, not 1,000 px below the top of the page
    page.keyboard.press("Tab")  # to the summary's link to the bad field
    link = page.evaluate("() => [document.activeElement.getAttribute('href'),"
                         " document.activeElement.textContent]")
    assert link == ["#endpoint", "Endpoint is required"], link
    page.keyboard.press("Enter")  # the link takes the focus to the field to fix
    assert page.evaluate("() => document.activeElement.id") == "endpoint"
    assert problems == []
