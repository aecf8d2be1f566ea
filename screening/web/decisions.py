"""Screening decisions: one append-only Decision row per click, with its provenance.

Provenance is what the curator saw: the model version that produced the score on the page,
that score, the rank in the queue and whether the record was in the random audit sample. The
page sends back the version, score and rank it showed (a retrain may land between showing and
saving: the record's current score is then another model's, which the curator never saw); a
request without them (an older page, an API client that does not send them) gets the
record's current version and score. The version must exist and the score must be a number in
[0, 1]; the audit mark is always read from the record.

Single screening (``screeners == 1``): the decision settles the record, the latest counts;
its row is of kind ``decision``, not a vote: whoever decides again has seen the decision they
change, so the screeners' agreement (blind vote pairs) never counts it.
Dual screening (``screeners == 2``; ``store.settings.is_dual_screening`` tells them apart): the
row is a vote, and the record is settled only when two people agree (``screening.agreement``);
a settled record, or a conflict the voter is not part of, refuses further votes (a resolution
changes it: ``screening.web.conflicts``).

The same decision sent again by the same person while it still counts (a client's retry
after a timeout, a form sent twice) is not stored twice: ``store.repeats`` has the rule, and
the answer says it was there already.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from screening.agreement import (
    DECISION,
    VOTE,
    Vote,
    decision_after_vote,
    latest_votes,
    record_state,
)
from screening.votes import votes_on
from store.audit import audit
from store.errors import StateError, ValidationError
from store.ids import id_of
from store.models import Decision, ModelVersion, Record, User
from store.numbers import as_float, parse_decimal
from store.record_lock import locked_record
from store.repeats import Recorded
from store.settings import is_dual_screening
from store.vote_rule import vote_bar

log = logging.getLogger(__name__)

DECISIONS: tuple[str, ...] = ("include", "exclude", "maybe")
MAX_REASON = 2000


def _as_sent(value: Any) -> str:
    """A value as a message shows it: text quoted, a JSON value as JSON wrote it (``true``,
    not Python's ``True``)."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__


def parse_pmid(value: Any) -> int:
    pmid = id_of(value)
    if pmid is None:
        raise ValidationError(f"{_as_sent(value)} is not a PMID",
                              hint="a PMID is a positive whole number")
    return pmid


def parse_rank(value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    rank = id_of(value)
    if rank is None:
        raise ValidationError(f"rank_shown {_as_sent(value)} is not a positive whole number",
                              hint="the record's place in the queue, from 1")
    return rank


@dataclass(frozen=True)
class Shown:
    """The model version and score the page showed when the decision was made."""

    model_version_id: int
    score: float


def parse_shown(session: Session, version: Any, score: Any) -> Shown | None:
    """``model_version_shown`` and ``score_shown`` as a form or a JSON body sends them; None
    when neither is given (the record's current ones are stored). Both or neither: a score
    without the model that produced it is no provenance."""
    def absent(value: Any) -> bool:
        return value is None or (isinstance(value, str) and value.strip() == "")

    if absent(version) and absent(score):
        return None
    if absent(version):
        raise ValidationError("score_shown was sent without model_version_shown",
                              hint="send both, as the page showed them, or neither")
    if absent(score):
        raise ValidationError("model_version_shown was sent without score_shown",
                              hint="send both, as the page showed them, or neither")
    version_id = id_of(version)
    if version_id is None:
        raise ValidationError(f"model_version_shown {version!r} is not a positive whole number",
                              hint="the id of the model version whose score was shown")
    if session.get(ModelVersion, version_id) is None:
        raise ValidationError(f"model_version_shown {version_id} is not a model version",
                              hint="the id of the model version whose score was shown")
    try:
        if isinstance(score, bool):
            raise ValueError(f"{score!r} is not a number")
        value = (as_float(score) if isinstance(score, int | float)
                 else parse_decimal(str(score)))
    except ValueError as exc:
        raise ValidationError(f"score_shown: {exc}",
                              hint="the score the page showed, from 0 to 1") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValidationError(f"score_shown {value!r} is not a number from 0 to 1",
                              hint="the score the page showed, from 0 to 1")
    return Shown(version_id, value)


def _provenance(record: Record, shown: Shown | None) -> tuple[int | None, float | None]:
    if shown is None:
        return record.score_model_version_id, record.score
    return shown.model_version_id, shown.score


class RecordStateError(StateError):
    """The request does not fit the record's screening state (HTTP 409): a vote on a record
    already resolved, a resolution of a record that two people have not screened yet, …"""


def check_decision(decision: str) -> str:
    if not decision:
        raise ValidationError("no decision was chosen",
                              hint=f"choose one of {', '.join(DECISIONS)}")
    if decision not in DECISIONS:
        raise ValidationError(f"decision {decision!r} is not valid",
                              hint=f"choose one of {', '.join(DECISIONS)}")
    return decision


def clean_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"the reason is {len(reason)} characters long",
                              hint=f"keep it under {MAX_REASON} characters")
    return reason


def repeated_decision(session: Session, *, user: User, pmid: int, decision: str,
                      reason: str | None, kind: str, own_latest: bool) -> Decision | None:
    """``user``'s stored decision of ``kind`` that this one would repeat (same decision, same
    reason), or None. ``own_latest``: compare with the user's latest row of ``kind`` (a
    dual-screening vote: the screener's latest vote counts, whatever the other one did);
    otherwise with the newest row on the record, whoever made it (the latest decision counts,
    so one decided again after a colleague's is a change, not a repeat). The caller holds the
    record's lock, so a retry arriving while the first attempt commits sees it."""
    if user.id is None:
        return None
    query = select(Decision).where(Decision.pmid == pmid)
    if own_latest:
        query = query.where(Decision.user_id == user.id, Decision.kind == kind)
    latest = session.exec(query.order_by(col(Decision.id).desc())).first()
    if (latest is not None and latest.user_id == user.id and latest.kind == kind
            and latest.decision == decision and latest.reason == reason):
        return latest
    return None


def record_decision(session: Session, *, user: User, pmid: int, decision: str,
                    reason: str | None = None, rank_shown: int | None = None,
                    shown: Shown | None = None, screeners: int = 1) -> Recorded[Decision]:
    """Append a decision (a vote under dual screening) and update the record's current
    decision; the caller commits. ``shown``: the model version and score the page showed
    (None: the record's current ones). A repeat of the decision that counts stores nothing
    and returns it (``created`` false), with its provenance as first recorded."""
    check_decision(decision)
    reason = clean_reason(reason)
    if is_dual_screening(screeners):
        return _record_vote(session, user=user, pmid=pmid, decision=decision, reason=reason,
                            rank_shown=rank_shown, shown=shown)
    # Locked: a retry that arrives while the first attempt is being saved waits for it and
    # then finds it, instead of both being stored.
    record = locked_record(session, pmid)
    same = repeated_decision(session, user=user, pmid=pmid, decision=decision, reason=reason,
                             kind=DECISION, own_latest=False)
    if same is not None and record.decision == decision:
        log.info("PMID %s: %s's decision %s repeated; nothing stored", pmid, user.id, decision)
        return Recorded(same, created=False)
    version_shown, score_shown = _provenance(record, shown)
    row = Decision(
        pmid=pmid, user_id=user.id, decision=decision, reason=reason, kind=DECISION,
        model_version_id=version_shown, score_shown=score_shown,
        rank_shown=rank_shown, audit_sample=record.audit_sample,
    )
    session.add(row)
    record.decision = decision
    session.add(record)
    session.flush()
    audit(session, "decision.add", actor=user.email, object_type="record", object_id=pmid,
          decision=decision, decision_id=row.id, model_version_id=row.model_version_id,
          score_shown=row.score_shown, rank_shown=rank_shown)
    return Recorded(row, created=True)


def _record_vote(session: Session, *, user: User, pmid: int, decision: str,
                 reason: str | None, rank_shown: int | None,
                 shown: Shown | None) -> Recorded[Decision]:
    record = locked_record(session, pmid)
    # Before the vote's bar: the retry of the vote that made two screeners agree finds the
    # record resolved, and must hear "already recorded", not "votes no longer change it".
    same = repeated_decision(session, user=user, pmid=pmid, decision=decision, reason=reason,
                             kind=VOTE, own_latest=True)
    if same is not None:
        log.info("PMID %s: %s's vote %s repeated; nothing stored", pmid, user.id, decision)
        return Recorded(same, created=False)
    before = votes_on(session, [pmid])[pmid]
    screeners = latest_votes(before)
    bar = vote_bar(record_state(record.decision, len(screeners)), voted=user.id in screeners)
    if bar == "settled":
        raise RecordStateError(
            f"PMID {pmid} is already resolved ({record.decision}); votes no longer change it",
            hint="an admin can change a resolved record with a resolution on its page")
    if bar == "third_person":
        raise RecordStateError(
            f"PMID {pmid} is in conflict between its two screeners; a third vote does not "
            "settle it", hint="resolve it on /conflicts instead")
    version_shown, score_shown = _provenance(record, shown)
    row = Decision(
        pmid=pmid, user_id=user.id, decision=decision, reason=reason, kind=VOTE,
        model_version_id=version_shown, score_shown=score_shown,
        rank_shown=rank_shown, audit_sample=record.audit_sample,
    )
    session.add(row)
    session.flush()
    after = [*before, Vote(id=int(row.id or 0), user_id=user.id, decision=decision)]
    record.decision = decision_after_vote(record.decision, after)
    session.add(record)
    n_screeners = len(latest_votes(after))
    audit(session, "decision.add", actor=user.email, object_type="record", object_id=pmid,
          decision=decision, decision_id=row.id, model_version_id=row.model_version_id,
          score_shown=row.score_shown, rank_shown=rank_shown, kind=VOTE,
          screeners=n_screeners, resolved=record.decision)
    if record.decision is not None:
        log.info("PMID %s resolved by agreement: %s", pmid, record.decision)
    elif n_screeners >= 2:
        log.info("PMID %s is in conflict after %s votes", pmid, n_screeners)
    return Recorded(row, created=True)


def decision_history(session: Session, pmid: int) -> list[tuple[Decision, str | None]]:
    """Every decision on the record, newest first, with the curator's e-mail."""
    stmt = (select(Decision, User.email).join(User, col(Decision.user_id) == col(User.id),
                                              isouter=True)
            .where(Decision.pmid == pmid).order_by(col(Decision.created_at).desc(),
                                                   col(Decision.id).desc()))
    return [(d, e) for d, e in session.exec(stmt).all()]
