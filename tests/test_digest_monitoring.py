"""The digest's sequential-monitoring lines: the status of each changed analysis, a change of
status in words, nothing claimed from a snapshot stored before monitoring existed, and the
idempotency of the digest kept."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sqlmodel import select
from test_pool import add_estimate, add_trial

from reports.digest import build_digest, is_unchanged
from reports.pool import pool_all
from reports.selection import latest_results
from store.models import Digest, PooledResult
from store.settings import Settings

KEY = "thalidomide/PFS/post_asct"


def _statuses(ctx: Any) -> dict[str, str | None]:
    with ctx.sessions() as s:
        return {r.analysis_key: ((r.result or {}).get("monitoring") or {}).get("status")
                for r in latest_results(s)}


def _first_trial(ctx: Any) -> None:
    """One thalidomide trial: |Z| = 2.27, conventionally significant but inside the
    boundary at 66% of the information the default plan needs."""
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial A"), "0.80", "0.66", "0.97", year=2010)
        s.commit()


def _second_trial(ctx: Any) -> None:
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial B"), "0.70", "0.60", "0.82", year=2015)
        s.commit()


def _with(ctx: Any, **settings: Any) -> Any:
    return dataclasses.replace(ctx, settings=Settings(**{**ctx.settings.model_dump(),
                                                         **settings}))


def test_status_change_between_two_snapshots_is_said(ctx: Any) -> None:
    _first_trial(ctx)
    pool_all(ctx)
    assert _statuses(ctx)[KEY] == "conventional_only"
    first = build_digest(ctx)
    entry = next(a for a in first.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "new" and entry["monitoring_change"] is None
    assert entry["new"]["monitoring"]["status"] == "conventional_only"
    assert "Sequential monitoring: conventionally significant only. Conventionally " \
        "significant (|Z| = 2.27" in first.text
    assert "Monitoring: " not in first.text

    _second_trial(ctx)
    pool_all(ctx)
    assert _statuses(ctx)[KEY] == "firm_evidence"
    second = build_digest(ctx)
    assert second.id != first.id
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "updated"
    assert entry["monitoring_change"] == ("the Z-curve now crosses the monitoring boundary "
                                          "(was: conventionally significant only)")
    assert ("  Monitoring: the Z-curve now crosses the monitoring boundary (was: "
            "conventionally significant only).") in second.text
    with ctx.sessions() as s:
        stored = {r.analysis_key: r for r in latest_results(s)}[KEY].result["monitoring"]
    assert f"Sequential monitoring: firm evidence (boundary crossed). {stored['text']}" \
        in second.text
    assert "Monitoring: the Z-curve now crosses the monitoring boundary" in second.html
    assert 'class="monitoring-change"' in second.html
    assert "monitoring statuses changed" in second.subject  # both thalidomide analyses
    # the graph of each changed analysis is embedded like its forest plot
    assert second.html.count('class="monitoring-plot" src="data:image/png;base64,') == 2
    # building again changes nothing: the digest is idempotent
    again = build_digest(ctx)
    assert again.id == second.id and is_unchanged(again)


def test_no_change_is_claimed_from_a_snapshot_without_monitoring(ctx: Any) -> None:
    # A snapshot stored before monitoring existed (no "monitoring" key in its result).
    with ctx.sessions() as s:
        s.add(PooledResult(
            analysis_key=KEY, analysis_label="Thalidomide, PFS, post-ASCT", k=1,
            estimate=math.log(0.9), se=0.2, ci_low=math.log(0.9) - 0.392,
            ci_high=math.log(0.9) + 0.392, tau2=0.0, i2=0.0, result={"leave_one_out": []},
            inputs=[{"trial": "Old", "yi": math.log(0.9), "sei": 0.2, "hr": 0.9}],
            inputs_hash="old"))
        s.commit()
    first = build_digest(ctx)
    assert next(a for a in first.summary["analyses"] if a["key"] == KEY)["new"][
        "monitoring"] is None
    assert "Sequential monitoring" not in first.text

    _first_trial(ctx)
    pool_all(ctx)
    second = build_digest(ctx)
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "updated"
    assert entry["old"]["monitoring"] is None and entry["monitoring_change"] is None
    assert "Monitoring: " not in second.text and "monitoring-change" not in second.html
    assert "monitoring status" not in second.subject
    # the new status itself is still reported
    assert "Sequential monitoring: conventionally significant only." in second.text


def test_no_change_is_claimed_from_a_digest_summary_without_monitoring(ctx: Any) -> None:
    # The "before" side comes from the previous digest's summary when its snapshot is gone;
    # a summary written before monitoring existed has no "monitoring" in its views.
    _first_trial(ctx)
    pool_all(ctx)
    first = build_digest(ctx)
    with ctx.sessions() as s:
        stored = s.get(Digest, first.id)
        summary = dict(stored.summary)
        summary["analyses"] = [{**a, "new": {k: v for k, v in a["new"].items()
                                              if k != "monitoring"}}
                               for a in summary["analyses"]]
        stored.summary = summary
        # Another snapshot keeps the highest id taken: SQLite hands a deleted highest id out
        # again, and a new snapshot with an old id would look frozen.
        keep = "bortezomib/OS/all"
        s.add(PooledResult(analysis_key=keep, analysis_label="Other", k=0))
        for row in s.exec(select(PooledResult).where(PooledResult.analysis_key != keep)):
            s.delete(row)
        s.add(stored)
        s.commit()
    _second_trial(ctx)
    pool_all(ctx)
    second = build_digest(ctx)
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "updated" and entry["monitoring_change"] is None
    assert "Monitoring: " not in second.text
    assert "Sequential monitoring: firm evidence (boundary crossed)." in second.text


def test_a_monitoring_change_without_a_new_estimate_is_reported_once(ctx: Any) -> None:
    # The plan changes (MMLR_MONITORING_HR): same pooled estimate, another status.
    _first_trial(ctx)
    pool_all(ctx)
    first = build_digest(ctx)
    planned = _with(ctx, monitoring_hr=0.6)
    pool_all(planned)
    assert _statuses(ctx)[KEY] == "firm_evidence"
    second = build_digest(planned)
    assert second.id != first.id and not is_unchanged(second)
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "unchanged"
    assert entry["monitoring_change"] == (
        "the Z-curve now crosses the monitoring boundary (was: conventionally significant "
        "only); the plan changed from HR 0.80, two-sided α 0.05, power 80% to HR 0.60, "
        "two-sided α 0.05, power 80%")
    assert "Monitoring changed while the pooled estimate did not:" in second.text
    assert "class=\"monitoring-only\"" in second.html
    assert "0 analyses changed" in second.text and "monitoring statuses changed" in \
        second.subject
    assert 'class="monitoring-plot"' not in second.html  # graphs only for changed analyses
    third = build_digest(planned)
    assert third.id == second.id and is_unchanged(third)
