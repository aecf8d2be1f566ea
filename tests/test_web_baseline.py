"""The assumed control risk on /estimates and in the JSON API: the "Absolute effect (summary of
findings)" block of each pooled analysis, the form that enters the risk (roles, CSRF, field
errors, history), the ``with_strategy`` twin that uses its primary's entry, ``absolute_effect``
and ``baseline`` in GET /api/estimates, POST /api/estimates/baseline, and escaping — over the
real app and database."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_pool import add_estimate, add_trial
from test_web import api_as, as_role, csrf_from, db

from reports.absolute import absolute_effect
from reports.pool import pool_all
from reports.selection import latest_results
from store.models import AuditLog, BaselineRisk, PooledResult, User

app = test_web.app
users = test_web.users

PRIMARY = "thalidomide/PFS/post_asct"
TWIN = PRIMARY + "/with_strategy"
HOSTILE_KEY = "bortezomib/PFS/all"
HOSTILE_LABEL = "<b>Bortezomib</b> & co"
SCRIPT = "<script>alert(1)</script>"
SOURCE = "control arm of Trial A (Figure 2A)"


@pytest.fixture
def pooled(app: Any) -> dict[str, PooledResult]:
    """Thalidomide post-ASCT: two trials, and a strategy trial that only its sensitivity twin
    pools (so the twin's HR differs from the primary's); plus a snapshot with a label that
    would be markup if not escaped."""
    with db(app) as s:
        a = add_trial(s, "Trial A")
        add_estimate(s, a, "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        b = add_trial(s, "Trial B")
        add_estimate(s, b, "0.75", "0.60", "0.94", cut=date(2012, 6, 1))
        strategy = add_trial(s, "Strategy S", is_strategy=True)
        add_estimate(s, strategy, "0.85", "0.70", "1.03", cut=date(2013, 6, 1))
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        s.add(PooledResult(analysis_key=HOSTILE_KEY, analysis_label=HOSTILE_LABEL, k=2,
                           estimate=-0.3, ci_low=-0.6, ci_high=0.0,
                           result={"leave_one_out": [], "cumulative": []}, inputs=[]))
        s.commit()
        rows = {r.analysis_key: r for r in latest_results(s)}
    assert rows[PRIMARY].k == 2 and rows[TWIN].k == 3
    assert rows[PRIMARY].estimate != rows[TWIN].estimate
    return rows


# ----------------------------------------------------------------------------- helpers
def _form(**changes: str) -> dict[str, str]:
    return {"analysis": PRIMARY, "months": "36", "event_free_percent": "35", "source": SOURCE,
            **changes}


def _post(client: TestClient, **changes: str) -> Any:
    token = csrf_from(client.get("/estimates").text)
    return client.post("/estimates/baseline", data={**_form(**changes), "csrf_token": token},
                       follow_redirects=False)


def _block(html: str, row: PooledResult) -> Any:
    (block,) = lxml.html.fromstring(html).xpath(f'//div[@id="absolute-{row.id}"]')
    return block


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


def _one(block: Any, xpath: str) -> str:
    (node,) = block.xpath(xpath)
    return _text(node)


def _stored(app: Any) -> list[BaselineRisk]:
    with db(app) as s:
        return list(s.exec(select(BaselineRisk).order_by(col(BaselineRisk.id))))


def _expected(row: PooledResult, months: float, event_free: float) -> dict[str, Any]:
    """What reports.absolute computes from the snapshot's HR: the page must show exactly it."""
    assert row.estimate is not None and row.ci_low is not None and row.ci_high is not None
    return absolute_effect(hr=math.exp(row.estimate), hr_ci_low=math.exp(row.ci_low),
                           hr_ci_high=math.exp(row.ci_high), event_free=event_free,
                           months=months, endpoint="PFS")


def _n(value: float) -> str:
    return str(round(value)).replace("-", "−")


def _numbers(view: dict[str, Any]) -> list[str]:
    """The table's cells as the page should show them: whole patients per 1000."""
    return [_n(view["control_per_1000"]),
            f"{_n(view['maintenance_per_1000'])} ({_n(view['maintenance_per_1000_ci_low'])} "
            f"to {_n(view['maintenance_per_1000_ci_high'])})",
            f"{_n(view['difference_per_1000'])} ({_n(view['difference_per_1000_ci_low'])} "
            f"to {_n(view['difference_per_1000_ci_high'])})"]


def _cells(block: Any) -> list[str]:
    return [_text(td) for td in block.xpath('.//table[@class="absolute-numbers"]//td')]


def _add_entry(app: Any, email: str, key: str = PRIMARY, *, months: float = 36,
               event_free: float = 0.35, source: str = SOURCE) -> None:
    with db(app) as s:
        user_id = s.exec(select(User.id).where(User.email == email)).one()
        assert user_id is not None
        s.add(BaselineRisk(analysis_key=key, months=months, event_free=event_free,
                           source=source, entered_by=user_id))
        s.commit()


# ----------------------------------------------------------------------------- the page
def test_viewer_sees_the_numbers_but_no_form_and_may_not_post(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    viewer = as_role(app, users, "viewer")
    html = viewer.get("/estimates").text
    empty = _block(html, pooled[PRIMARY])
    assert _one(empty, './/p[@class="absolute-none"]') == (
        "No assumed control risk has been entered yet for this analysis.")
    assert not empty.xpath(".//form") and "/estimates/baseline" not in html

    _add_entry(app, users["curator"])
    block = _block(viewer.get("/estimates").text, pooled[PRIMARY])
    view = _expected(pooled[PRIMARY], 36, 0.35)
    assert _one(block, './/p[@class="absolute-text"]') == view["text"]
    assert _cells(block) == _numbers(view)
    assert not block.xpath(".//form") and not block.xpath('.//p[@class="absolute-none"]')

    denied = _post(viewer, months="12")
    assert denied.status_code == 403
    assert f"{users['viewer']} is a viewer; this needs the curator role" in denied.text
    assert [(b.months, b.event_free) for b in _stored(app)] == [(36, 0.35)]


def test_curator_enters_a_risk_and_sees_the_absolute_effect(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    curator = as_role(app, users, "curator")
    row = pooled[PRIMARY]
    before = _block(curator.get("/estimates").text, row)
    assert _one(before, './/p[@class="absolute-none"]') == (
        "No assumed control risk has been entered yet for this analysis: enter one below.")
    assert before.xpath('.//form[@action="/estimates/baseline"]')

    saved = _post(curator, months="36", event_free_percent="35,5")  # a decimal comma too
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/estimates#analysis-{row.id}"
    html = curator.get("/estimates").text
    flash = _one(lxml.html.fromstring(html), '//p[contains(@class, "flash")]')
    assert flash == (f"Assumed control risk for {row.analysis_label} saved: 35.5% event-free "
                     "at 36 months.")
    block = _block(html, row)
    view = _expected(row, 36, 0.355)
    assert _one(block, './/p[@class="absolute-text"]') == view["text"]
    assert view["text"].startswith("At 36 months, 645 per 1000 progressed or died")
    assert _cells(block) == _numbers(view)
    assert _one(block, ".//caption") == "Per 1000 patients at 36 months"
    source = _one(block, './/p[@class="absolute-source"]')
    assert source.startswith("Assumed control risk: 35.5% event-free at 36 months. "
                             f"Source: {SOURCE}. Entered by {users['curator']} on ")
    assert "proportional hazards" in _one(block, './/p[contains(@class, "absolute-assumption")]')
    # the form starts from the entry, to change it from there
    assert block.xpath('.//input[@name="months"]/@value') == ["36"]
    assert block.xpath('.//input[@name="event_free_percent"]/@value') == ["35.5"]
    assert block.xpath('.//textarea[@name="source"]/text()') == [SOURCE]
    (stored,) = _stored(app)
    with db(app) as s:
        curator_id = s.exec(select(User.id).where(User.email == users["curator"])).one()
        audits = list(s.exec(select(AuditLog).where(AuditLog.action == "baseline.set")))
    assert (stored.analysis_key, stored.months, stored.event_free, stored.entered_by) == (
        PRIMARY, 36.0, 0.355, curator_id)
    assert [(a.actor, a.details["analysis"]) for a in audits] == [(users["curator"], PRIMARY)]
    # other analyses are untouched (the all-settings one has its own, still empty, block)
    assert _block(html, pooled["thalidomide/PFS/all"]).xpath('.//p[@class="absolute-none"]')
    # an admin may enter one too
    assert _post(as_role(app, users, "admin"), analysis="thalidomide/PFS/all").status_code == 303


def test_a_percent_below_1_is_saved_with_a_warning_on_the_page_and_in_the_api(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    """A proportion typed into the percent field (0.35 for 35%) is a valid percent: saved as
    0.35%, which it was without a word; the curator is now told how it was read."""
    curator = as_role(app, users, "curator")
    row = pooled[PRIMARY]
    warning = ("Event-free 0.35 is read as a percent: 0.35% of control patients event-free at "
               "36 months. If you meant the proportion 0.35, type 35 for 35%.")
    assert _post(curator, event_free_percent="0.35").status_code == 303
    flashes = [_text(p) for p in lxml.html.fromstring(curator.get("/estimates").text).xpath(
        '//p[contains(@class, "flash")]')]
    assert flashes == [f"Assumed control risk for {row.analysis_label} saved: 0.35% event-free "
                       "at 36 months.", f"Check: {warning}"]
    api = api_as(app, users, "curator")
    body = {"analysis": PRIMARY, "months": 36, "event_free_percent": 0.35, "source": "API"}
    answer = api.post("/api/estimates/baseline", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["warnings"] == [warning]
    plain = api.post("/api/estimates/baseline", json={**body, "event_free_percent": 35})
    assert plain.status_code == 201 and plain.json()["warnings"] == []
    assert [b.event_free for b in _stored(app)] == pytest.approx([0.0035, 0.0035, 0.35])


def test_a_new_entry_replaces_the_current_one_which_stays_in_the_history(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    curator = as_role(app, users, "curator")
    row = pooled[PRIMARY]
    assert _post(curator).status_code == 303
    first = _block(curator.get("/estimates").text, row)
    assert not first.xpath('.//details[@class="absolute-history"]')  # nothing earlier yet

    # 29 / 100 * 100 is 28.999999999999996 in binary: the page must still say 29
    assert _post(curator, months="24", event_free_percent="29",
                 source="median of the control arms").status_code == 303
    html = curator.get("/estimates").text
    flash = _one(lxml.html.fromstring(html), '//p[contains(@class, "flash")]')
    assert flash.startswith(f"Assumed control risk for {row.analysis_label} saved: 29% "
                            "event-free at 24 months. It replaces the entry of ")
    assert flash.endswith(", kept in the history.")
    block = _block(html, row)
    view = _expected(row, 24, 0.29)
    assert _one(block, './/p[@class="absolute-text"]') == view["text"]
    assert _cells(block) == _numbers(view)
    assert _one(block, './/p[@class="absolute-source"]').startswith(
        "Assumed control risk: 29% event-free at 24 months. Source: median of the control arms.")
    assert block.xpath('.//input[@name="event_free_percent"]/@value') == ["29"]
    (history,) = block.xpath('.//details[@class="absolute-history"]')
    assert history.get("open") is None  # collapsed
    assert _text(history.xpath("./summary")[0]) == "Earlier entries of this analysis (1)"
    old, new = _stored(app)
    (entry,) = history.xpath(".//tbody/tr")
    assert entry.get("data-baseline") == str(old.id)
    assert [_text(td) for td in entry.xpath("td")][1:] == [users["curator"], "36", "35%",
                                                           SOURCE]
    assert SOURCE not in _one(block, './/p[@class="absolute-source"]')
    assert (new.months, new.event_free) == (24, 0.29) and old.months == 36
    # the same form sent again is the entry already current: nothing is added
    assert _post(curator, months="24", event_free_percent="29",
                 source="median of the control arms").status_code == 303
    flash = _one(lxml.html.fromstring(curator.get("/estimates").text),
                 '//p[contains(@class, "flash")]')
    assert flash.startswith(f"Assumed control risk for {row.analysis_label}: your entry of ")
    assert flash.endswith(" says the same; nothing changed.")
    assert len(_stored(app)) == 2


@pytest.mark.parametrize(("field", "value", "message"), [
    ("months", "0", "Months: must be at least 1 and at most 240 months"),
    ("months", "300", "Months: must be at least 1 and at most 240 months"),
    ("months", "abc", "Months: 'abc' is not a number"),
    ("months", "1,000", "Months: '1,000' is ambiguous: 1000 with a thousands separator, or "
                        "1.000 with a decimal comma; type it without the comma, or with a "
                        "decimal point"),
    ("event_free_percent", "0", "Event-free: must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "100",
     "Event-free: must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "", "Event-free: is required"),
    ("event_free_percent", "1e-300",
     "Event-free: must be at least 0.01 and at most 99.99 (percent)"),
    ("source", "", "Source: is required: name where the control-arm risk comes from (GRADE "
                   "asks for it)"),
])
def test_a_bad_field_is_named_next_to_it_and_what_was_typed_is_kept(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult], field: str,
        value: str, message: str) -> None:
    curator = as_role(app, users, "curator")
    typed = _form(**{"months": "18", "event_free_percent": "42", "source": "typed & <kept>",
                     field: value})
    response = _post(curator, **typed)
    assert response.status_code == 400
    block = _block(response.text, pooled[PRIMARY])
    (details,) = block.xpath('.//details[@class="baseline-form"]')
    assert details.get("open") is not None  # the form is open on its errors
    assert _one(details, './/div[@class="error-message error-summary"]/p') == (
        "Please correct the marked fields: the assumed control risk was not saved.")
    errors = {e.get("id"): _text(e) for e in details.xpath('.//p[@class="field-error"]')}
    prefix = f"baseline-{pooled[PRIMARY].id}-"
    assert errors == {f"{prefix}{field}-error": message}
    # the summary links to the field
    (link,) = details.xpath('.//div[@class="error-message error-summary"]//a')
    assert (link.get("href"), _text(link)) == (f"#{prefix}{field}", message)
    control = details.xpath(f'.//*[@name="{field}"]')[0]
    assert control.get("aria-invalid") == "true"
    described = control.get("aria-describedby").split()
    assert described[0] == f"{prefix}{field}-error"  # the error first, then the hint if any
    assert described[1:] == ([f"{prefix}{field}-hint"] if field in ("event_free_percent",
                                                                     "source") else [])
    for ident in described:
        assert block.xpath(f'.//*[@id="{ident}"]'), ident
    assert details.xpath('.//input[@name="months"]/@value') == [typed["months"]]
    assert details.xpath('.//input[@name="event_free_percent"]/@value') == [
        typed["event_free_percent"]]
    assert details.xpath('.//textarea[@name="source"]')[0].text_content() == typed["source"]
    if field == "source":
        assert "typed &amp; &lt;kept&gt;" not in response.text
    else:
        assert "typed &amp; &lt;kept&gt;</textarea>" in response.text
    assert _stored(app) == []


def test_the_form_needs_a_login_and_its_token(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    token = csrf_from(anonymous.get("/login").text)  # a session, but nobody logged in
    refused = anonymous.post("/estimates/baseline", data={**_form(), "csrf_token": token})
    assert refused.status_code == 401 and "please log in" in refused.text
    curator = as_role(app, users, "curator")
    for data in (_form(), {**_form(), "csrf_token": "z" * 43}):
        response = curator.post("/estimates/baseline", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
    assert _stored(app) == []


def test_only_an_analysis_with_a_snapshot_may_be_given_a_risk(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    curator = as_role(app, users, "curator")
    response = _post(curator, analysis="lenalidomide/PFS/post_asct")  # a valid key, not pooled
    assert response.status_code == 404
    assert ("analysis &#39;lenalidomide/PFS/post_asct&#39; has no pooled snapshot, so no "
            "assumed control risk can be entered for it") in response.text
    api = api_as(app, users, "curator")
    missing = api.post("/api/estimates/baseline", json={**_form(), "analysis": "x/y/z"})
    assert missing.status_code == 404
    assert missing.json()["error"].startswith("analysis 'x/y/z' has no pooled snapshot")
    assert _stored(app) == []


def test_the_strategy_twin_uses_its_primary_entry_and_says_so(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    curator = as_role(app, users, "curator")
    assert _post(curator).status_code == 303
    html = curator.get("/estimates").text
    twin = _block(html, pooled[TWIN])
    # the twin's own HR with the primary's entry
    view = _expected(pooled[TWIN], 36, 0.35)
    assert _one(twin, './/p[@class="absolute-text"]') == view["text"]
    assert _cells(twin) == _numbers(view)
    assert view["text"] != _expected(pooled[PRIMARY], 36, 0.35)["text"]
    assert _one(twin, './/p[@class="absolute-borrowed"]') == (
        "This sensitivity analysis has no assumed control risk of its own: it uses the one "
        f"entered for the primary analysis, {pooled[PRIMARY].analysis_label}.")
    assert not _block(html, pooled[PRIMARY]).xpath('.//p[@class="absolute-borrowed"]')
    # its form is filled from the primary's entry and saves an entry of its own
    assert twin.xpath('.//input[@name="analysis"]/@value') == [TWIN]
    assert twin.xpath('.//input[@name="months"]/@value') == ["36"]
    api_twin = _api_entry(app, users, TWIN)
    assert api_twin["baseline"]["analysis"] == PRIMARY
    assert api_twin["absolute_effect"]["baseline_analysis"] == PRIMARY
    assert api_twin["absolute_effect"]["text"] == view["text"]

    own = _post(curator, analysis=TWIN, months="48", event_free_percent="20")
    assert own.status_code == 303
    html = curator.get("/estimates").text
    flash = _one(lxml.html.fromstring(html), '//p[contains(@class, "flash")]')
    assert flash.endswith("20% event-free at 48 months. This sensitivity analysis no longer "
                          "uses its primary analysis' entry.")
    twin = _block(html, pooled[TWIN])
    assert not twin.xpath('.//p[@class="absolute-borrowed"]')
    assert _one(twin, './/p[@class="absolute-text"]') == _expected(pooled[TWIN], 48, 0.2)["text"]
    # the primary keeps its own
    assert _one(_block(html, pooled[PRIMARY]), './/p[@class="absolute-text"]') == (
        _expected(pooled[PRIMARY], 36, 0.35)["text"])


def test_html_in_a_source_or_a_label_is_escaped(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    curator = as_role(app, users, "curator")
    assert _post(curator, analysis=HOSTILE_KEY, source=SCRIPT).status_code == 303
    assert _post(curator, analysis=HOSTILE_KEY, source="second").status_code == 303
    assert _post(curator, analysis=PRIMARY, source=SCRIPT).status_code == 303
    for role in ("curator", "viewer"):
        html = as_role(app, users, role).get("/estimates").text
        assert SCRIPT not in html and "<b>Bortezomib</b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;b&gt;Bortezomib&lt;/b&gt; &amp; co" in html
        block = _block(html, pooled[HOSTILE_KEY])
        # the earlier entry, in the history, as text
        (cell,) = block.xpath('.//details[@class="absolute-history"]//tbody/tr/td[5]')
        assert cell.text_content() == SCRIPT
    # the flash carries the label, escaped too
    _post(curator, analysis=HOSTILE_KEY, source="third")
    html = curator.get("/estimates").text
    assert "<b>Bortezomib</b>" not in html
    assert ("Assumed control risk for &lt;b&gt;Bortezomib&lt;/b&gt; &amp; co saved: 35% "
            "event-free at 36 months.") in html


# ----------------------------------------------------------------------------- the API
def _api_entry(app: Any, users: dict[str, str], key: str) -> dict[str, Any]:
    doc = api_as(app, users, "viewer").get("/api/estimates")
    assert doc.status_code == 200
    return next(a for a in doc.json()["analyses"] if a["analysis"] == key)


def test_api_lists_the_absolute_effect_and_the_entry(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    before = _api_entry(app, users, PRIMARY)
    assert before["absolute_effect"] is None and before["baseline"] is None
    assert {"hr", "certainty", "small_study"} <= set(before)  # the rest is still there
    _add_entry(app, users["curator"], months=36, event_free=0.35)
    entry = _api_entry(app, users, PRIMARY)
    (stored,) = _stored(app)
    baseline = entry["baseline"]
    assert baseline == {"id": stored.id, "analysis": PRIMARY, "months": 36.0,
                        "event_free_percent": 35.0, "source": SOURCE,
                        "entered_by": users["curator"],
                        "entered_at": baseline["entered_at"]}
    assert baseline["entered_at"].startswith(str(stored.created_at.year))
    effect = entry["absolute_effect"]
    view = _expected(pooled[PRIMARY], 36, 0.35)
    for key, value in view.items():
        assert effect[key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert (effect["baseline_id"], effect["baseline_analysis"], effect["snapshot_id"],
            effect["source"]) == (stored.id, PRIMARY, pooled[PRIMARY].id, SOURCE)


def test_api_enters_a_risk_with_a_curator_token(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    api = api_as(app, users, "curator")
    body = {"analysis": PRIMARY, "months": 36, "event_free_percent": 35, "source": SOURCE}
    response = api.post("/api/estimates/baseline", json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    (stored,) = _stored(app)
    row = pooled[PRIMARY]
    assert answer["baseline"] == {**body, "id": stored.id, "entered_by": users["curator"],
                                  "entered_at": answer["baseline"]["entered_at"]}
    assert answer["absolute_effect"]["text"] == _expected(row, 36, 0.35)["text"]
    assert answer["absolute_effect"]["baseline_id"] == stored.id
    assert (answer["snapshot_id"], answer["replaces"]) == (row.id, None)
    assert answer["message"] == (f"Assumed control risk for {row.analysis_label} saved: 35% "
                                 "event-free at 36 months.")
    # what GET gives may be sent back with changes; the new entry replaces the first
    back = {**_api_entry(app, users, PRIMARY)["baseline"], "months": "24,5"}
    again = api.post("/api/estimates/baseline", json=back)
    assert again.status_code == 201, again.text
    assert again.json()["replaces"] == stored.id
    assert again.json()["absolute_effect"]["text"] == _expected(row, 24.5, 0.35)["text"]
    assert _api_entry(app, users, PRIMARY)["baseline"]["months"] == 24.5


def test_api_refuses_viewers_bad_fields_and_unknown_keys(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    url = "/api/estimates/baseline"
    body = {"analysis": PRIMARY, "months": 36, "event_free_percent": 35, "source": SOURCE}
    viewer = api_as(app, users, "viewer").post(url, json=body)
    assert viewer.status_code == 403
    assert viewer.json() == {"code": "forbidden",
                             "error": f"{users['viewer']} is a viewer; this needs the curator "
                                      "role (ask an admin to change your role)"}
    assert TestClient(app).post(url, json=body).status_code == 401
    api = api_as(app, users, "curator")
    bad = api.post(url, json={**body, "months": 0, "event_free_percent": 100, "source": " "})
    assert bad.status_code == 400
    fields = {"months": "must be at least 1 and at most 240 months",
              "event_free_percent": "must be at least 0.01 and at most 99.99 (percent)",
              "source": "is required: name where the control-arm risk comes from (GRADE asks "
                        "for it)"}
    assert bad.json() == {"code": "invalid", "fields": fields, "error": "; ".join(
        f"{k}: {v}" for k, v in fields.items())}
    # more than 0 and less than 100, but no risk to speak of: it was accepted
    tiny = api.post(url, json={**body, "event_free_percent": 1e-300, "months": "1e-300"})
    assert tiny.status_code == 400, tiny.text
    assert tiny.json()["fields"] == {
        "months": "must be at least 1 and at most 240 months",
        "event_free_percent": "must be at least 0.01 and at most 99.99 (percent)"}
    thousands = api.post(url, json={**body, "months": "1,000"})  # it was stored as 1 month
    assert thousands.status_code == 400
    assert thousands.json()["fields"] == {"months": (
        "'1,000' is ambiguous: 1000 with a thousands separator, or 1.000 with a decimal comma; "
        "type it without the comma, or with a decimal point")}
    wrong_kind = api.post(url, json={**body, "event_free_percent": [35], "source": 5})
    assert wrong_kind.status_code == 400  # it said "is required" for both
    assert wrong_kind.json()["fields"] == {
        "event_free_percent": "must be a number",
        "source": "must be text: name where the control-arm risk comes from (GRADE asks for it)"}
    typo = api.post(url, json={**body, "event_free": 0.35})
    assert typo.status_code == 400
    assert typo.json()["fields"] == {"body": (
        "unknown field 'event_free': an assumed control risk has analysis, months, "
        "event_free_percent, source")}
    no_key = api.post(url, json={k: v for k, v in body.items() if k != "analysis"})
    assert no_key.status_code == 400
    assert no_key.json()["fields"] == {"analysis": (
        "None is not an analysis key (drug/endpoint/setting, e.g. thalidomide/PFS/post_asct)")}
    # A 401-digit integer is a JSON number too large for a float: refused as 1e999 is (it was
    # an OverflowError, a 500).
    for huge in (b"1" + b"0" * 400, b"1e999"):
        raw = (b'{"analysis": "%s", "months": 36, "event_free_percent": %s, "source": "s"}'
               % (PRIMARY.encode(), huge))
        answer = api.post(url, content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["fields"] == {"event_free_percent": "must be a finite number"}
    for raw in (b"[1]", b"not json"):
        assert api.post(url, content=raw,
                        headers={"content-type": "application/json"}).status_code == 400
    unknown = api.post(url, json={**body, "analysis": "lenalidomide/OS/all", "months": "x"})
    assert unknown.status_code == 404  # the key first: no fields of an analysis that is not
    assert _stored(app) == []
