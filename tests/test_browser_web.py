"""The curator UI in real Chromium (Playwright) against uvicorn on loopback."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_web
import uvicorn
from sqlmodel import select
from test_web import PASSWORD, db

from store.models import Decision, Estimate, Trial

pytestmark = pytest.mark.browser

app = test_web.app
users = test_web.users
records = test_web.records

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)
    sock.close()


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Any, problems: list[str]) -> Any:
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    # CSP violations and failed requests show up as console errors: there must be none.
    # (The one expected failure status, 400 for a form with bad numbers, is not a problem.)
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "status of 400" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def _log_in(page: Any, base: str, email: str) -> None:
    page.goto(base + "/")
    assert "/login" in page.url  # redirected: the queue needs a login
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def _add_trial(app: Any, **fields: Any) -> int:
    """A lenalidomide post-ASCT trial with ``fields`` on top; its id."""
    with db(app) as session:
        trial = Trial(**{"drug": "lenalidomide", "setting": "post_asct", **fields})
        session.add(trial)
        session.commit()
        return int(trial.id or 0)


def _shot(page: Any, shots: Path, name: str) -> None:
    """Save a full-page screenshot for people reading the run (not an assertion). On a busy
    machine Chromium can refuse one capture right after a navigation ("Unable to capture
    screenshot", seen in CI while a demo ran beside it): wait for the page, try once more."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in (1, 2):
        try:
            page.wait_for_load_state("load")
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            return
        except PlaywrightError:
            if attempt == 2:
                raise
            page.wait_for_timeout(500)


def test_curator_screens_and_extracts(app: Any, users: dict[str, str], records: int,
                                      server: str, browser: Any, tmp_path: Path) -> None:
    trial_id = _add_trial(app, name="BROWSER-TRIAL", comparator="placebo")
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])

    rows = page.locator("tr[data-pmid]")
    pmids = [int(rows.nth(i).get_attribute("data-pmid")) for i in range(rows.count())]
    assert [p for p in pmids if p != 90000003] == [90000002, 90000001, 90000004]
    cells = page.locator("tr[data-pmid] td.score").all_inner_texts()
    scored = [float(s) for s, p in zip(cells, pmids, strict=True)
              if p != 90000003 and s.strip() != "—"]
    assert scored == sorted(scored, reverse=True) == [0.97, 0.05]
    # the hostile title is shown as text, not run
    assert page.locator("tr[data-pmid='90000002'] a").inner_text().startswith("<script>")
    _shot(page, tmp_path, "queue")

    page.locator("tr[data-pmid='90000002'] a").click()
    page.wait_for_url(f"{server}/records/90000002?rank=1")
    assert page.get_by_role("heading", level=1).inner_text().startswith("<script>alert(1)")
    page.get_by_label("Include").check()
    page.get_by_label("Reason (optional)").fill("phase 3 RCT of maintenance")
    page.get_by_role("button", name="Save decision").click()
    page.wait_for_url(f"{server}/records/90000002")
    assert "Decision saved: include" in page.locator(".flash").inner_text()
    history = page.locator("tr.decision-row").first
    assert history.locator("td.decision").inner_text() == "include"
    assert history.locator("td.model").inner_text() == f"v{records}"
    assert history.locator("td.score-shown").inner_text() == "0.970"
    assert history.locator("td.rank-shown").inner_text() == "1"
    assert page.locator(".current-decision").inner_text() == "include"
    _shot(page, tmp_path, "record")
    with db(app) as session:
        decision = session.exec(select(Decision)).one()
        assert (decision.pmid, decision.decision, decision.model_version_id,
                decision.rank_shown) == (90000002, "include", records, 1)
        assert decision.score_shown == pytest.approx(0.97)

    # "Exclude, next": one click saves (the reason typed with it) and opens the top of the
    # queue as it now stands, with its rank; no choice of the radio buttons needed
    page.goto(f"{server}/")
    top = page.locator("tr[data-pmid]").first.get_attribute("data-pmid")
    assert top is not None and top != "90000002"
    page.locator(f"tr[data-pmid='{top}'] a").click()
    page.get_by_label("Reason (optional)").fill("a review")
    page.get_by_role("button", name="Exclude, next").click()
    page.wait_for_url(re.compile(r".*/records/\d+\?rank=1$"))
    assert f"Decision saved: exclude (PMID {top})" in page.locator(".flash").inner_text()
    assert f"/records/{top}?" not in page.url and "/records/90000002?" not in page.url
    assert page.locator("form.decision-form").count() == 1  # undecided: ready to screen
    with db(app) as session:
        quick = session.exec(select(Decision).where(Decision.pmid == int(top))).one()
        assert (quick.decision, quick.reason, quick.rank_shown) == ("exclude", "a review", 1)
    # a radio chosen and another one-click button pressed: the button pressed counts
    page.get_by_label("Include").check()
    current = re.search(r"/records/(\d+)\?", page.url)
    assert current is not None
    page.get_by_role("button", name="Maybe, next").click()
    page.wait_for_load_state()
    assert f"Decision saved: maybe (PMID {current.group(1)})" in \
        page.locator(".flash").inner_text()

    page.goto(f"{server}/trials/{trial_id}")
    form = page.locator("form.extraction-form")
    form.get_by_label("Endpoint").select_option("PFS")
    form.get_by_label("Orientation of the numbers entered").select_option("control_vs_maint")
    form.get_by_label("HR", exact=True).fill("2.00")
    form.get_by_label("95% CI lower").fill("1.60")
    form.get_by_label("95% CI upper").fill("2.50")
    form.get_by_label("Data cut label").fill("median follow-up 72 months")
    form.get_by_role("button", name="Save estimate").click()
    page.wait_for_load_state()
    saved = page.locator(".flash").first.inner_text()
    assert "stored inverted as maintenance vs control" in saved
    row = page.locator("tr.estimate-row").first
    assert row.locator("td.hr").inner_text() == "0.50"
    # 1/1.60 = 0.625 exactly, rounded half-up as clinical reports round; the message says
    # the same digits as the row
    assert row.locator("td.ci").inner_text() == "0.40–0.63"
    assert "HR 0.50 (0.40–0.63)" in saved
    assert row.locator("td.orientation").inner_text() == "control vs maintenance (inverted on save)"
    _shot(page, tmp_path, "trial")
    with db(app) as session:
        estimate = session.exec(select(Estimate)).one()
        assert estimate.hr == pytest.approx(0.5) and estimate.ci_high == pytest.approx(0.625)

    # a bad number comes back with its field marked and the other values kept
    form = page.locator("form.extraction-form")
    form.get_by_label("Endpoint").select_option("OS")
    form.get_by_label("HR", exact=True).fill("0")
    form.get_by_label("95% CI lower").fill("0.4")
    form.get_by_label("95% CI upper").fill("0.6")
    form.get_by_role("button", name="Save estimate").click()
    page.wait_for_load_state()
    assert page.locator("#hr-error").inner_text() == "HR must be greater than 0"
    assert page.locator("form.extraction-form #ci_low").input_value() == "0.4"
    _shot(page, tmp_path, "trial-error")

    # a correction is a new, unverified estimate; the old one stays, struck through
    page.locator(f"#estimate-{estimate.id}").get_by_role("link", name="Correct").click()
    page.wait_for_url(f"{server}/estimates/{estimate.id}/edit")
    form = page.locator("form.extraction-form")
    # as typed from the paper, in the orientation typed: the corrector compares like with like
    assert form.get_by_label("HR", exact=True).input_value() == "2.00"
    assert form.get_by_label("Orientation of the numbers entered").input_value() \
        == "control_vs_maint"
    form.get_by_label("95% CI lower").fill("1.59")  # stored inverted: the upper limit
    form.get_by_label("Why the correction (optional)").fill("upper limit <rounded>")
    form.get_by_role("button", name="Save correction").click()
    page.locator(".flash", has_text="corrected by estimate").wait_for()
    old_row = page.locator(f"#estimate-{estimate.id}")
    assert "withdrawn" in (old_row.get_attribute("class") or "")
    assert old_row.locator("td.hr").evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "line-through"
    assert old_row.locator(".withdrawn-reason").inner_text().endswith(": upper limit <rounded>")
    new_row = page.locator("tr.estimate-row:not(.withdrawn)")
    assert new_row.locator("td.verified").inner_text().startswith("no")
    # ... and the correction can be withdrawn in turn, with a reason
    new_row.locator("summary", has_text="Withdraw").click()
    new_row.get_by_label("Reason", exact=True).fill("duplicate entry")
    new_row.get_by_role("button", name="Withdraw estimate").click()
    page.locator(".flash", has_text="no longer enters any analysis").wait_for()
    assert page.locator("tr.estimate-row.withdrawn").count() == 2
    _shot(page, tmp_path, "trial-corrected")
    with db(app) as session:
        rows = session.exec(select(Estimate).order_by(Estimate.id)).all()  # type: ignore[arg-type]
        assert [r.withdrawn_at is not None for r in rows] == [True, True]
        assert rows[1].supersedes_id == rows[0].id and rows[1].ci_high == pytest.approx(1 / 1.59)
        assert rows[1].printed == {"hr": "2.00", "ci_low": "1.59", "ci_high": "2.50"}
    assert problems == []


def test_viewer_sees_no_decision_form(app: Any, users: dict[str, str], records: int,
                                      server: str, browser: Any, tmp_path: Path) -> None:
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["viewer"])
    page.goto(f"{server}/records/90000003")
    assert page.get_by_role("heading", level=1).inner_text() == "Middle-score induction trial"
    assert page.locator("form.decision-form").count() == 0
    assert page.get_by_role("button", name="Save decision").count() == 0
    page.goto(f"{server}/admin/users")
    assert "this needs the admin role" in page.locator(".error-message").inner_text()
    _shot(page, tmp_path, "viewer-record")
    assert all("status of 403" in p for p in problems)  # only the refused admin page


def test_screening_by_keyboard_alone(app: Any, users: dict[str, str], records: int,
                                    server: str, browser: Any) -> None:
    """docs/curation.md: Tab leads from the choice through the reason to the buttons, and the
    access keys (Alt+Shift+key in Chrome on Linux) press the one-click buttons."""
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/records/90000002?rank=1")
    page.get_by_label("Reason (optional)").focus()
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert order == ["Save decision", "Include, next", "Exclude, next", "Maybe, next"]
    # Chromium presses an access key on the character the keys type (Playwright's own
    # keyboard sends none with Alt held), so the keys are typed as the browser gets them.
    cdp = page.context.new_cdp_session(page)
    alt_shift = 1 | 8
    with page.expect_navigation():
        for kind in ("rawKeyDown", "char", "keyUp"):
            cdp.send("Input.dispatchKeyEvent", {"type": kind, "modifiers": alt_shift,
                                                "key": "e", "code": "KeyE", "text": "e",
                                                "unmodifiedText": "e",
                                                "windowsVirtualKeyCode": 69})
    assert re.search(r"/records/\d+\?rank=1$", page.url)
    assert "/records/90000002?" not in page.url
    assert "Decision saved: exclude (PMID 90000002)" in page.locator(".flash").inner_text()
    with db(app) as session:
        saved = session.exec(select(Decision).where(Decision.pmid == 90000002)).one()
        assert saved.decision == "exclude"
    # The next record opens at the top: its first link after the page's own takes the
    # keyboard to the decision (18 Tab presses away before).
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.className") == "skip-to-decision":
            break
    else:
        pytest.fail("no Skip to the decision link")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("[document.activeElement.name, document.activeElement.value]") == [
        "decision", "include"]
    assert problems == []


def test_trial_is_edited_and_its_estimate_verified_by_a_second_person(
        app: Any, users: dict[str, str], server: str, browser: Any, tmp_path: Path) -> None:
    import math

    from store.models import User

    with db(app) as session:
        curator = session.exec(select(User).where(User.email == users["curator"])).one()
        trial = Trial(name="EDIT-ME", drug="lenalidomide", setting="post_asct")
        session.add(trial)
        session.flush()
        session.add(Estimate(trial_id=trial.id, endpoint="PFS", setting="post_asct", hr=0.5,  # type: ignore[arg-type]
                             ci_low=0.4, ci_high=0.625, log_hr=math.log(0.5), se=0.1,
                             created_by=curator.id))
        session.commit()
        trial_id = trial.id
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/trials/{trial_id}")
    row = page.locator("tr.estimate-row").first
    assert row.locator(".awaiting-second").inner_text() == \
        "awaiting a second person: you entered it"
    assert row.get_by_role("button", name="Verify").count() == 0
    page.locator("details.edit-trial summary").click()
    form = page.locator("form.trial-form")
    assert form.get_by_label("Name").input_value() == "EDIT-ME"
    form.get_by_label("Maintenance drug").fill("Thalidomide")
    form.get_by_label("Strategy trial").check()
    form.get_by_role("button", name="Save trial").click()
    flash = page.locator(".flash", has_text="updated")
    flash.wait_for()
    assert "drug lenalidomide → thalidomide; strategy trial no → yes" in flash.inner_text()
    assert "recomputed" in flash.inner_text()
    assert "left out of the primary analysis" in page.locator("dl").inner_text()
    _shot(page, tmp_path, "trial-edited")

    checker = _page(browser, problems)
    _log_in(checker, server, users["admin"])
    checker.goto(f"{server}/trials/{trial_id}")
    checker.locator("tr.estimate-row").first.get_by_role("button", name="Verify").click()
    checker.locator(".flash", has_text="marked verified").wait_for()
    row = checker.locator("tr.estimate-row").first
    assert row.locator(".verified-by").inner_text() == f"verified by {users['admin']}"
    assert row.locator(".entered-by").inner_text() == f"entered by {users['curator']}"
    _shot(checker, tmp_path, "trial-verified")
    with db(app) as session:
        stored = session.get(Trial, trial_id)
        assert stored is not None and (stored.drug, stored.is_strategy) == ("thalidomide", True)
        assert session.exec(select(Estimate)).one().verified
    assert problems == []


def test_risk_of_bias_assessed_in_the_browser_reaches_the_estimates_page(
        app: Any, users: dict[str, str], server: str, browser: Any, tmp_path: Path) -> None:
    """A curator assesses RoB 2 through the form (a mistake first), pooling picks it up, and
    a viewer reads the RoB column, the sensitivity table, the certainty and the monitoring
    graph on /estimates."""
    import math

    from reports.pool import pool_all

    with db(app) as session:
        for name, hr, lo, hi in (("RoB-A", 0.6, 0.45, 0.8), ("RoB-B <i>x</i>", 0.72, 0.55, 0.94)):
            trial = Trial(name=name, drug="thalidomide", setting="post_asct")
            session.add(trial)
            session.flush()
            se = (math.log(hi) - math.log(lo)) / (2 * 1.959964)
            session.add(Estimate(trial_id=trial.id, endpoint="PFS", setting="post_asct",  # type: ignore[arg-type]
                                 hr=hr, ci_low=lo, ci_high=hi, log_hr=math.log(hr), se=se,
                                 verified=True))
        session.commit()
        trial_id = session.exec(select(Trial).where(Trial.name == "RoB-A")).one().id
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/trials/{trial_id}")
    page.get_by_text("Assess risk of bias").click()
    form = page.locator("form.rob-form")
    form.get_by_label("Endpoint").select_option("PFS")
    for fieldset in form.locator("fieldset.rob-domain").all():
        fieldset.get_by_label("Judgment", exact=True).select_option("low")
    form.locator("fieldset[data-domain=randomization]").get_by_label(
        "Support for the judgment").fill("Central <b>web</b> randomisation")
    # "high" above five low domains: refused
    form.get_by_label("Overall judgment", exact=True).select_option("high")
    form.get_by_role("button", name="Save assessment").click()
    error = page.locator("#rob-overall-error")
    error.wait_for()
    assert "higher than the domains allow: every domain is low" in error.inner_text()
    form = page.locator("form.rob-form")
    assert form.locator("fieldset[data-domain=randomization]").get_by_label(
        "Support for the judgment").input_value() == "Central <b>web</b> randomisation"
    form.get_by_label("Overall judgment", exact=True).select_option("")
    form.get_by_role("button", name="Save assessment").click()
    page.locator(".flash", has_text="Risk of bias for PFS saved").wait_for()
    assert "Central <b>web</b> randomisation" in page.locator("#rob-PFS").inner_text()
    _shot(page, tmp_path, "rob-saved")

    pool_all(app.state.ctx)
    # the curator enters the assumed control risk of the analysis (a bad percent first)
    page.goto(f"{server}/estimates")
    section = page.locator("section", has_text="Thalidomide maintenance — PFS (EFS/TTP "
                           "accepted) — post-ASCT").first
    anchor = section.get_attribute("id")
    block = section.locator("div.absolute-effect")
    assert "No assumed control risk has been entered yet" in block.inner_text()
    block.locator("summary", has_text="Enter the assumed control risk").click()
    block.get_by_label("Time point t (months after randomisation)").fill("36")
    block.get_by_label("Event-free in the control arm at t (%)").fill("100")
    block.get_by_label("Source").fill("control arm of <i>RoB-A</i>")
    block.get_by_role("button", name="Save assumed control risk").click()
    page.locator(".field-error", has_text="at most 99.99").wait_for()
    block = page.locator(f"#{anchor} div.absolute-effect")
    assert block.locator("details.baseline-form").get_attribute("open") is not None
    assert block.get_by_label("Source").input_value() == "control arm of <i>RoB-A</i>"
    block.get_by_label("Event-free in the control arm at t (%)").fill("35")
    block.get_by_role("button", name="Save assumed control risk").click()
    page.locator(".flash", has_text="35% event-free at 36 months").wait_for()
    assert page.url.endswith(f"/estimates#{anchor}")
    sentence = page.locator(f"#{anchor} p.absolute-text").inner_text()
    assert sentence.startswith("At 36 months, 650 per 1000 progressed or died without "
                               "maintenance (assumed)")
    assert page.locator(f"#{anchor} .baseline-source").inner_text() == (
        "control arm of <i>RoB-A</i>")
    _shot(page, tmp_path, "estimates-absolute-effect")

    viewer = _page(browser, problems)
    _log_in(viewer, server, users["viewer"])
    viewer.goto(f"{server}/estimates")
    section = viewer.locator("section", has_text="Thalidomide maintenance — PFS (EFS/TTP "
                             "accepted) — post-ASCT").first
    trials = section.locator("table").first.inner_text()
    assert "RoB-A" in trials and "Low" in trials and "RoB-B <i>x</i>" in trials
    assert "not assessed" in trials
    assert "low risk of bias only" in section.locator("table.rob-sensitivity").inner_text()
    assert "Suggested certainty:" in section.locator("div.certainty").inner_text()
    graph = section.locator("img.monitoring-plot")
    graph.scroll_into_view_if_needed()
    viewer.wait_for_function("img => img.complete && img.naturalWidth > 0",
                             arg=graph.element_handle())
    _shot(viewer, tmp_path, "estimates-rob-certainty")
    assert problems == []


def test_a_new_report_of_a_trial_is_linked_from_its_record_page(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any,
        tmp_path: Path) -> None:
    """Record 90000002 lists NCT00114101; once a trial of the review has that registration,
    the queue marks the record and its page proposes the link, which lands on the trial's
    extraction form."""
    trial_id = _add_trial(app, name="CALGB 100104", registry_ids=["NCT00114101"])
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])
    badge = page.locator("tr[data-pmid='90000002'] .badge.trial-match")
    assert badge.inner_text() == "report of CALGB 100104?"
    assert page.locator("tr[data-pmid='90000001'] .badge.trial-match").count() == 0

    page.locator("tr[data-pmid='90000002'] a").click()
    section = page.locator("section#trials")
    assert section.locator("li.trial-match").inner_text() == (
        "CALGB 100104 — registration NCT00114101 listed in the record")
    form = section.locator("#link-trial-form")
    assert form.is_visible()  # open: there is a match
    assert form.get_by_label("Trial", exact=True).input_value() == str(trial_id)
    # the trial has the record's registration already: nothing to add, not ticked
    assert not form.get_by_role("checkbox").is_checked()
    assert form.get_by_label("Kind of report").input_value() == "update"
    assert form.get_by_label("Citation").input_value() == "Doe J et al. Blood 2024"
    form.get_by_label("Citation").fill("Doe J et al. Blood 2024;143:1-9")
    _shot(page, tmp_path, "record-trials")
    form.get_by_role("button", name="Add report").click()
    page.wait_for_url(re.compile(rf".*/trials/{trial_id}\?report=\d+#add-estimate$"))
    assert page.locator(".flash-ok").inner_text() == (
        "PMID 90000002 added to CALGB 100104 as its update report. "
        "Enter its hazard ratios below.")
    # the record was never screened: the curator is told what PRISMA will (not) count
    assert page.locator(".flash-info").inner_text().startswith(
        "PMID 90000002 has no title/abstract decision yet")
    assert page.locator("#add-estimate").is_visible()
    assert "Doe J et al. Blood 2024;143:1-9" in page.locator("body").inner_text()
    # the extraction form is set to the report just added
    assert page.locator("form.extraction-form #report_id option:checked").inner_text() \
        == "Doe J et al. Blood 2024;143:1-9"
    _shot(page, tmp_path, "linked")
    assert problems == []


def test_a_full_text_is_assessed_after_the_record_is_included(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any,
        tmp_path: Path) -> None:
    """Include at title/abstract, then the full-text section appears: an exclusion needs a
    reason (the server says so), and the verdict with its reason reaches /fulltext."""
    problems: list[str] = []
    page = _page(browser, problems)
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/records/90000003")
    assert page.locator("section#fulltext").count() == 0  # not included: no full-text stage
    page.get_by_label("Include").check()
    page.get_by_role("button", name="Save decision").click()
    section = page.locator("section#fulltext")
    assert section.locator(".ft-current").inner_text() == "awaiting assessment"
    section.get_by_label("Excluded", exact=True).check()
    section.get_by_role("button", name="Save full-text verdict").click()
    assert "needs a reason" in page.locator("body").inner_text()  # the 400 page, one line
    page.goto(f"{server}/records/90000003")
    section = page.locator("section#fulltext")
    section.get_by_label("Excluded", exact=True).check()
    section.get_by_label("Reason (only for an excluded report)").select_option("no_outcome")
    section.get_by_role("button", name="Save full-text verdict").click()
    page.wait_for_url(f"{server}/records/90000003#fulltext")
    assert page.locator(".ft-current").inner_text() == (
        "excluded: no time-to-event outcome (PFS, EFS or OS) reported")
    _shot(page, tmp_path, "fulltext-record")
    page.get_by_role("link", name="Full text").click()
    row = page.locator("tr[data-pmid='90000003']")
    assert "no time-to-event outcome" in row.locator(".verdict").inner_text()
    assert page.locator(".ft-excluded").inner_text() == "1"
    _shot(page, tmp_path, "fulltext-list")
    problems = [p for p in problems if "status of 400" not in p]
    assert problems == []
