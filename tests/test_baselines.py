"""Assumed control-arm risks (store.baselines): the checks of an entry, the append-only history
and which entry an analysis uses — over the real database (SQLite, or PostgreSQL with
MMLR_TEST_DATABASE_URL) — and the absolute effects computed from them (reports.absolute)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlmodel import select

from reports.absolute import absolute_effect, absolute_view, per_1000, written_per_1000
from reports.digest import NO_ABSOLUTE_EFFECT
from store.baselines import (
    BaselineError,
    add_baseline,
    baseline_for,
    baseline_history,
    current_baselines,
    validate_baseline,
)
from store.errors import PoolingError, ValidationError
from store.models import AuditLog, BaselineRisk, PooledResult, User

KEY = "thalidomide/PFS/post_asct"


def _entry(**kwargs: Any) -> dict[str, Any]:
    return {"analysis_key": KEY, "months": 36, "event_free_percent": 35,
            "source": "control arm of CALGB 100104", **kwargs}


def _fields(**kwargs: Any) -> dict[str, str]:
    with pytest.raises(BaselineError) as caught:
        validate_baseline(**_entry(**kwargs))
    assert isinstance(caught.value, ValidationError) and caught.value.http_status == 400
    return caught.value.fields


def test_a_valid_entry_is_read_as_typed() -> None:
    entry = validate_baseline(**_entry(months="36", event_free_percent="35,5",
                                       source="  CALGB 100104 control arm\r\n"))
    assert (entry.months, entry.event_free, entry.source) == (36.0, 0.355,
                                                             "CALGB 100104 control arm")
    # a decimal comma that cannot separate thousands: not three digits after it
    assert [validate_baseline(**_entry(months=m)).months for m in ("1,5", "12,25", "1,0005")] \
        == [1.5, 12.25, 1.0005]
    assert entry.warnings == ()
    twin = validate_baseline(**_entry(analysis_key=KEY + "/with_strategy"))
    assert twin.analysis_key == KEY + "/with_strategy"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("months", 0, "must be at least 1 and at most 240 months"),
    ("months", 241, "must be at least 1 and at most 240 months"),
    # more than 0, but no time point a summary of findings reports
    ("months", 1e-300, "must be at least 1 and at most 240 months"),
    ("months", "0.99", "must be at least 1 and at most 240 months"),
    ("months", "abc", "'abc' is not a number"),
    ("months", None, "is required"),
    # a comma before exactly three digits may separate thousands: "1,000" was stored as 1
    ("months", "1,000", "'1,000' is ambiguous: 1000 with a thousands separator, or 1.000 with "
                        "a decimal comma; type it without the comma, or with a decimal point"),
    ("months", "12,500", "'12,500' is ambiguous: 12500 with a thousands separator, or 12.500"),
    ("event_free_percent", "35,000", "'35,000' is ambiguous"),
    ("months", True, "must be a number"),
    ("months", float("nan"), "finite"),
    # a JSON integer too large for a float: as 1e999 is, not an OverflowError (a 500)
    pytest.param("months", -(10**400), "must be a finite number", id="months--10**400"),
    pytest.param("event_free_percent", 10**400, "must be a finite number",
                 id="event_free_percent-10**400"),
    ("event_free_percent", 0, "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", 100, "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "", "is required"),
    # more than 0 (and less than 100), but no risk a summary of findings can speak of: 1e-300%
    # was accepted, and 5e-324% (a hundredth of it is 0.0) stored as 0% event-free
    ("event_free_percent", 1e-300, "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "5e-324", "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "0.009", "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "99.995", "must be at least 0.01 and at most 99.99 (percent)"),
    ("event_free_percent", "-inf", "must be a finite number"),
    ("source", "  ", "is required: name where the control-arm risk comes from"),
    ("source", "x" * 1001, "longer than 1000"),
    # sent, but not a number or not text: they were said to be missing ("is required")
    ("event_free_percent", [35], "must be a number"),
    ("months", {"value": 36}, "must be a number"),
    ("source", 5, "must be text: name where the control-arm risk comes from"),
    ("source", ["CALGB"], "must be text"),
    ("analysis_key", "thalidomide/QOL/post_asct", "is not an analysis key"),
    ("analysis_key", "thalidomide/PFS/post_asct/extra", "is not an analysis key"),
    ("analysis_key", 7, "is not an analysis key"),
])
def test_each_bad_field_is_named(field: str, value: Any, message: str) -> None:
    fields = _fields(**{field: value})
    name = "analysis" if field == "analysis_key" else field
    assert list(fields) == [name] and message in fields[name]


def test_a_percent_below_1_is_read_as_a_percent_and_said() -> None:
    """0.35 may be a proportion typed for 35%: read as 0.35%, a hundredfold smaller risk, it
    was accepted without a word."""
    entry = validate_baseline(**_entry(event_free_percent="0.35"))
    assert entry.event_free == pytest.approx(0.0035)
    assert entry.warnings == (
        "Event-free 0.35 is read as a percent: 0.35% of control patients event-free at 36 "
        "months. If you meant the proportion 0.35, type 35 for 35%.",)
    assert validate_baseline(**_entry(event_free_percent=1)).warnings == ()


def test_the_bounds_themselves_are_accepted() -> None:
    for months, percent in ((1, 0.01), (240, 99.99), ("1,0", "0,01")):
        entry = validate_baseline(**_entry(months=months, event_free_percent=percent))
        assert (entry.months, entry.event_free) == (pytest.approx(float(str(months).replace(
            ",", "."))), pytest.approx(float(str(percent).replace(",", ".")) / 100))


def test_every_bad_field_at_once() -> None:
    assert set(_fields(months=-1, event_free_percent=150, source="")) == {
        "months", "event_free_percent", "source"}


def _user(session: Any) -> User:
    user = User(email="curator@example.org", role="curator", password_hash="x")
    session.add(user)
    session.commit()
    return user


def test_entries_are_appended_and_the_newest_is_current(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        user = _user(s)
        first = add_baseline(s, entry=validate_baseline(**_entry()), user=user)
        s.commit()
        second = add_baseline(s, entry=validate_baseline(**_entry(event_free_percent=40)),
                              user=user)
        other = add_baseline(s, entry=validate_baseline(**_entry(
            analysis_key="lenalidomide/OS/all", months=60, event_free_percent=70)), user=user)
        s.commit()
        current = current_baselines(s)
        assert current[KEY].id == second.id and current["lenalidomide/OS/all"].id == other.id
        history = baseline_history(s)
        assert [r.id for r in history[KEY]] == [second.id, first.id]
        assert [r.id for r in history["lenalidomide/OS/all"]] == [other.id]
        assert len(s.exec(select(BaselineRisk)).all()) == 3  # nothing overwritten
        audits = s.exec(select(AuditLog).where(AuditLog.action == "baseline.set")).all()
        assert [a.details["replaces"] for a in audits] == [None, first.id, None]
        # The sensitivity twin uses the primary's entry until it has its own.
        assert baseline_for(KEY + "/with_strategy", current).id == second.id
        assert baseline_for("bortezomib/PFS/all", current) is None
        own = add_baseline(s, entry=validate_baseline(**_entry(
            analysis_key=KEY + "/with_strategy", months=24)), user=user)
        s.commit()
        assert baseline_for(KEY + "/with_strategy", current_baselines(s)).id == own.id


def test_absolute_effect_follows_proportional_hazards() -> None:
    view = absolute_effect(hr=0.57, hr_ci_low=0.46, hr_ci_high=0.71, event_free=0.35,
                           months=36, endpoint="PFS")
    # S_m = S_c ** HR: 0.35 ** 0.57 = 0.5497 event-free, so 450 of 1000 progressed or died.
    assert view["control_per_1000"] == pytest.approx(650.0)
    assert view["maintenance_per_1000"] == pytest.approx(1000 * (1 - 0.35 ** 0.57))
    assert view["maintenance_per_1000_ci_low"] == pytest.approx(1000 * (1 - 0.35 ** 0.46))
    assert view["difference_per_1000_ci_high"] == pytest.approx(1000 * (0.35 - 0.35 ** 0.71))
    assert view["text"] == (
        "At 36 months, 650 per 1000 progressed or died without maintenance (assumed) and 450 "
        "per 1000 with maintenance (95% CI 383 to 525): 200 fewer per 1000 (from 267 fewer to "
        "125 fewer).")
    harm = absolute_effect(hr=1.06, hr_ci_low=0.72, hr_ci_high=1.56, event_free=0.7,
                           months=60.5, endpoint="OS")
    assert harm["text"].startswith("At 60.5 months, 300 per 1000 died")
    assert "15 more per 1000 (from 74 fewer to 127 more)" in harm["text"]
    none = absolute_effect(hr=1.0, hr_ci_low=0.9, hr_ci_high=1.1, event_free=0.5, months=12,
                           endpoint="OS")
    assert none["difference_per_1000"] == 0 and "0 fewer per 1000" in none["text"]
    # a harm too small to reach one per 1000 keeps its direction: "0 more", not "0 fewer"
    small = absolute_effect(hr=1.02, hr_ci_low=0.79, hr_ci_high=1.33, event_free=0.99,
                            months=12, endpoint="OS")
    assert 0 < small["difference_per_1000"] < 0.5
    assert "0 more per 1000 (from 2 fewer to 3 more)" in small["text"]
    # half up, as clinical reports round: a control risk of exactly 876.5 per 1000 (12.35%
    # event-free) was "876" (Python's round is half to even), beside "883 … 6 more"
    half = absolute_effect(hr=1.06, hr_ci_low=0.8, hr_ci_high=1.4, event_free=0.1235,
                           months=60, endpoint="OS")
    assert half["control_per_1000"] == pytest.approx(876.5)
    assert half["text"].startswith("At 60 months, 877 per 1000 died without maintenance")
    assert per_1000(876.5) == 877 and per_1000(-6.5) == -7 and per_1000(0.49) == 0


def test_the_written_numbers_add_up_and_the_time_is_as_entered() -> None:
    """Control 647.5 and maintenance 464.6 per 1000 round to 648 and 465; the difference
    (−182.9) rounded on its own was "182 fewer" beside them. Written: 183 fewer. And a time of
    2.25 months was "At 2.2 months" under a table captioned 2.25."""
    view = absolute_effect(hr=0.6, hr_ci_low=0.48, hr_ci_high=0.72, event_free=0.3525,
                           months=2.25, endpoint="PFS")
    assert per_1000(view["difference_per_1000"]) == -183 + 1  # the old, separate rounding
    written = written_per_1000(view)
    assert (written["control_per_1000"], written["maintenance_per_1000"],
            written["difference_per_1000"]) == (648, 465, -183)
    for suffix in ("", "_ci_low", "_ci_high"):
        assert written[f"difference_per_1000{suffix}"] == (
            written[f"maintenance_per_1000{suffix}"] - written["control_per_1000"])
    assert view["text"].startswith("At 2.25 months, 648 per 1000 progressed or died")
    assert ": 183 fewer per 1000 (from " in view["text"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hr": 0.0}, "hr 0.0 must be a positive finite number"),
    ({"hr_ci_high": math.inf}, "hr_ci_high inf must be a positive finite number"),
    ({"hr": 0.8, "hr_ci_low": 0.85}, "not inside its CI"),
    ({"event_free": 1.0}, "must be in \\(0, 1\\)"),
    ({"endpoint": "QOL"}, "unknown endpoint 'QOL'"),
])
def test_absolute_effect_refuses_what_it_cannot_use(kwargs: dict[str, Any], message: str) -> None:
    args = {"hr": 0.7, "hr_ci_low": 0.6, "hr_ci_high": 0.8, "event_free": 0.4, "months": 36,
            "endpoint": "PFS", **kwargs}
    with pytest.raises(PoolingError, match=message):
        absolute_effect(**args)


def test_absolute_view_of_a_snapshot() -> None:
    row = PooledResult(id=9, analysis_key=KEY + "/with_strategy", k=3, estimate=math.log(0.7),
                       ci_low=math.log(0.6), ci_high=math.log(0.8))
    baseline = BaselineRisk(id=4, analysis_key=KEY, months=36, event_free=0.4,
                            source="<b>registry</b>", entered_by=1)
    view = absolute_view(row, baseline)
    assert view is not None
    assert view["maintenance_per_1000"] == pytest.approx(1000 * (1 - 0.4 ** 0.7))
    assert (view["baseline_id"], view["baseline_analysis"], view["snapshot_id"]) == (4, KEY, 9)
    assert view["source"] == "<b>registry</b>"  # escaping is the page's job
    # one trial shows its CI as printed (0.36–0.86): the absolute effect is computed from it,
    # not from the limits rebuilt from its SE (0.3558–0.8501), which disagreed in the units
    se = (math.log(0.86) - math.log(0.36)) / (2 * 1.959964)
    log_hr = (math.log(0.86) + math.log(0.36)) / 2
    one = PooledResult(id=10, analysis_key=KEY, k=1, estimate=log_hr,
                       ci_low=log_hr - 1.96 * se - 0.01, ci_high=log_hr + 1.96 * se - 0.01,
                       inputs=[{"trial": "T", "yi": log_hr, "sei": se, "hr": 0.55,
                                "ci_low": 0.36, "ci_high": 0.86, "method": "reported_ci",
                                "printed": {"hr": "0.55", "ci_low": "0.36",
                                            "ci_high": "0.86"}}])
    shown = absolute_view(one, baseline)
    assert shown is not None
    assert shown["maintenance_per_1000"] == pytest.approx(1000 * (1 - 0.4 ** 0.55))
    assert shown["maintenance_per_1000_ci_low"] == pytest.approx(1000 * (1 - 0.4 ** 0.36))
    assert shown["maintenance_per_1000_ci_high"] == pytest.approx(1000 * (1 - 0.4 ** 0.86))
    assert absolute_view(row, None) is None
    assert absolute_view(PooledResult(analysis_key=KEY, k=0), baseline) is None


def test_the_digest_states_the_absolute_effect(ctx) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from test_pool import add_estimate, add_trial

    from reports.digest import build_digest
    from reports.pool import pool_all

    with ctx.sessions() as s:
        for i, (hr, lo, hi) in enumerate([("0.60", "0.45", "0.80"), ("0.72", "0.55", "0.94")]):
            add_estimate(s, add_trial(s, f"T{i}"), hr, lo, hi, cut=date(2010 + i, 1, 1))
        user = _user(s)
        add_baseline(s, entry=validate_baseline(**_entry(
            source="<b>control</b>\r\narm of T0")), user=user)
        s.commit()
    pool_all(ctx)
    digest = build_digest(ctx)
    with ctx.sessions() as s:
        snap = next(p for p in s.exec(select(PooledResult)) if p.analysis_key == KEY)
        expected = absolute_effect(hr=math.exp(snap.estimate), hr_ci_low=math.exp(snap.ci_low),
                                   hr_ci_high=math.exp(snap.ci_high), event_free=0.35,
                                   months=36, endpoint="PFS")["text"]
    entry = next(a for a in digest.summary["analyses"] if a["key"] == KEY)
    assert entry["absolute"]["text"] == expected
    assert f"  Absolute effect: {expected} Assumed control risk: <b>control</b> arm of T0." \
        in digest.text
    assert "Assumed control risk: &lt;b&gt;control&lt;/b&gt; arm of T0." in digest.html
    # An analysis without an entry says why it has no absolute effect, in both parts: a
    # missing line would read as "no absolute difference".
    other = next(a for a in digest.summary["analyses"] if a["key"] == "thalidomide/PFS/all")
    assert other["absolute"] is None and other["status"] == "new"
    block = digest.text.split(f"* {other['label']} [")[1].split("\n* ")[0]
    assert f"  Absolute effect: {NO_ABSOLUTE_EFFECT}\n" in block
    assert digest.text.count(NO_ABSOLUTE_EFFECT) == len(digest.summary["analyses"]) - 1
    assert digest.html.count(NO_ABSOLUTE_EFFECT) == len(digest.summary["analyses"]) - 1


def test_a_new_control_risk_is_a_change_of_the_digest(ctx) -> None:  # type: ignore[no-untyped-def]
    """Entering or changing an assumed control risk moves the absolute effect per 1000 while
    the pooled snapshot stays: the digest listed the analysis as "Unchanged" and built
    nothing new."""
    from reports.digest import build_digest, is_unchanged

    with ctx.sessions() as s:
        s.add(PooledResult(analysis_key=KEY, analysis_label="Thal", k=2,
                           estimate=math.log(0.7), ci_low=math.log(0.55),
                           ci_high=math.log(0.9), inputs=[], result={}))
        s.commit()
    first = build_digest(ctx)
    with ctx.sessions() as s:
        user_id = _user(s).id
        add_baseline(s, entry=validate_baseline(**_entry(source="arm of T0")),
                     user=s.get(User, user_id))
        s.commit()
    second = build_digest(ctx)
    assert second.id != first.id and not is_unchanged(second)
    (entry,) = second.summary["analyses"]
    assert entry["status"] == "unchanged"
    text = entry["absolute"]["text"]
    assert entry["absolute_change"] == (f"{text} Assumed control risk: arm of T0. Before: no "
                                        "assumed control risk entered.")
    assert "1 absolute effect changed" in second.subject
    assert f"* Thal: {entry['absolute_change']}" in second.text
    assert "Absolute effect changed with the assumed control risk" in second.html
    with ctx.sessions() as s:
        add_baseline(s, entry=validate_baseline(**_entry(event_free_percent=50,
                                                         source="registry")),
                     user=s.get(User, user_id))
        s.commit()
    (entry,) = build_digest(ctx).summary["analyses"]
    assert entry["absolute_change"].endswith(f"Before: {text} Assumed control risk: arm of T0.")
    assert is_unchanged(build_digest(ctx))  # said once


def test_the_digest_says_when_an_entered_control_risk_gives_no_absolute_effect(ctx) -> None:  # type: ignore[no-untyped-def]
    """A control risk is entered but the snapshot's HR cannot be used: the digest gives the
    reason, not "no assumed control risk entered", which would send a curator to enter one."""
    from reports.digest import build_digest

    with ctx.sessions() as s:
        s.add(PooledResult(analysis_key=KEY, analysis_label="Thal", k=2, estimate=0.5,
                           ci_low=-790.0, ci_high=790.0, inputs=[], result={}))
        add_baseline(s, entry=validate_baseline(**_entry()), user=_user(s))
        s.commit()
    digest = build_digest(ctx)
    (entry,) = digest.summary["analyses"]
    assert entry["absolute"] is None
    assert "too large" in entry["absolute_unavailable"]
    assert f"  Absolute effect: not available: {entry['absolute_unavailable']}" in digest.text
    assert NO_ABSOLUTE_EFFECT not in digest.text and NO_ABSOLUTE_EFFECT not in digest.html


def test_an_absurd_snapshot_gives_a_clear_error_not_an_overflow() -> None:
    row = PooledResult(id=3, analysis_key=KEY, k=2, estimate=800.0, ci_low=790.0, ci_high=810.0)
    baseline = BaselineRisk(id=1, analysis_key=KEY, months=36, event_free=0.4, source="x",
                            entered_by=1)
    with pytest.raises(PoolingError, match="snapshot 3: the HR or its CI is too large"):
        absolute_view(row, baseline)


def test_an_absurd_snapshot_leaves_the_summary_of_findings_standing(ctx) -> None:  # type: ignore[no-untyped-def]
    from reports.export_sof import sof_rows

    with ctx.sessions() as s:
        user = _user(s)
        # Two discordant trials under HKSJ: a CI limit beyond the float range.
        s.add(PooledResult(analysis_key=KEY, analysis_label="Thal", k=2, estimate=0.5,
                           ci_low=-790.0, ci_high=790.0, inputs=[], result={}))
        add_baseline(s, entry=validate_baseline(**_entry()), user=user)
        s.commit()
        rows = sof_rows(s)
    assert [r["analysis"] for r in rows] == [KEY]
    assert rows[0]["absolute_text"] is None and rows[0]["baseline_id"] is None
    assert rows[0]["hr_ci_high"] == math.inf and rows[0]["hr"] == pytest.approx(math.exp(0.5))
