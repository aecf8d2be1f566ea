"""Digests: what changed in the review since the previous digest, and their delivery.

``build_digest(ctx)`` compares the database with the previous :class:`~store.models.Digest`
and stores a new one holding

* new flagged records (flagged now, not flagged when the previous digest was built),
* curator decisions made since (``Decision.id`` above the previous digest's last one); under
  dual screening counted as votes and resolutions, and only resolved includes are listed —
  a single vote is neither a decision nor something a second screener may read beforehand,
* alerts not yet reported (retractions, errata, deletions; each gets ``Alert.digest_id``),
* for each analysis the pooled result frozen in the previous digest next to the newest one:
  HR, CI, I², k, whether the CI crosses 1 now (or stopped crossing), the weight of each newly
  added trial, and a forest plot (PNG, embedded as a ``data:`` URI),
* for each analysis its sequential-monitoring status (``reports.sequential``, monitoring
  only) and, when the status changed between the two snapshots, what that means in words
  ("the Z-curve now crosses the monitoring boundary"); a snapshot from before monitoring
  existed has an unknown status, from which no change is claimed. An analysis whose status
  changed also gets the monitoring graph (PNG, like the forest plot),
* for each analysis with 10 or more trials, a line on small-study effects
  (``reports.small_study``) when the funnel assessment changed in a way a review panel acts
  on: the analysis reached 10 trials, Egger's p crossed 0.10, or trim-and-fill fills another
  number of trials; a snapshot from before the assessment existed claims no change,
* full-text judgements made since (``FullTextAssessment.id`` above the previous digest's
  last one): how many of each (votes of two assessors only as a number), the reports settled
  as eligible and as excluded with their reasons, where the full-text stage stands now
  (``store.fulltext``), and every report settled as excluded or not retrieved that is still
  a trial's report (a standing check, not a change),
* the screening health (recall estimate), computed by the provider the caller passes
  (``build_digest(ctx, health=screening.health.screening_health)``).

Every digest freezes the ids of the pooled results it reports (``Digest.pooled_result_ids``)
and keeps the whole change set as JSON in ``Digest.summary``, so each number can be audited.

**The previous digest** is the newest one that reached somebody (``previous_digest``), or
is still waiting for its first delivery: a digest whose every delivery failed, or a preview
(``mmlr digest --out`` alone) never delivered, is passed over, so the next digest covers its
changes too (``summary["since_digest"]`` names the digest compared with) and takes over its
alerts. A recipient is told what changed since the last digest that went out, not since the
last one stored.

**Idempotency.** When nothing changed since the previous digest no row is written:
``build_digest`` returns the previous digest and marks it *unchanged* in its SQLAlchemy
instance info (``is_unchanged(digest)`` reads the mark); so does a newer digest not
delivered yet that says the same (it is the one to deliver). ``deliver_digest`` never sends a
digest twice to the same recipient (nor writes it twice to the outbox), so ``mmlr run`` twice
in a row changes nothing the second time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import jinja2
from sqlalchemy import func, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstanceState
from sqlmodel import Session, col, select

from reports.absolute import absolute_or_reason
from reports.analyses import analysis_order
from reports.meta import hr_of
from reports.monitoring_view import number, plan_text, status_change, status_label
from reports.network_digest import changes as network_changes
from reports.network_digest import snapshot as network_snapshot
from reports.network_inputs import current_networks
from reports.presentation import (
    fit_notes,
    has_heterogeneity,
    i2_text,
    is_one_trial,
    is_two_trials,
    shown_fit_notes,
    shown_hr_of,
    trial_hr,
)
from reports.selection import latest_results
from reports.small_study import ASYMMETRY_P, MIN_TRIALS_FOR_TESTS, SIDE_WORDS, p_text
from reports.words import (
    estimate_text,
    hr_ci_text,
    hr_number,
    interval_text,
    plural,
    rounded,
)
from store.addresses import check_email
from store.audit import audit
from store.baselines import baseline_for, current_baselines
from store.citation import citation_line
from store.context import AppContext
from store.errors import ConfigError, DeliveryError, MmlrError, StateError, ValidationError
from store.fulltext import (
    LINK_PROBLEMS,
    NOTE_SHOWN,
    VOTE,
    SoughtRule,
    fulltext_counts,
    linked_not_included,
    outcomes,
    reason_words,
)
from store.locks import JobLease, job_lock
from store.models import (
    BY_SCORE,
    Alert,
    Decision,
    Delivery,
    Digest,
    Estimate,
    FullTextAssessment,
    PooledResult,
    Record,
    utcnow,
)
from store.screening_pool import in_screening_pool, previous_report_pmids
from store.searches import searches_between
from store.settings import parse_smtp_url
from store.text import closed_bidi_value
from store.trial_match import unlinked_strong_matches

log = logging.getLogger(__name__)

#: Flagged records listed one by one; beyond this the digest gives the count only.
MAX_LISTED_RECORDS = 50
PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
_UNCHANGED_MARK = "mmlr.digest_unchanged"
_SUMMARY_VERSION = 1
#: Lease of the delivery lock on SQLite, renewed after each recipient (one recipient's
#: connection attempts and retries take minutes at most).
DELIVERY_LOCK_TTL = 1800.0
# Keys of the summary that change with every build and say nothing about the evidence.
_VOLATILE_KEYS = ("period_start", "period_end", "first", "screening_health",
                  "screening_health_change", "searches", "preview")


# ----------------------------------------------------------------------------- formatting
def format_hr(estimate: float | None, ci_low: float | None, ci_high: float | None) -> str:
    """``"0.57 (0.46–0.71)"`` from log-scale values; ``"not estimable"`` without an estimate.
    Numbers as every report writes them (``reports.words.hr_ci_text``: half-up, en dash)."""
    if estimate is None or not math.isfinite(estimate):
        return "not estimable"
    has_ci = ci_low is not None and ci_high is not None
    return hr_ci_text(_hr_value(estimate), _hr_value(ci_low) if has_ci else None,
                      _hr_value(ci_high) if has_ci else None)


def _hr_value(log_hr: float | None) -> float:
    # An HKSJ interval of two discordant trials can reach beyond the float range: a digest
    # must still be built (and say "∞") rather than fail on an OverflowError.
    value = hr_of(log_hr)
    return math.inf if value is None else value


def crosses_one(ci_low: float | None, ci_high: float | None) -> bool | None:
    """Whether a log-scale CI includes HR = 1 (None when there is no CI), on the computed
    limits (a pooled CI; one trial's is read as printed: ``ShownHR.includes_one``)."""
    if ci_low is None or ci_high is None:
        return None
    return ci_low <= 0.0 <= ci_high


def _state(digest: Digest) -> InstanceState[Digest]:
    return cast("InstanceState[Digest]", inspect(digest))


def is_unchanged(digest: Digest) -> bool:
    """True when ``build_digest`` returned the previous digest because nothing changed."""
    return bool(_state(digest).info.get(_UNCHANGED_MARK, False))


# ----------------------------------------------------------------------------- building
#: Computes the screening-health summary (``screening.health.screening_health``): passed in by
#: the caller, because reports import store only (docs/architecture.md).
HealthProvider = Callable[..., dict[str, Any]]


def build_digest(ctx: AppContext, *, health: HealthProvider | None = None,
                 preview: bool = False) -> Digest:
    """Store and return the digest of what changed since the previous one (see module doc).

    ``health`` computes the screening health shown in the digest (the entry points pass
    ``screening.health.screening_health``); without it the digest says it was not computed.
    ``preview`` (``mmlr digest --out`` without ``--send``): the digest is stored but, until it
    is delivered, the next one still counts from the digest before it.
    Runs under the database lock "digest": two workers building at the same moment would each
    see the same previous digest and store the same changes twice. The second one gets
    ``LockedError`` instead.
    """
    with job_lock(ctx.engine, "digest", ttl=1800):
        return _build_digest(ctx, health, preview=preview)


def delivered_digest_ids(session: Session) -> set[int]:
    """Ids of the digests sent to someone (an SMTP recipient, or the outbox when that is the
    delivery)."""
    return {int(i) for i in session.exec(
        select(Delivery.digest_id).where(Delivery.status == "sent").distinct())}


def is_preview(digest: Digest) -> bool:
    """Whether ``digest`` was built by ``mmlr digest --out`` alone (a preview)."""
    return bool((digest.summary or {}).get("preview"))


def since_digest_id(digest: Digest) -> int | None:
    """The digest whose snapshot ``digest`` was compared with (None: the first digest, or one
    stored before this was kept — then the digest before it)."""
    value = (digest.summary or {}).get("since_digest")
    return value if isinstance(value, int) else None


def previous_digest(session: Session) -> Digest | None:
    """The digest the next one is compared with: the newest one that was delivered, or that
    is still waiting for its first delivery (built, never tried: the digest being delivered
    right after it was built, or by a caller that delivers later).

    Skipped are digests whose every delivery attempt failed and previews never delivered:
    their changes reached nobody, so the next digest must say them again (it counts from the
    digest before them), or subscribers never hear of them."""
    delivered = delivered_digest_ids(session)
    tried = {int(i) for i in session.exec(select(Delivery.digest_id).distinct())}
    for digest in session.exec(select(Digest).order_by(col(Digest.id).desc())):
        if digest.id in delivered or (digest.id not in tried and not is_preview(digest)):
            return digest
    return None


def carried_by(session: Session, digest: Digest) -> Digest | None:
    """The first later digest that was delivered and compared with a digest before
    ``digest``, so its changes went out there; None when none did (yet)."""
    delivered = delivered_digest_ids(session)
    for later in session.exec(select(Digest).where(col(Digest.id) > digest.id)
                              .order_by(col(Digest.id))):
        since = since_digest_id(later)
        if later.id in delivered and "since_digest" in (later.summary or {}) \
                and (since is None or since < int(digest.id or 0)):
            return later
    return None


def _build_digest(ctx: AppContext, health: HealthProvider | None, *,
                  preview: bool = False) -> Digest:
    now = utcnow()
    with ctx.sessions() as session:
        newest = session.exec(select(Digest).order_by(col(Digest.id).desc()).limit(1)).first()
        previous = previous_digest(session)
        prev_summary: dict[str, Any] = dict(previous.summary or {}) if previous else {}
        first = previous is None

        flagged = _flagged_records(session)
        flagged_pmids = sorted(r.pmid for r in flagged)
        seen = set() if first else set(prev_summary.get("flagged_pmids", []))
        new_flagged = [r for r in flagged if r.pmid not in seen]

        trial_matches, trial_match_keys = _new_trial_matches(session, prev_summary)
        decisions, last_decision_id = _decisions_since(
            session, previous, prev_summary, dual=ctx.settings.dual_screening)
        fulltext, last_fulltext_id = _fulltext_since(session, previous, prev_summary)
        # An alert listed by an undelivered digest after the previous one reached nobody.
        stmt = select(Alert).order_by(col(Alert.id))
        if previous is not None:
            stmt = stmt.where(col(Alert.digest_id).is_(None)
                              | (col(Alert.digest_id) > previous.id))
        alerts = list(session.exec(stmt).all())
        current = _latest_pooled(session)
        old = _pooled_by_ids(session, previous.pooled_result_ids if previous else [])
        analyses = _compare_analyses(old, current, prev_summary)
        _add_absolute_effects(session, analyses, current)
        _add_trial_moves(session, analyses, current)
        _absolute_changes(analyses, prev_summary)
        networks = network_snapshot(current_networks(
            session, ctx.settings.analyses_file, ctx.settings.pool_method))
        network_list, networks_unchanged = network_changes(prev_summary.get("networks"),
                                                           networks)

        # A monitoring status can change while the pooled estimate does not (an earlier cut
        # verified, the plan changed), and so can the funnel assessment (new code of
        # reports/small_study.py re-pools the same inputs): subscribers hear of those too.
        changed = bool(new_flagged or decisions["total"] or fulltext["total"] or alerts
                       or trial_matches
                       or network_list or any(a["status"] != "unchanged" or a["monitoring_change"]
                              or a["small_study_change"] or a.get("absolute_change")
                              or a["certainty_change"] for a in analyses))
        if previous is not None and not changed:
            log.info("digest: nothing changed since digest #%s; not building a new one",
                     previous.id)
            _state(previous).info[_UNCHANGED_MARK] = True
            return previous

        summary: dict[str, Any] = {
            "version": _SUMMARY_VERSION,
            "first": first,
            "period_start": previous.period_end.isoformat() if previous else None,
            "period_end": now.isoformat(),
            # The digest compared with: a digest never delivered in between is not it.
            "since_digest": previous.id if previous else None,
            "preview": preview,
            "flagged_pmids": flagged_pmids,
            "last_decision_id": last_decision_id,
            "new_flagged_total": len(new_flagged),
            "new_flagged": [_record_view(r) for r in new_flagged[:MAX_LISTED_RECORDS]],
            "decisions": decisions,
            "last_fulltext_id": last_fulltext_id,
            "fulltext": fulltext,
            "alerts": [_alert_view(a) for a in alerts],
            "trial_match_keys": trial_match_keys,
            "new_trial_reports_total": len(trial_matches),
            "new_trial_reports": trial_matches[:MAX_LISTED_RECORDS],
            "analyses": analyses,
            "networks": networks,
            "network_changes": network_list,
            "networks_unchanged": networks_unchanged,
        }
        summary["screening_health"], summary["screening_health_note"] = _screening_health(
            session, health, dual=ctx.settings.dual_screening,
            target_recall=ctx.settings.stopping_recall)
        summary["screening_health_change"] = stopping_change(
            prev_summary.get("screening_health"), summary["screening_health"])
        # What was searched this period: a living review reports its searches at each update.
        summary["searches"] = searches_between(
            session, previous.period_end if previous else None, now)
        images = _forest_images(current, analyses)  # before storing: it adds forest notes
        monitoring_images = _monitoring_images(current, analyses)
        content_hash = _content_hash(summary)
        if newest is not None and newest is not previous \
                and newest.content_hash == content_hash:
            # The newest digest, not delivered yet (a preview, or its delivery failed), says
            # exactly this: it is the one to deliver, not a copy of it under a new number.
            if is_preview(newest) and not preview:
                newest.summary = {**newest.summary, "preview": False}
                session.add(newest)
                session.commit()
                session.refresh(newest)
            log.info("digest: nothing changed since digest #%s, not delivered yet", newest.id)
            _state(newest).info[_UNCHANGED_MARK] = True
            return newest
        digest = Digest(
            period_start=previous.period_end if previous else None,
            period_end=now,
            summary=summary,
            pooled_result_ids=sorted(int(r.id) for r in current.values() if r.id is not None),
            content_hash=content_hash,
            html="",
            text="",
        )
        session.add(digest)
        session.flush()  # the id goes into the subject and the footer
        digest.subject = _subject(digest, summary)
        digest.html, digest.text = render_digest(digest, images=images,
                                                 monitoring_images=monitoring_images,
                                                 base_url=ctx.settings.base_url)
        for alert in alerts:
            alert.digest_id = digest.id
            session.add(alert)
        audit(session, "digest.built", object_type="digest", object_id=digest.id,
              new_flagged=len(new_flagged), decisions=decisions["total"], alerts=len(alerts),
              analyses_changed=sum(a["status"] != "unchanged" for a in analyses),
              pooled_result_ids=digest.pooled_result_ids)
        session.commit()
        session.refresh(digest)
        log.info("digest #%s built: %s", digest.id, digest.subject)
        return digest


def _flagged_records(session: Session) -> list[Record]:
    """The likely maintenance RCTs of the screening pool: the previous version's reports
    score high but are already included, not news."""
    stmt = (select(Record)
            .where(col(Record.flagged).is_(True), col(Record.deleted).is_(False),
                   in_screening_pool())
            .order_by(*BY_SCORE))
    return list(session.exec(stmt).all())


def _new_trial_matches(session: Session, prev_summary: dict[str, Any],
                       ) -> tuple[list[dict[str, Any]], list[str]]:
    """Records that may be new reports of trials in the review (``store.trial_match``, strong
    signals only), not yet linked to them and not announced by the previous digest; and the
    keys ("PMID:trial id") of every such pair now, for the next digest to compare with.

    A pair is announced once: the record stays marked on the queue and its page until a
    curator links or excludes it, but the digest does not repeat it every week."""
    announced = set(prev_summary.get("trial_match_keys", []))
    keys: list[str] = []
    new: list[dict[str, Any]] = []
    for record, matches in unlinked_strong_matches(session):
        fresh = []
        for m in matches:
            key = f"{record.pmid}:{m.trial_id}"
            keys.append(key)
            if key not in announced:
                fresh.append(m.as_dict())
        if fresh:
            new.append({**_record_view(record), "trials": fresh})
    return new, sorted(keys)


def _rows_since(session: Session, model: Any, previous: Digest | None, last_id: Any,
                ) -> tuple[list[Any], int | None]:
    """The append-only rows of ``model`` (decisions, full-text verdicts) made since the
    previous digest, in id order, and the last id the new digest records. Ids are the cut-off
    (timestamps of two rows can tie); the timestamp only serves a digest stored before the
    id was recorded."""
    stmt = select(model).order_by(col(model.id))
    if last_id is not None:
        stmt = stmt.where(col(model.id) > int(last_id))
    elif previous is not None:
        stmt = stmt.where(col(model.created_at) > previous.period_end)
    rows = list(session.exec(stmt).all())
    new_last = rows[-1].id if rows else (int(last_id) if last_id is not None else None)
    if new_last is None and previous is None:
        new_last = session.exec(select(func.max(model.id))).one()
    return rows, new_last


def _decisions_since(
    session: Session, previous: Digest | None, prev_summary: dict[str, Any], *,
    dual: bool = False,
) -> tuple[dict[str, Any], int | None]:
    rows, new_last = _rows_since(session, Decision, previous,
                                 prev_summary.get("last_decision_id"))
    # A decision on a previous version's report counts nowhere (store.screening_pool): not
    # news either. The cut-off stays the last row read, so it is not read again next time.
    outside = previous_report_pmids(session)
    rows = [d for d in rows if d.pmid not in outside]
    counts = Counter(d.decision for d in rows)
    if dual:  # how many, not which way: the votes of unresolved records stay blind
        counts = Counter("votes" if d.kind == "vote" else "resolutions" for d in rows)
    latest: dict[int, Decision] = {}
    for d in rows:
        latest[d.pmid] = d  # rows are in id order: the last one per record counts
    include_pmids = [p for p, d in latest.items() if d.decision == "include"]
    if dual:  # an include is a resolved one, whichever row of the period settled it
        include_pmids = sorted(int(p) for p in session.exec(select(Record.pmid).where(
            col(Record.pmid).in_(list(latest)), Record.decision == "include"))) \
            if latest else []
    records = {r.pmid: r for r in session.exec(
        select(Record).where(col(Record.pmid).in_(include_pmids))).all()} if include_pmids else {}
    includes = [_record_view(records[p]) if p in records else {"pmid": p, "title": "",
                                                                "url": PUBMED_URL.format(pmid=p)}
                for p in include_pmids]
    return ({"total": len(rows), "counts": dict(sorted(counts.items())),
             "records": len(latest), "includes": includes,
             "no_longer_included": _reversed_includes(
                 session, [p for p in latest if p not in set(include_pmids)])}, new_last)


def _reversed_includes(session: Session, pmids: Sequence[int]) -> list[dict[str, Any]]:
    """The records among ``pmids`` (decided this period, not included now) that an earlier
    digest announced as included and no digest since has withdrawn: a subscriber who read
    "included: <title>" must read that it no longer is, not infer it from "exclude: 1"."""
    if not pmids:
        return []
    wanted = set(pmids)
    announced: dict[int, int] = {}  # pmid -> the digest that last announced it included
    for digest_id, summary in session.exec(
            select(Digest.id, Digest.summary).order_by(col(Digest.id))).all():
        decided = (summary or {}).get("decisions") or {}
        for view in decided.get("includes") or []:
            if view.get("pmid") in wanted:
                announced[int(view["pmid"])] = int(digest_id or 0)
        for view in decided.get("no_longer_included") or []:
            announced.pop(int(view.get("pmid", 0)), None)
    if not announced:
        return []
    records = {r.pmid: r for r in session.exec(
        select(Record).where(col(Record.pmid).in_(list(announced)))).all()}
    return [{**(_record_view(records[p]) if p in records else
                {"pmid": p, "title": "", "url": PUBMED_URL.format(pmid=p)}),
             "announced_in": announced[p]} for p in sorted(announced)]


def _fulltext_since(session: Session, previous: Digest | None, prev_summary: dict[str, Any],
                    ) -> tuple[dict[str, Any], int | None]:
    """Full-text judgements of the period (ids above the previous digest's last one; a digest
    stored before the stage existed has none, so its period end is the cut-off): the reports
    *settled* in the period listed (by a verdict, a resolution, or the vote that made two
    assessors agree), and the stage as it stands now. Votes are counted, never shown by
    verdict: a vote waiting for its second assessor is blind."""
    rows, new_last = _rows_since(session, FullTextAssessment, previous,
                                 prev_summary.get("last_fulltext_id"))
    # Judgements of the reports not sought (the previous version's) count nowhere.
    rule = SoughtRule.for_session(session)
    rows = [row for row in rows if not rule.is_previous_report(row.pmid)]
    period = {row.id for row in rows}
    settled = outcomes(session, {row.pmid for row in rows})
    records = {r.pmid: r for r in session.exec(
        select(Record).where(col(Record.pmid).in_(list(settled))))} if settled else {}
    listed: dict[str, list[dict[str, Any]]] = {"eligible": [], "excluded": []}
    # Reports, each once, by the verdict that settles them now, among those settled in the
    # period (as /prisma's since-figures count them): counting the period's judgements said
    # "eligible: 1 · excluded: 1" of one report judged twice, beside "Now: 0 eligible".
    counts: Counter[str] = Counter()
    for pmid, o in sorted(settled.items()):
        record = records.get(pmid)
        if o.row is None or o.row.id not in period or record is None \
                or not rule.is_sought(record):
            continue  # unsettled, settled earlier, or on a record no longer sought
        counts[o.verdict] += 1
        if o.verdict in listed:
            listed[o.verdict].append({**_record_view(record), "reason": reason_words(
                o.reason, o.note, limit=NOTE_SHOWN) if o.reason else None})
    # Under dual screening how many votes, never which way: a vote waiting for its second
    # assessor is blind.
    votes = sum(1 for r in rows if r.kind == VOTE)
    if votes:
        counts["votes"] = votes
    # Not a change of the period but a standing inconsistency: said in every digest until a
    # curator fixes the trial's reports or the verdict.
    problems = linked_not_included(session)
    check = [_record_view(r) for r, problem in problems if problem == "ruled_out"]
    # The other trials' reports the PRISMA flow does not count as included (unscreened,
    # excluded at title/abstract screening, deleted, full text not settled): pooled once
    # verified, but outside the flow's included box until a curator settles them.
    not_counted = [{**_record_view(r), "problem": LINK_PROBLEMS[problem]}
                   for r, problem in problems if problem != "ruled_out"]
    return ({"total": len(rows), "counts": dict(sorted(counts.items())),
             "eligible": listed["eligible"][:MAX_LISTED_RECORDS],
             "excluded": listed["excluded"][:MAX_LISTED_RECORDS],
             "linked_though_ruled_out": check[:MAX_LISTED_RECORDS],
             "linked_not_included": not_counted[:MAX_LISTED_RECORDS],
             "now": fulltext_counts(session).to_json()}, new_last)


def _latest_pooled(session: Session) -> dict[str, PooledResult]:
    """The newest pooled result of every analysis, keyed by analysis key (in key order)."""
    return {r.analysis_key: r for r in sorted(latest_results(session),
                                              key=lambda r: r.analysis_key)}


def _pooled_by_ids(session: Session, ids: Sequence[int]) -> dict[str, PooledResult]:
    if not ids:
        return {}
    rows = session.exec(select(PooledResult).where(col(PooledResult.id).in_(list(ids)))).all()
    return {r.analysis_key: r for r in rows}


# ----------------------------------------------------------------------------- analyses
def _compare_analyses(
    old: dict[str, PooledResult], new: dict[str, PooledResult], previous: dict[str, Any],
) -> list[dict[str, Any]]:
    """One entry per analysis: the frozen view of the previous digest next to the newest.

    The "before" side comes from the frozen PooledResult row, or from the previous digest's
    stored summary when that row no longer exists, so a deleted snapshot cannot hide a change.
    """
    prev_views = {a["key"]: a["new"] for a in previous.get("analyses", []) if a.get("new")}
    out = []
    for key in sorted(set(old) | set(prev_views) | set(new), key=analysis_order):
        after = new.get(key)
        before = _pooled_view(old[key]) if key in old else prev_views.get(key)
        now = _pooled_view(after) if after is not None else None
        # A trial renamed between the two snapshots is the same trial: matched by its id, it
        # is said to be renamed, not to have joined and left.
        renamed = _renamed_trials(before, now)
        if now is None:
            status = "removed"
        elif before is None:
            status = "new"
        elif _same_result(before, now):
            status = "unchanged"
        else:
            status = "updated"
        label = (after.analysis_label if after is not None else "") or (
            _previous_label(previous, key)) or key
        entry: dict[str, Any] = {
            "key": key,
            "label": label,
            "status": status,
            "old": before,
            "new": now,
            "crossing": _crossing_change(before, now),
            # The same trials and estimates pooled another way (MMLR_POOL_METHOD/_CI) or by
            # another version of mmlr: said, so a CI that now crosses 1 is not read as news.
            "method_change": (_method_change(before, now) if status == "updated" else None),
            "monitoring_change": _monitoring_change(before, now),
            "small_study_change": _small_study_change(before, now),
            "certainty_change": _certainty_change(before, now),
            "bias_changes": _bias_changes(before, now, renamed),
            "renamed_trials": [{"old": o, "new": n} for o, n in renamed.items()],
            # Updated with the same numbers (a risk-of-bias judgment or a flag of an input
            # changed): said in the heading, so nobody looks for the difference in the HR.
            "same_numbers": (status == "updated" and before is not None and now is not None
                             and _same_numbers(before, now)),
            "added_trials": [],
            "removed_trials": [],
            "changed_trials": (_changed_trials(before, now, renamed)
                               if before is not None and now is not None else []),
        }
        if after is not None and status != "unchanged":
            old_labels = set(before["trials"]) if before is not None else set()
            new_studies = _studies(after)
            entry["added_trials"] = [t for t in new_studies if t["label"] not in old_labels
                                     and t["label"] not in renamed.values()]
            entry["removed_trials"] = sorted(old_labels - {t["label"] for t in new_studies}
                                             - set(renamed))
        out.append(entry)
    return out


#: A CI method in the digest's words.
_CI_WORDS = {"hksj": "HKSJ", "hksj-adhoc": "HKSJ (ad hoc)", "wald": "Wald"}


def _method_words(view: dict[str, Any]) -> str:
    """"REML + HKSJ (ad hoc)": how a view was pooled."""
    ci = str(view.get("ci_method") or "")
    return f"{view.get('method') or '?'} + {_CI_WORDS.get(ci, ci or '?')}"


def _method_change(before: dict[str, Any] | None, now: dict[str, Any] | None) -> str | None:
    """What changed when the same inputs (equal ``inputs_hash``) were pooled again with other
    numbers: the pooling method ("pooling method changed: REML + HKSJ → REML + HKSJ (ad hoc);
    same trials and estimates") or mmlr's code version; None when the inputs differ (the
    evidence changed) or either side does not say (a view stored before it was kept)."""
    if before is None or now is None or not before.get("inputs_hash") \
            or before["inputs_hash"] != now.get("inputs_hash"):
        return None
    then_words, now_words = _method_words(before), _method_words(now)
    if then_words != now_words:
        return (f"pooling method changed: {then_words} → {now_words}; "
                "same trials and estimates")
    then_code, now_code = before.get("code_version"), now.get("code_version")
    if then_code and now_code and then_code != now_code:
        return (f"mmlr's computation changed (code {then_code} → {now_code}); same trials, "
                "estimates and pooling method")
    return None


def _previous_label(previous: dict[str, Any], key: str) -> str | None:
    for a in previous.get("analyses", []):
        if a.get("key") == key:
            return str(a.get("label") or "") or None
    return None


def _same_result(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["id"] is not None and a["id"] == b["id"]:
        return True
    if (a["method"], a["ci_method"], a["k"]) != (b["method"], b["ci_method"], b["k"]):
        return False
    if a["inputs_hash"] and b["inputs_hash"] and a["inputs_hash"] != b["inputs_hash"]:
        return False
    return _same_numbers(a, b)


def _same_numbers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["k"] == b["k"] and all(_close(a[f], b[f])
                                    for f in ("estimate", "ci_low", "ci_high", "tau2"))


def _close(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def _crossing_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    now = after["crosses_one"] if after is not None else None
    then = before["crosses_one"] if before is not None else None
    if now is None or then is None or now == then:
        return None
    return "now crosses 1" if now else "no longer crosses 1"


_ROB_WORDS = {"low": "low", "some_concerns": "some concerns", "high": "high", None: "not assessed"}


def _bias_changes(before: dict[str, Any] | None, after: dict[str, Any] | None,
                  renamed: dict[str, str] | None = None) -> list[str]:
    """The trials pooled in both snapshots whose RoB 2 judgment changed, in words ("CALGB
    100104: high (was: not assessed)"): such a change alone makes a new snapshot with the same
    numbers, and the digest must say why the analysis is listed. ``renamed`` maps a trial's
    old label to its new one (:func:`_renamed_trials`)."""
    then = (before or {}).get("risk_of_bias")
    now = (after or {}).get("risk_of_bias")
    if then is None or now is None:
        return []
    was = _old_label(renamed)
    return [f"{trial}: {_ROB_WORDS.get(judgment, judgment)} "
            f"(was: {_ROB_WORDS.get(then[was(trial)], then[was(trial)])})"
            for trial, judgment in now.items()
            if was(trial) in then and then[was(trial)] != judgment]


def _trial_keys(row: PooledResult) -> dict[str, str]:
    """Each pooled study's label → the trial it is (id, and the stratum: a trial reported by
    stratum is two studies of the all-settings analysis); studies stored without a trial id
    (snapshots from before it was kept) are left out."""
    return {str(i.get("trial")): f"{i['trial_id']}/{i.get('subgroup') or ''}"
            for i in row.inputs or [] if isinstance(i, dict) and i.get("trial_id") is not None}


def _renamed_trials(before: dict[str, Any] | None,
                    now: dict[str, Any] | None) -> dict[str, str]:
    """Old label → new label of each trial pooled in both views under another name (matched by
    trial id and stratum; a view from a digest's stored summary has no ids: nothing is
    matched)."""
    then = (before or {}).get("trial_keys") or {}
    new = {key: label for label, key in ((now or {}).get("trial_keys") or {}).items()}
    return {label: new[key] for label, key in then.items()
            if key in new and new[key] != label}


def _old_label(renamed: dict[str, str] | None) -> Any:
    """A function giving a study's label in the older view (its own unless it was renamed)."""
    back = {n: o for o, n in (renamed or {}).items()}
    return lambda label: back.get(label, label)


def _monitoring_change(before: dict[str, Any] | None,
                       after: dict[str, Any] | None) -> str | None:
    """The monitoring status change between two views in words, or None (also when either
    side is unknown: a view from before monitoring existed has no ``monitoring``)."""
    then = (before or {}).get("monitoring") or {}
    now = (after or {}).get("monitoring") or {}
    words = status_change(then.get("status"), now.get("status"))
    if words is None:
        return None
    words += f" (was: {status_label(then.get('status'))})"
    if then.get("plan_text") and now.get("plan_text") and then["plan_text"] != now["plan_text"]:
        words += f"; the plan changed from {then['plan_text']} to {now['plan_text']}"
    return words


def _egger_words(p: float | None) -> str:
    if p is None:
        return "Egger's test could not be computed"
    return f"Egger's test {p_text(p)}" + (" (asymmetry)" if p < ASYMMETRY_P else "")


def _trim_fill_words(tf: dict[str, Any] | None, was: int | None = None) -> str:
    """``"trim-and-fill: 0 → 2 trials filled on the left, adjusted HR 0.80 (0.70–0.92)"``
    (``was`` the earlier count, when there is one to compare with)."""
    if tf is None:
        return "trim-and-fill could not be computed"
    k0 = tf["k0"]
    if was is None and not k0:
        return "trim-and-fill: no trial filled"
    count = f"{was} → {k0}" if was is not None else str(k0)
    words = f"trim-and-fill: {count} trial{'' if k0 == 1 else 's'} filled"
    # With nothing filled the "adjusted" estimate is the primary one, already in the table.
    if k0:
        words += f" {SIDE_WORDS.get(tf['side'], 'on the ' + tf['side'])}"
        if tf["hr"] is not None:
            words += f", adjusted HR {hr_ci_text(tf['hr'], tf['hr_ci_low'], tf['hr_ci_high'])}"
    return words


def _certainty_level(view: dict[str, Any] | None) -> str | None:
    """The suggested certainty's level of a pooled view ("moderate"), from the text the view
    keeps ("moderate (provisional)"); None without one."""
    text = (view or {}).get("certainty_text")
    if not isinstance(text, str) or not text:
        return None
    return text.removesuffix(" (provisional)")


def _certainty_change(before: dict[str, Any] | None,
                      after: dict[str, Any] | None) -> str | None:
    """"moderate → low" when the suggested GRADE level of an analysis changed (with
    "(provisional)" where it applies), else None: a new trial, a new judgment of risk of bias,
    a monitoring plan or new rules can move it while the estimate stays. A view without a
    certainty (a snapshot from before it existed, a new analysis) claims no change."""
    then, now = _certainty_level(before), _certainty_level(after)
    if then is None or now is None or then == now:
        return None
    return f"{(before or {})['certainty_text']} → {(after or {})['certainty_text']}"


def _small_study_change(before: dict[str, Any] | None,
                        after: dict[str, Any] | None) -> str | None:
    """What changed in the funnel assessment of an analysis with 10+ trials, in words, or
    None when nothing a panel acts on did.

    Three changes count: the analysis reached :data:`MIN_TRIALS_FOR_TESTS` trials (below, the
    tests cannot tell asymmetry from chance, so the first readable result is news), Egger's p
    crossed :data:`ASYMMETRY_P` either way, and trim-and-fill fills another number of trials.
    A p that moves without crossing is noise to a panel and is not reported. A view without
    ``small_study`` (stored before the assessment existed) is unknown: no change is claimed
    from it, in particular no asymmetry "appears" against it.
    """
    now = (after or {}).get("small_study")
    if not now or not now["k_sufficient"]:
        return None
    reached = (f"now {MIN_TRIALS_FOR_TESTS}+ trials: funnel asymmetry can be assessed — "
               f"{_egger_words(now['egger_p'])}; {_trim_fill_words(now['trim_fill'])}")
    # No earlier snapshot, or one that pooled nothing: there was no funnel to compare with.
    if before is None or not before.get("k"):
        return reached
    then = before.get("small_study")
    if not then:
        return None
    if not then["k_sufficient"]:
        return reached
    parts = []
    p_then, p_now = then["egger_p"], now["egger_p"]
    if p_then is not None and p_now is not None \
            and (p_then < ASYMMETRY_P) != (p_now < ASYMMETRY_P):
        parts.append(f"Egger's test {p_text(p_then)} → {p_text(p_now)}: funnel asymmetry "
                     + ("appeared" if p_now < ASYMMETRY_P else "no longer detected")
                     + f" (threshold p < {ASYMMETRY_P:.2f})")
    tf_then, tf_now = then["trim_fill"], now["trim_fill"]
    if tf_then is not None and tf_now is not None and tf_then["k0"] != tf_now["k0"]:
        parts.append(_trim_fill_words(tf_now, was=tf_then["k0"]))
    return "; ".join(parts) or None


#: The most of a curator's withdrawal reason the digest quotes.
_REASON_SHOWN = 160


def _add_trial_moves(session: Session, analyses: list[dict[str, Any]],
                     current: dict[str, PooledResult]) -> None:
    """Why each trial no longer pooled left (``removed_reasons``, label → words, from the new
    snapshot's ``dropped`` entries and the estimates they name: "withdrawn: corrected by
    estimate 4, awaiting verification"), and which added trials were pooled in an earlier
    snapshot of the analysis (``returns`` on the added trial: "corrected estimate" when its
    estimate now is a correction, else ""): a corrected estimate read as a trial that left
    without a reason, then as one "newly added"."""
    for entry in analyses:
        row = current.get(entry["key"])
        if row is None or entry["new"] is None:
            continue
        if entry["removed_trials"]:
            entry["removed_reasons"] = _removed_reasons(session, row, entry["removed_trials"])
        if entry["added_trials"] and entry["status"] != "new":
            back = _returning(session, row, entry["added_trials"])
            if back:
                entry["returning_trials"] = back
                entry["added_trials"] = [t for t in entry["added_trials"] if t not in back]


def _removed_reasons(session: Session, row: PooledResult,
                     labels: list[str]) -> dict[str, str]:
    result = row.result if isinstance(row.result, dict) else {}
    dropped = [d for d in result.get("dropped") or []
               if isinstance(d, dict) and str(d.get("trial")) in labels]
    ids = [d["estimate_id"] for d in dropped if isinstance(d.get("estimate_id"), int)]
    estimates = {e.id: e for e in session.exec(
        select(Estimate).where(col(Estimate.id).in_(ids)))} if ids else {}
    corrections = {e.supersedes_id: e for e in session.exec(
        select(Estimate).where(col(Estimate.supersedes_id).in_(ids)))} if ids else {}
    out: dict[str, str] = {}
    for label in labels:
        words: list[str] = []
        named: set[int] = set()  # corrections already said ("corrected by estimate 4")
        mine = [d for d in dropped if str(d.get("trial")) == label]
        for d in sorted(mine, key=lambda d: d.get("reason") != "withdrawn"):
            eid, reason = d.get("estimate_id"), str(d.get("reason") or "")
            if reason == "withdrawn":
                text = _withdrawn_words(estimates.get(eid), corrections.get(eid))
                fix = corrections.get(eid)
                if fix is not None and fix.id is not None:
                    named.add(fix.id)
            elif reason == "not verified":
                if eid in named:
                    continue
                text = f"estimate {eid} awaits verification"
            else:
                text = reason
            if text and text not in words:
                words.append(text)
        if words:
            out[label] = "; ".join(words)
    return out


def _withdrawn_words(estimate: Estimate | None, fix: Estimate | None) -> str:
    """"withdrawn: corrected by estimate 4, awaiting verification"; "withdrawn: <the
    curator's reason>"; or "withdrawn"."""
    why = " ".join((estimate.withdrawn_reason or "").split()) if estimate is not None else ""
    if len(why) > _REASON_SHOWN:
        why = why[:_REASON_SHOWN - 1].rstrip() + "…"
    if fix is not None and not why.startswith("corrected by estimate"):
        why = f"corrected by estimate {fix.id}" + (f" ({why})" if why else "")
    if fix is not None and not fix.verified and fix.withdrawn_at is None:
        why += ", awaiting verification"
    return f"withdrawn: {why}" if why else "withdrawn"


def _returning(session: Session, row: PooledResult,
               added: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The added trials that an earlier snapshot of ``row``'s analysis pooled, each marked
    with ``returns``: "corrected estimate" when it returns with a correction, else ""."""
    ids = {str(i.get("trial")): i for i in row.inputs or [] if isinstance(i, dict)}
    earlier = session.exec(select(PooledResult.inputs).where(
        PooledResult.analysis_key == row.analysis_key,
        col(PooledResult.id) < (row.id or 0))).all()
    pooled_before = {str(i.get("trial_id")) for inputs in earlier for i in inputs or []
                     if isinstance(i, dict) and i.get("trial_id") is not None}
    back = []
    for trial in added:
        source = ids.get(trial["label"]) or {}
        if source.get("trial_id") is None or str(source["trial_id"]) not in pooled_before:
            continue
        estimate = session.get(Estimate, source.get("estimate_id")) \
            if isinstance(source.get("estimate_id"), int) else None
        trial["returns"] = ("corrected estimate" if estimate is not None
                            and estimate.supersedes_id is not None else "")
        back.append(trial)
    return back


def _add_absolute_effects(session: Session, analyses: list[dict[str, Any]],
                          current: dict[str, PooledResult]) -> None:
    """Each analysis' absolute effect per 1000 (``reports.absolute``) with the assumed control
    risk current now, frozen into the summary as words and the entry's id: what subscribers
    read is what the digest keeps. None until a curator enters a control risk."""
    baselines = current_baselines(session)
    for entry in analyses:
        row = current.get(entry["key"])
        baseline = baseline_for(entry["key"], baselines)
        view, why = absolute_or_reason(row, baseline) if row else (None, None)
        entry["absolute"] = ({"text": view["text"], "source": " ".join(view["source"].split()),
                              "baseline_id": view["baseline_id"]} if view else None)
        if view is None and baseline is not None and why:
            # A control risk was entered but the snapshot's numbers allow no absolute effect:
            # say so, rather than "no assumed control risk entered" (the digest's default).
            entry["absolute_unavailable"] = why


def _absolute_changes(analyses: list[dict[str, Any]], previous: dict[str, Any]) -> None:
    """Marks each analysis whose assumed control risk changed since the previous digest (a
    first entry, or a newer one) with ``absolute_change``, the absolute effect then and now
    in words: the absolute effect per 1000 moves with it while the pooled snapshot does not,
    and a panel reads the absolute effect. Nothing is claimed against a digest stored before
    absolute effects were kept."""
    then = {a["key"]: a for a in previous.get("analyses", []) if "absolute" in a}
    for entry in analyses:
        before = then.get(entry["key"])
        if before is None or entry["new"] is None:
            continue
        old, new = before.get("absolute"), entry.get("absolute")
        if (old or {}).get("baseline_id") == (new or {}).get("baseline_id"):
            continue
        was = (f"{old['text']} Assumed control risk: {old['source']}." if old
               else "no assumed control risk entered.")
        now = (f"{new['text']} Assumed control risk: {new['source']}." if new
               else f"not available: {entry.get('absolute_unavailable') or 'no estimate'}.")
        entry["absolute_change"] = f"{now} Before: {was}"


def _small_study_view(row: PooledResult) -> dict[str, Any] | None:
    """What the digest keeps of a snapshot's funnel assessment (rounded, so that the summary
    and its content hash do not depend on the last bits of a float); None when the snapshot has
    none (stored before the assessment existed, or nothing pooled)."""
    result = row.result if isinstance(row.result, dict) else {}
    view = result.get("small_study")
    if not isinstance(view, dict) or not isinstance(view.get("k_sufficient"), bool):
        return None

    def rounded(value: Any) -> float | None:
        x = number(value)
        return None if x is None else round(x, 6)

    egger = view.get("egger")
    egger_p = rounded(egger.get("p")) if isinstance(egger, dict) else None
    tf = view.get("trim_fill")
    trim_fill = None
    if isinstance(tf, dict) and isinstance(tf.get("k0"), int) and not isinstance(tf["k0"], bool):
        trim_fill = {"side": str(tf.get("side") or ""), "k0": tf["k0"],
                     "hr": rounded(tf.get("hr")), "hr_ci_low": rounded(tf.get("hr_ci_low")),
                     "hr_ci_high": rounded(tf.get("hr_ci_high"))}
    return {"k_sufficient": view["k_sufficient"], "egger_p": egger_p,
            "trim_fill": trim_fill}


def _monitoring_view(row: PooledResult) -> dict[str, Any] | None:
    """What the digest keeps of a snapshot's sequential monitoring; None when the snapshot
    has none (stored before monitoring existed, or nothing pooled)."""
    result = row.result if isinstance(row.result, dict) else {}
    view = result.get("monitoring")
    if not isinstance(view, dict) or not view.get("status"):
        return None
    fraction = number(view.get("fraction"))
    return {
        "status": str(view["status"]),
        "label": status_label(str(view["status"])),
        "text": " ".join(str(view.get("text") or "").split()),
        "fraction": None if fraction is None else round(fraction, 6),
        "plan_text": plan_text(view.get("plan")),
    }


TWO_TRIALS_PI_NOTE = "from two trials: says little about the effect in a next trial"


def _pooled_view(row: PooledResult) -> dict[str, Any]:
    def hr(x: float | None) -> float | None:
        # None, as stored JSON has it, for an HR beyond the float range (reports.meta.hr_of)
        value = hr_of(x)
        return round(value, 6) if value is not None and math.isfinite(value) else None

    # One trial has no between-trial variation to measure: its "prediction interval" is its
    # CI and its I² a 0 by construction, which would tell the panel more than one trial can
    # (the summary of findings shows "—" for both); its HR and CI are the trial's as printed
    # (reports.presentation).
    several = has_heterogeneity(row.k)
    shown = shown_hr_of(row)
    return {
        "id": row.id,
        "k": row.k,
        "method": row.method,
        "ci_method": row.ci_method,
        "estimate": row.estimate,
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
        "hr": hr(row.estimate),
        "hr_ci_low": hr(row.ci_low),
        "hr_ci_high": hr(row.ci_high),
        "hr_text": shown.text(),
        "hr_note": shown.note,
        # What the fit says about its own CI (an HKSJ interval narrower than Wald's, t with
        # 1 df for two trials, ...): beside the number, as /estimates has it, so an
        # implausibly narrow CI is not read at face value.
        "fit_notes": shown_fit_notes(row.k, fit_notes(row)),
        "pi_text": (interval_text(hr_number(_hr_value(row.pi_low)),
                                  hr_number(_hr_value(row.pi_high)))
                    if several and row.pi_low is not None and row.pi_high is not None
                    else None),
        # Two trials: metafor's interval (t with 1 df under HKSJ), which a panel should not
        # read as a range for the next trial (reports.meta's note; no t(k-2) interval exists).
        "pi_note": TWO_TRIALS_PI_NOTE if is_two_trials(row.k) else None,
        "i2": row.i2,
        "i2_text": i2_text(row.i2) if several else "—",
        "tau2": row.tau2,
        # One trial: as printed in the paper (its 1.00 includes 1, rebuilt it is 0.99999999);
        # pooled: on the computed limits, as the certainty's imprecision rule reads them.
        "crosses_one": (shown.includes_one if shown.own_ci is not None
                        else crosses_one(row.ci_low, row.ci_high)),
        "inputs_hash": row.inputs_hash,
        "code_version": row.code_version,
        "trials": [t["label"] for t in _studies(row)],
        "trial_keys": _trial_keys(row),
        # Which estimate stands for each trial: a new data cut or a correction of a trial
        # already pooled changes this and nothing else the digest compares by trial.
        "inputs": {str(i.get("trial")): _input_view(i) for i in row.inputs or []
                   if isinstance(i, dict)},
        "computed_at": row.computed_at.isoformat() if row.computed_at else None,
        "monitoring": _monitoring_view(row),
        "small_study": _small_study_view(row),
        "certainty_text": _certainty_text(row),
        # None for snapshots from before the judgments were pooled: no change is claimed.
        "risk_of_bias": ({str(r.get("trial")): r.get("risk_of_bias") for r in row.inputs or []}
                         if all("risk_of_bias" in r for r in row.inputs or []) else None),
    }


def _input_view(row: dict[str, Any]) -> dict[str, Any]:
    """One pooled study's estimate in a few words: "HR 0.64 (0.50–0.82), data cut 2026-02-28
    (median follow-up 38 months)", with the PMID of the report it comes from (None when the
    report has none)."""
    # The trial's HR and CI as printed (half-up from the paper's digits when kept), not
    # rebuilt from its log HR.
    text = "HR " + estimate_text(*trial_hr(row))
    cut = _cut_words(row)
    if cut:
        text += f", data cut {cut}"
    return {"estimate_id": row.get("estimate_id"), "text": text, "pmid": _pmid(row)}


def _cut_words(row: dict[str, Any]) -> str | None:
    """The data cut as the curator entered it: the date and the label both when both were
    given (the label alone hid the date that decides which cut is pooled), else either, else
    the report's year."""
    day, label = row.get("data_cut"), row.get("data_cut_label")
    if day and label:
        return f"{day} ({label})"
    cut = label or day or row.get("year")
    return str(cut) if cut else None


def _pmid(row: dict[str, Any]) -> int | None:
    """The PMID of the report an input row's estimate comes from: the digest names it next to
    the trial, so a reader can open the publication that changed the numbers."""
    pmid = row.get("pmid")
    return pmid if isinstance(pmid, int) and not isinstance(pmid, bool) and pmid > 0 else None


def _changed_trials(before: dict[str, Any], now: dict[str, Any],
                    renamed: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Trials pooled before and now whose estimate changed (a new data cut replaced the old
    one, or a correction): each with its estimate then and now. Nothing is claimed against a
    digest stored before the estimates were kept. ``renamed``: as for :func:`_bias_changes`."""
    old, new = before.get("inputs"), now.get("inputs")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    was = _old_label(renamed)
    return [{"label": label, "old": old[was(label)]["text"], "new": view["text"],
             "old_pmid": old[was(label)].get("pmid"), "pmid": view.get("pmid"),
             # An estimate entered before the one it replaces: the later one was withdrawn
             # (or unverified), and the trial went back to an earlier one. Said, so that
             # nobody reads it as a new data cut.
             "back": _entered_before(view.get("estimate_id"),
                                     old[was(label)].get("estimate_id"))}
            for label, view in new.items()
            if was(label) in old
            and old[was(label)].get("estimate_id") != view.get("estimate_id")]


def _entered_before(now: Any, then: Any) -> bool:
    """Whether estimate ``now`` was entered before ``then`` (ids grow with entry: a new data
    cut or a correction always has a larger one); False when either is unknown."""
    return isinstance(now, int) and isinstance(then, int) and now < then


def _certainty_text(row: PooledResult) -> str | None:
    """The suggested GRADE certainty in a few words ("moderate", "low (provisional)"); None
    for a snapshot stored before it existed."""
    view = (row.result if isinstance(row.result, dict) else {}).get("certainty")
    if not isinstance(view, dict) or not view.get("level"):
        return None
    return str(view["level"]) + (" (provisional)" if view.get("provisional") else "")


def _studies(row: PooledResult) -> list[dict[str, Any]]:
    """Each pooled study of ``row`` with its label and its weight in percent.

    The weight is read from the stored inputs (``weight``) or the result's ``weights`` list
    when the pooling code kept it; otherwise it is recomputed as the inverse-variance weight
    ``1 / (se² + τ²)`` of the frozen inputs, which is what both estimators use.
    """
    inputs = [dict(i) for i in (row.inputs or []) if isinstance(i, dict)]
    labels = [str(_first(i, "trial", "trial_name", "study", "label", "name", default=f"study {n}"))
              for n, i in enumerate(inputs, start=1)]
    weights: list[float | None] = [_as_float(_first(i, "weight", "weight_pct")) for i in inputs]
    result_weights = (row.result or {}).get("weights") if isinstance(row.result, dict) else None
    if any(w is None for w in weights) and isinstance(result_weights, list) \
            and len(result_weights) == len(inputs):
        weights = [_as_float(w) for w in result_weights]
    if any(w is None for w in weights):
        tau2 = row.tau2 or 0.0
        raw = []
        for i in inputs:
            se = _as_float(_first(i, "se", "sei", "se_log_hr"))
            raw.append(1.0 / (se * se + tau2) if se and se > 0 else None)
        weights = raw
    if all(w is not None for w in weights) and weights:
        total = sum(w for w in weights if w is not None)
        # Stored weights may be fractions or percentages; normalising makes them percentages.
        weights = [100.0 * w / total if total > 0 else None for w in weights]  # type: ignore[operator]
    return [{"label": label, "weight": None if w is None else round(w, 1), "pmid": _pmid(i)}
            for label, w, i in zip(labels, weights, inputs, strict=True)]


def _first(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if d.get(key) is not None:
            return d[key]
    return default


def _as_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ----------------------------------------------------------------------------- parts
def _record_view(r: Record) -> dict[str, Any]:
    return {
        "pmid": r.pmid,
        "title": " ".join((r.title or "").split()),
        "journal": r.journal_abbrev or r.journal or "",
        "year": r.year,
        # "Blood. 2012;119(9):2000-5" (store.citation, without the closing full stop: the
        # digest goes on with "· PMID …"). Digests frozen before it have only journal and year.
        "where": citation_line(r.journal_abbrev or r.journal, r.year, r.volume, r.issue,
                               r.pages, r.elocation).removesuffix("."),
        "score": None if r.score is None else round(float(r.score), 3),
        "publication_types": list(r.publication_types or []),
        "decision": r.decision,
        "url": PUBMED_URL.format(pmid=r.pmid),
    }


def _alert_view(a: Alert) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "pmid": a.pmid, "related_pmid": a.related_pmid,
            "message": " ".join(a.message.split()), "in_analysis": a.in_analysis,
            "url": PUBMED_URL.format(pmid=a.pmid)}


def stopping_change(before: dict[str, Any] | None, now: dict[str, Any] | None) -> str | None:
    """One sentence when the stopping test's verdict (``may_stop``) flipped since the previous
    digest: the news a review team waits for, or the news that new records reopened it."""
    if not before or not now or "may_stop" not in before or "may_stop" not in now:
        return None  # digests from before the verdict was stored cannot be compared
    if now["may_stop"] and not before["may_stop"]:
        return (f"Screening may stop: {now['stopping_test']}. This rests on the assumptions "
                "below; it says nothing about studies the search missed.")
    if before["may_stop"] and not now["may_stop"]:
        return f"Screening can no longer stop: {now['stopping_test']}."
    return None


def _screening_health(session: Session, provider: HealthProvider | None, *,
                      dual: bool, target_recall: float,
                      ) -> tuple[dict[str, Any] | None, str | None]:
    if provider is None:
        return None, "screening health was not computed for this digest"
    try:
        health = provider(session, dual=dual, target_recall=target_recall)
    except MmlrError as exc:
        log.warning("digest: screening health unavailable: %s", exc.one_line())
        return None, f"screening health could not be computed: {exc.one_line()}"
    except Exception:  # an optional part must not stop the digest; the log keeps the cause
        log.exception("digest: screening health failed")
        return None, "screening health could not be computed (details in the log)"
    # A plain-JSON copy: the summary is stored and must not hold numpy scalars or dates.
    return json.loads(json.dumps(health, default=str)), None


def _forest_images(
    current: dict[str, PooledResult], analyses: list[dict[str, Any]],
) -> dict[str, str]:
    """PNG forest plot (as a data URI) of each new or updated analysis, by analysis key."""
    wanted = [a for a in analyses if a["status"] in ("new", "updated") and a["new"]["k"]]
    if not wanted:
        return {}
    try:
        from reports.forest import render_forest
    except ImportError:
        for a in wanted:
            a["forest_note"] = "forest plots are not available in this installation"
        return {}
    images: dict[str, str] = {}
    for a in wanted:
        try:
            png = render_forest(current[a["key"]], fmt="png")
        except MmlrError as exc:
            a["forest_note"] = f"forest plot unavailable: {exc.one_line()}"
            log.warning("digest: no forest plot for %s: %s", a["key"], exc.one_line())
            continue
        except Exception:  # an optional part must not stop the digest; the log keeps the cause
            log.exception("digest: forest plot of %s failed", a["key"])
            a["forest_note"] = "forest plot could not be rendered (details in the log)"
            continue
        images[a["key"]] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return images


def _monitoring_images(
    current: dict[str, PooledResult], analyses: list[dict[str, Any]],
) -> dict[str, str]:
    """PNG monitoring graph (as a data URI) of each analysis whose monitoring status changed.

    Only those: a graph is ~45 KB and the first digest of the seed evidence would otherwise
    carry one per analysis; the estimates page has them all. Like the forest plots, but quietly
    optional: a failure is logged and the analysis keeps its status sentence (the graph adds
    nothing the sentence does not say in words).
    """
    wanted = [a for a in analyses if a.get("monitoring_change")
              and a["new"] and a["new"].get("monitoring")]
    if not wanted:
        return {}
    try:
        from reports.monitoring_plot import render_monitoring
    except ImportError:
        return {}
    images: dict[str, str] = {}
    for a in wanted:
        row = current[a["key"]]
        try:
            png = render_monitoring((row.result or {}).get("monitoring"), fmt="png",
                                    title=f"{a['label']}: sequential monitoring")
        except MmlrError as exc:
            log.warning("digest: no monitoring graph for %s: %s", a["key"], exc.one_line())
            continue
        except Exception:  # an optional part must not stop the digest; the log keeps the cause
            log.exception("digest: monitoring graph of %s failed", a["key"])
            continue
        images[a["key"]] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return images


def _subject(digest: Digest, summary: dict[str, Any]) -> str:
    parts = []
    if summary["alerts"]:
        parts.append(plural(len(summary["alerts"]), "alert"))
    changed = sum(a["status"] != "unchanged" for a in summary["analyses"])
    if changed:
        parts.append(plural(changed, "analysis changed", "analyses changed"))
    monitoring = sum(bool(a.get("monitoring_change")) for a in summary["analyses"])
    if monitoring:
        parts.append(plural(monitoring, "monitoring status changed",
                             "monitoring statuses changed"))
    # A funnel change is a sensitivity signal, not a conclusion: it stays in the body, and an
    # analysis whose estimate changed is counted above already. Only one whose estimate did
    # not (new small_study.py code) is named, or the subject would say "no changes".
    funnel_only = len(_unchanged_but(summary, "small_study_change"))
    if funnel_only:
        parts.append(plural(funnel_only, "funnel assessment changed",
                             "funnel assessments changed"))
    # Likewise a suggested certainty that moved while the estimate did not (new rules, a
    # monitoring plan) …
    certainty_only = len(_unchanged_but(summary, "certainty_change"))
    if certainty_only:
        parts.append(plural(certainty_only, "suggested certainty changed",
                             "suggested certainties changed"))
    # … and an absolute effect moved by a new assumed control risk alone.
    absolute_only = len(_unchanged_but(summary, "absolute_change"))
    if absolute_only:
        parts.append(plural(absolute_only, "absolute effect changed",
                             "absolute effects changed"))
    # Networks move with the pooled analyses' inputs; named only when no analysis changed
    # (an [[arms]] correction, say), so the subject never says "no changes" over them.
    if summary.get("network_changes") and not changed:
        parts.append(plural(len(summary["network_changes"]), "network changed",
                             "networks changed"))
    if summary.get("new_trial_reports_total"):
        parts.append(plural(summary["new_trial_reports_total"],
                             "possible report of a trial in the review",
                             "possible reports of trials in the review"))
    if summary["new_flagged_total"]:
        parts.append(plural(summary["new_flagged_total"], "new flagged record"))
    # A withdrawn inclusion corrects what subscribers were told: named, not only counted.
    withdrawn = len(summary["decisions"].get("no_longer_included") or [])
    if withdrawn:
        parts.append(plural(withdrawn, "inclusion withdrawn", "inclusions withdrawn"))
    if summary["decisions"]["total"]:
        parts.append(plural(summary["decisions"]["total"], "decision"))
    what = ", ".join(parts) if parts else "no changes"
    return f"mmlr digest #{digest.id} ({digest.period_end:%Y-%m-%d}): {what}"


def _unchanged_but(summary: dict[str, Any], change: str) -> list[dict[str, Any]]:
    """The analyses whose estimate did not change but whose ``change`` (a monitoring, funnel
    or absolute-effect change) did: said apart, as the estimate's changes say them already."""
    return [a for a in summary["analyses"] if a["status"] == "unchanged" and a.get(change)]


def _content_hash(summary: dict[str, Any]) -> str:
    stable = {k: v for k, v in summary.items() if k not in _VOLATILE_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- rendering
#: Said under the analyses whenever a CI starts or stops crossing 1: a living meta-analysis
#: re-tests at every update, so such a change is a reason to look, not a finding (repeated
#: significance testing; Simmonds et al., J Clin Epidemiol 2017;91:38-46).
CROSSING_CAVEAT = (
    "A confidence interval that starts or stops crossing 1 after an update is not a new test "
    "result: a living review re-pools at every update, and unadjusted repeated testing finds "
    "spurious 'significance' more often than 5% of the time. Read it as a change to review "
    "(the trial that moved it, its weight, the prediction interval), not as a conclusion.")
#: Said where an analysis has no absolute effect because nobody entered its control risk: a
#: panel member must not read the missing line as "no difference in absolute terms".
NO_ABSOLUTE_EFFECT = (
    "not available: no assumed control risk entered yet (a curator enters one on the "
    "estimates page).")
#: What "(provisional)" beside a suggested certainty means (``reports.certainty``), said once
#: under the analyses that carry it.
PROVISIONAL_NOTE = (
    "A provisional suggested certainty may still change: most of the pooled weight has no "
    "agreed risk-of-bias assessment yet, or there is no information size to judge imprecision "
    "against.")
#: Said beside the network estimates when the pairwise analyses use the Hartung–Knapp CI: the
#: network's Wald CI of the same comparison can be far narrower with few trials (two
#: lenalidomide OS trials: 0.27–1.53 pairwise, 0.52–0.80 in the network), and a reader must
#: not take "the CI now excludes 1" there for a change of the primary result.
NETWORK_CI_NOTE = (
    "The network 95% CIs are Wald intervals: with few trials they can be much narrower than "
    "the Hartung–Knapp CIs of the pairwise analyses, which remain the primary result.")
#: How an alert on a record in use is marked (``Alert.in_analysis``: a trial report's PMID,
#: or a record a curator included — not necessarily one already pooled).
IN_USE_LABEL = "in use: a trial report or an included record"


@lru_cache(maxsize=2)
def _environment(html: bool) -> jinja2.Environment:
    # HTML: every title, journal and message comes from PubMed or a user, so autoescape is
    # on. The text/plain part is not HTML: escaping would only print "&lt;" to the reader.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=html,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # A PubMed title's unclosed bidirectional override reversed the rest of its line in
        # the mail (store.text.closed_bidi); every value printed has its levels closed.
        finalize=closed_bidi_value,
    )
    env.filters["pct"] = lambda w: "—" if w is None else f"{rounded(w, 1)}%"
    env.filters["plural"] = lambda n, one, many=None: plural(int(n), one, many)
    env.filters["where"] = record_where
    # the one-trial rule, from the one place that has it (reports.presentation)
    env.globals["one_trial"] = is_one_trial
    env.globals["pubmed_url"] = lambda pmid: PUBMED_URL.format(pmid=pmid)
    return env


def record_where(view: dict[str, Any]) -> str:
    """Where a listed record was published: its citation ("Blood. 2012;119(9):2000-5"), or
    in a digest frozen before citations were kept, "journal year" as it was then shown."""
    if view.get("where"):
        return str(view["where"])
    return " ".join(str(x) for x in (view.get("journal"), view.get("year")) if x)


def render_digest(
    digest: Digest, *, images: dict[str, str] | None = None,
    monitoring_images: dict[str, str] | None = None, base_url: str = "",
) -> tuple[str, str]:
    """(HTML, plain text) of a digest from its stored summary.

    ``images`` and ``monitoring_images`` are the forest plots and monitoring graphs (data
    URIs by analysis key) of the HTML part; the text part depends on the summary only.
    """
    summary = digest.summary
    context = {
        "digest": digest,
        "s": summary,
        "images": images or {},
        "monitoring_images": monitoring_images or {},
        "base_url": base_url.rstrip("/"),
        "changed": [a for a in summary["analyses"] if a["status"] != "unchanged"],
        "unchanged": [a for a in summary["analyses"] if a["status"] == "unchanged"],
        # .get: entries of digests stored before monitoring existed have no such key
        "monitoring_only": _unchanged_but(summary, "monitoring_change"),
        "small_study_only": _unchanged_but(summary, "small_study_change"),
        "certainty_only": _unchanged_but(summary, "certainty_change"),
        "absolute_only": _unchanged_but(summary, "absolute_change"),
        "more_flagged": summary["new_flagged_total"] - len(summary["new_flagged"]),
        "trial_reports": summary.get("new_trial_reports", []),
        "more_trial_reports": (summary.get("new_trial_reports_total", 0)
                               - len(summary.get("new_trial_reports", []))),
        "period_start": _fmt_time(summary.get("period_start")),
        "period_end": _fmt_time(summary.get("period_end")),
        "crossing_caveat": CROSSING_CAVEAT,
        "in_use_label": IN_USE_LABEL,
        "no_absolute": NO_ABSOLUTE_EFFECT,
        "network_ci_note": (NETWORK_CI_NOTE if any(
            str((a.get("new") or {}).get("ci_method") or "").startswith("hksj")
            for a in summary["analyses"]) else ""),
        "provisional_note": PROVISIONAL_NOTE,
        "provisional": any(
            str((a.get("new") or {}).get("certainty_text") or "").endswith("(provisional)")
            for a in summary["analyses"] if a["status"] != "unchanged"),
    }
    html = _environment(True).get_template("digest.html.j2").render(context)
    text = _environment(False).get_template("digest.txt.j2").render(context)
    return html, text


def _fmt_time(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------- delivery
def deliver_digest(
    ctx: AppContext, digest: Digest, *, retry_delays: Sequence[float] | None = None,
    resend_unknown: bool = False,
) -> list[str]:
    """Deliver ``digest`` (outbox folder, or SMTP when ``MMLR_SMTP_URL`` is set).

    Returns one human line per delivery. A digest is never delivered twice to the same
    recipient (nor written twice to the outbox): those get an "already …" line instead.
    Raises DeliveryError after recording a failed Delivery row when anything failed; the
    digest stays and a later call retries the failed recipients only.

    A copy whose outcome is unknown (the message was sent, then the server did not answer:
    it may have arrived) is recorded ``unknown`` and is not resent by a later call, unless
    ``resend_unknown`` (``mmlr digest --send --resend-unknown``: the recipient said it did
    not arrive).

    SMTP recipients are the ``MMLR_DIGEST_TO`` addresses and the active subscribers, each
    once (``store.subscribers.digest_recipients``). A subscriber's copy carries a personal
    unsubscribe link and the RFC 8058 one-click headers, added to a copy at send time: the
    stored digest stays the same for everyone, and the outbox copy has no personal link.

    Runs under the database lock "digest-delivery": "never twice" rests on the Delivery rows,
    and two deliveries at once (two workers after one built the digest and the other got it
    back unchanged, or the worker and `mmlr digest --send`) would each find no "sent" row for
    a recipient still in flight and both send. The second gets ``LockedError`` instead.
    """
    from store.subscribers import digest_recipients, unsubscribe_url

    settings = ctx.settings
    with job_lock(ctx.engine, "digest-delivery", ttl=DELIVERY_LOCK_TTL) as lease:
        if settings.smtp_url is None:
            return _deliver_outbox(ctx, digest)
        target = parse_smtp_url(settings.smtp_url.get_secret_value())
        with ctx.sessions() as session:
            found = digest_recipients(session, settings.digest_recipients, settings.secret)
        if not found:
            raise ConfigError(
                "no digest recipients: nobody is subscribed and MMLR_DIGEST_TO is empty while "
                "MMLR_SMTP_URL is set",
                hint="add subscribers with `mmlr subscribers add EMAIL` or on "
                "/admin/subscribers, or set MMLR_DIGEST_TO to a comma-separated list of e-mail "
                "addresses",
            )
        recipients = [(r.address, None if r.token is None
                       else unsubscribe_url(settings.base_url, r.token)) for r in found]
        return _deliver_smtp(ctx, digest, target, recipients, retry_delays, lease,
                             resend_unknown=resend_unknown)


def confirm_received(ctx: AppContext, address: str, *, actor: str = "cli") -> list[str]:
    """Record that ``address`` says the digests it may have received (their delivery
    ``unknown``: the server did not answer after the message went out) did arrive: each such
    delivery becomes ``sent``, so `mmlr status` stops asking and ``--resend-unknown`` no
    longer sends it. The row keeps what happened in its error text; the audit trail says who
    confirmed it. Under the delivery lock: a delivery running now decides on these rows."""
    key = check_email(address).lower()  # a stored recipient is one that passed this rule
    lines: list[str] = []
    with job_lock(ctx.engine, "digest-delivery", ttl=DELIVERY_LOCK_TTL), \
            ctx.sessions() as session:
        rows = session.exec(select(Delivery).where(
            Delivery.channel == "smtp", func.lower(col(Delivery.recipient)) == key)
            .order_by(col(Delivery.id))).all()
        latest: dict[int, Delivery] = {}
        for row in rows:  # as _existing decides: the latest row, but one sent copy settles it
            if row.digest_id not in latest or latest[row.digest_id].status != "sent":
                latest[row.digest_id] = row
        unsure = [row for _, row in sorted(latest.items()) if row.status == "unknown"]
        if not unsure:
            found = ", ".join(f"#{d} {r.status}" for d, r in sorted(latest.items()))
            raise StateError(
                f"no digest's delivery to {key} is unknown"
                + (f" (its deliveries: {found})" if found else " (no digest was sent to it)"),
                hint="only a delivery the server did not answer after the message went out "
                     "can be confirmed; `mmlr status` names them")
        for row in unsure:
            was = " ".join((row.error or "").split())
            row.status = "sent"
            row.error = (f"{was}; " if was else "") + "confirmed received by the recipient"
            row.sent_at = row.sent_at or row.created_at
            session.add(row)
            audit(session, "delivery.confirmed", actor=actor, object_type="digest",
                  object_id=row.digest_id, recipient=key, delivery_id=row.id)
            lines.append(f"digest #{row.digest_id} to {key}: recorded as received (it was "
                         "unknown: the server did not answer after the message was sent)")
        session.commit()
    log.info("digest deliveries confirmed received: %d", len(lines))
    return lines


def _existing(session: Session, digest: Digest, channel: str) -> dict[str | None, Delivery]:
    """The digest's Delivery rows by lower-case recipient (None: the outbox). Keyed
    lower-case because recipients are compared that way: a row written for "Ana@X.org"
    before addresses were normalised still counts for "ana@x.org"; a sent row wins."""
    rows = session.exec(select(Delivery).where(Delivery.digest_id == digest.id,
                                               Delivery.channel == channel)
                        .order_by(col(Delivery.id))).all()
    out: dict[str | None, Delivery] = {}
    for r in rows:
        key = None if r.recipient is None else r.recipient.lower()
        if key not in out or out[key].status != "sent":
            out[key] = r
    return out


def _deliver_outbox(ctx: AppContext, digest: Digest) -> list[str]:
    from reports.mail import build_message, inline_images

    settings = ctx.settings
    with ctx.sessions() as session:
        done = _existing(session, digest, "outbox").get(None)
        if done is not None and done.status == "sent":
            return [f"digest #{digest.id} already in the outbox: {done.path} (not written again)"]
        row = done or Delivery(digest_id=int(digest.id or 0), channel="outbox")
        row.attempts += 1
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        html_path = settings.outbox_dir / f"digest-{digest.id}-{stamp}.html"
        eml_path = html_path.with_suffix(".eml")
        try:
            settings.outbox_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(html_path, digest.html.encode("utf-8"))
            cid_html, images = inline_images(digest.html)
            msg = build_message(subject=digest.subject, text=digest.text, html=cid_html,
                                sender=settings.mail_from, recipients=settings.digest_recipients,
                                images=images)
            _write_atomic(eml_path, msg.as_bytes())
        except OSError as exc:
            row.status = "failed"
            row.error = f"cannot write to {settings.outbox_dir}: {exc.strerror}"
            session.add(row)
            session.commit()
            raise DeliveryError(row.error, hint="check MMLR_DATA_DIR is writable") from None
        row.status, row.error, row.path = "sent", None, str(html_path)
        row.message_id, row.sent_at = str(msg["Message-ID"]), utcnow()
        session.add(row)
        audit(session, "digest.delivered", object_type="digest", object_id=digest.id,
              channel="outbox", path=str(html_path))
        session.commit()
    log.info("digest #%s written to %s", digest.id, html_path)
    return [f"digest #{digest.id} written to {html_path} (e-mail copy: {eml_path.name})"]


def _deliver_smtp(
    ctx: AppContext, digest: Digest, target: Any, recipients: list[tuple[str, str | None]],
    retry_delays: Sequence[float] | None, lease: JobLease, *, resend_unknown: bool = False,
) -> list[str]:
    """Send to each (address, unsubscribe URL or None) in turn, one message each."""
    from reports.mail import DEFAULT_RETRY_DELAYS, inline_images, send_message

    settings = ctx.settings
    lines: list[str] = []
    failures: list[str] = []
    skipped: list[str] = []  # unsubscribed during the delivery: no copy, no row
    unknown = 0
    cid_html, images = inline_images(digest.html)
    server_error: DeliveryError | None = None
    with ctx.sessions() as session:
        existing = _existing(session, digest, "smtp")
        for rcpt, unsubscribe in recipients:
            row = existing.get(rcpt)
            if row is not None and row.status == "sent":
                lines.append(f"digest #{digest.id} already sent to {rcpt} "
                             f"on {row.sent_at:%Y-%m-%d %H:%M} UTC (not resent)")
                continue
            if row is not None and row.status == "unknown" and not resend_unknown:
                # It may have arrived: a second copy is worse than asking (RFC 5321 §6.1).
                lines.append(f"digest #{digest.id} may already have reached {rcpt} (the server "
                             "did not answer after the message was sent, or its answer was not "
                             "recorded): not resent; "
                             "`mmlr digest --send --resend-unknown` sends it again, "
                             f"`mmlr digest --confirm-received {rcpt}` records it arrived")
                continue
            if unsubscribe is not None and not _still_subscribed(session, rcpt):
                # Unsubscribed since the list was read (a long batch, a slow server): the
                # one-click link was clicked, and this copy went out all the same.
                skipped.append(f"digest #{digest.id} not sent to {rcpt}: unsubscribed while "
                               "the digest was being sent")
                continue
            row = row or Delivery(digest_id=int(digest.id or 0), channel="smtp", recipient=rcpt)
            if server_error is not None:
                # The server itself failed (down, login refused): do not hammer it once per
                # recipient; the others are recorded as failed with the same reason, as not
                # tried (their attempts stay as they were).
                row.status, row.error = "failed", f"not tried: {server_error.one_line()}"
                failures.append(f"{rcpt}: not tried")
                session.add(row)
                _record(session, digest, rcpt, recipients, sent=False)
                continue
            try:
                msg = _recipient_message(digest, settings.mail_from, rcpt, cid_html, images,
                                         unsubscribe)
            except (ValidationError, ValueError) as exc:
                # One address no message can be built for (a subscriber stored before the
                # address rule refused it) fails alone: it ended the whole delivery, and
                # sorted first, nobody ever got a digest.
                why = exc.message if isinstance(exc, ValidationError) else \
                    f"the e-mail package refuses it ({' '.join(str(exc).split())})"
                row.status = "failed"
                row.error = (f"no message built: {why}; remove the address (`mmlr subscribers "
                             "remove`, /admin/subscribers) and subscribe the right one")
                failures.append(f"{rcpt}: {row.error}")
                session.add(row)
                _record(session, digest, rcpt, recipients, sent=False)
                continue
            # Recorded before the message goes out: if what happened cannot be recorded
            # after (the process killed while the server answers, the database held by
            # another writer past its busy timeout), the row says it may have arrived, and
            # the next --send does not send a second copy. It sent one, finding no row.
            row.status, row.error = "unknown", (
                f"being sent since {utcnow():%Y-%m-%d %H:%M} UTC; its outcome was never "
                "recorded (the delivery stopped or could not write to the database): it may "
                "have arrived")
            session.add(row)
            _record(session, digest, rcpt, recipients, sent=False)
            try:
                result = send_message(target, msg, [rcpt], retry_delays=DEFAULT_RETRY_DELAYS
                                      if retry_delays is None else retry_delays)
            except DeliveryError as exc:
                # send_message raises only for the server or the connection (a recipient's
                # own refusal or deferral comes back in result.refused).
                server_error = exc
                row.attempts += exc.attempts  # as many as its error says were made
                row.status, row.error = "failed", exc.one_line()
                failures.append(f"{rcpt}: {exc.one_line()}")
            else:
                row.attempts += result.attempts
                row.message_id = result.message_id
                if rcpt in result.unknown:
                    row.status, row.error = "unknown", result.unknown[rcpt]
                    unknown += 1
                    failures.append(f"{rcpt}: {result.unknown[rcpt]}")
                elif rcpt in result.refused:
                    # A bare reply ("550 …") is a refused mailbox; mail words the rest
                    # ("deferred after 3 attempts: 450 …", "message rejected (554 …)").
                    reason = result.refused[rcpt]
                    bare = reason[:1].isdigit()
                    row.status = "failed"
                    row.error = f"recipient refused: {reason}" if bare else reason
                    failures.append(f"{rcpt}: refused ({reason})" if bare else f"{rcpt}: {reason}")
                else:
                    row.status, row.error, row.sent_at = "sent", None, utcnow()
                    lines.append(f"digest #{digest.id} sent to {rcpt} ({result.message_id})")
            session.add(row)
            # Commit per recipient: a crash later must not lose the record of what went out.
            _record(session, digest, rcpt, recipients, sent=True)
            lease.renew()  # a long list of recipients outlasts no lease
        counts: dict[str, Any] = {"sent": len(lines), "failed": len(failures)}
        if skipped:
            counts["unsubscribed"] = len(skipped)
        audit(session, "digest.delivered", object_type="digest", object_id=digest.id,
              channel="smtp", **counts)
        session.commit()
    lines += skipped
    for line in lines:
        log.info("%s", line)
    if failures:
        total = len(recipients) - len(skipped)
        sent = total - len(failures)
        hint = "the digest is kept; run `mmlr digest --send` again to retry the failed ones"
        if unknown:
            hint += (" (not those it may have reached: ask them; "
                     "`mmlr digest --send --resend-unknown` sends it to them again, "
                     "`mmlr digest --confirm-received EMAIL` records that it arrived)")
        raise DeliveryError(
            f"digest #{digest.id} reached {sent} of {total} recipients"
            f"{f' (perhaps {sent + unknown})' if unknown else ''}; " + "; ".join(failures),
            hint=hint,
        )
    return lines


def _still_subscribed(session: Session, address: str) -> bool:
    """Whether the subscriber ``address`` is active now (read afresh: the column, not a row
    this session may hold from before)."""
    from store.models import Subscriber

    return bool(session.exec(select(Subscriber.active).where(
        Subscriber.email == address)).first())


def _record(session: Session, digest: Digest, rcpt: str,
            recipients: list[tuple[str, str | None]], *, sent: bool) -> None:
    """Commit ``rcpt``'s Delivery row; a database that cannot be written (locked by another
    process past the busy timeout, gone) ends the delivery with a DeliveryError saying what
    went out. ``sent``: the SMTP exchange for ``rcpt`` has taken place, and its row, written
    ``unknown`` before it, stays so."""
    from store.engine import database_locked, unreachable_reason

    try:
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        why = ("another process holds the database locked" if database_locked(exc)
               else "the database cannot be written")
        why = f"{why}: {unreachable_reason(exc)}"
        rest = [r for r, _ in recipients]
        after = len(rest) - rest.index(rcpt) - 1
        others = f"; the {after} recipients after it were not tried" if after else ""
        if not sent:
            raise DeliveryError(
                f"digest #{digest.id}: its delivery to {rcpt} could not be recorded before "
                f"sending ({why}), so it was not sent{others}",
                hint="run `mmlr digest --send` again once the database is free") from None
        raise DeliveryError(
            f"digest #{digest.id} went to the SMTP server for {rcpt}, but what happened could "
            f"not be recorded ({why}): its delivery stays `unknown` (it may have arrived) and "
            f"is not resent by itself{others}",
            hint=f"once the database is free: ask {rcpt}; `mmlr digest --confirm-received "
                 f"{rcpt}` records that it arrived, `mmlr digest --send --resend-unknown` "
                 "sends it again; `mmlr digest --send` sends it to the recipients not tried"
        ) from None


def _recipient_message(
    digest: Digest, sender: str, rcpt: str, cid_html: str, images: Sequence[Any],
    unsubscribe: str | None,
) -> EmailMessage:
    """The copy of ``digest`` for ``rcpt`` (with their unsubscribe link, if any). Raises
    ValidationError for an address mmlr's rule refuses, ValueError for one the e-mail
    package cannot put in a header."""
    from reports.mail import build_message, unsubscribe_headers, with_unsubscribe_footer

    check_email(rcpt)  # the rule may be stricter than when the address was stored
    html, text, headers = cid_html, digest.text, None
    if unsubscribe is not None:
        html, text = with_unsubscribe_footer(cid_html, digest.text, unsubscribe)
        headers = unsubscribe_headers(unsubscribe)
    return build_message(subject=digest.subject, text=text, html=html, sender=sender,
                         recipients=[rcpt], images=images, headers=headers)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
