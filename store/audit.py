"""Append-only audit trail: writing a row, and reading them back for the admins' audit page
(``/admin/audit``) and its CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, func, select

from store.days import parse_day
from store.errors import ValidationError
from store.ids import parse_id
from store.models import AuditLog
from store.spreadsheet import spreadsheet_row

#: The audit action of a trial the seed evidence added (``monitor.bootstrap``): the trials of
#: the review's previous version, found by it even after a curator renamed them.
SEED_TRIAL = "seed.trial"


def audit(
    session: Session,
    action: str,
    *,
    actor: str = "system",
    object_type: str | None = None,
    object_id: object = None,
    **details: Any,
) -> None:
    """Add one audit row to the session (committed with the caller's transaction)."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details,
        )
    )


def seed_trial_rows() -> Any:
    """SELECT of the seed trials' ids as their "seed.trial" audit rows keep them (text)."""
    return select(AuditLog.object_id).where(col(AuditLog.action) == SEED_TRIAL,
                                            col(AuditLog.object_type) == "trial")


def seed_trial_ids(session: Session) -> set[int]:
    """Ids of the trials the seed evidence added (the previous version of the review)."""
    return {trial_id for row in session.exec(seed_trial_rows())
            if row and (trial_id := parse_id(row)) is not None}


# ----------------------------------------------------------------------------- reading it
#: The columns of the audit trail's CSV, in order.
AUDIT_CSV_COLUMNS = ("id", "at", "actor", "action", "object_type", "object_id", "details")
_ACTION = re.compile(r"[a-z_]+(\.[a-z_]+)?")
_WORD = re.compile(r"[a-z_]+")
_MAX_FIELD = 254  # an e-mail address, the longest thing anyone filters by


@dataclass(frozen=True)
class AuditQuery:
    """Which rows of the audit trail to read: every condition given must hold.

    ``action`` without a dot is a family (``estimate``: every ``estimate.*`` action);
    ``trial_id`` is a trial's history: the trial's own rows and those of its reports,
    estimates and risk-of-bias assessments. ``since``/``until`` are UTC dates, both
    included."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: date | None = None
    until: date | None = None
    trial_id: int | None = None

    def is_empty(self) -> bool:
        return self == AuditQuery()


def parse_audit_query(*, actor: str = "", action: str = "", object_type: str = "",
                      object_id: str = "", since: str = "", until: str = "",
                      trial: str = "") -> AuditQuery:
    """An :class:`AuditQuery` from the fields of the audit page's form (empty: no condition);
    ValidationError naming the field for a value that cannot be one."""
    def field(name: str, value: str) -> str | None:
        value = value.strip()
        if len(value) > _MAX_FIELD:
            raise ValidationError(f"{name} is longer than {_MAX_FIELD} characters")
        return value or None

    who = field("actor", actor)
    what = field("action", action)
    if what is not None and not _ACTION.fullmatch(what.lower()):
        raise ValidationError(f"action {what!r} is not an action name",
                              hint="e.g. estimate (every estimate action) or estimate.verify")
    kind = field("object type", object_type)
    if kind is not None and not _WORD.fullmatch(kind.lower()):
        raise ValidationError(f"object type {kind!r} is not an object type",
                              hint="e.g. trial, estimate, record, user")
    first, last = _date("since", since), _date("until", until)
    if first and last and first > last:
        raise ValidationError(f"since {first.isoformat()} is after until {last.isoformat()}")
    trial_id = None
    if trial.strip():
        trial_id = parse_id(trial)
        if trial_id is None:
            raise ValidationError(f"trial {trial.strip()!r} is not a trial id")
    return AuditQuery(actor=who.lower() if who else None, action=what.lower() if what else None,
                      object_type=kind.lower() if kind else None,
                      object_id=field("object id", object_id), since=first, until=last,
                      trial_id=trial_id)


def _date(name: str, value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return parse_day(value)
    except ValueError:
        raise ValidationError(f"{name} {value[:40]!r} is not a date",
                              hint="write it as YYYY-MM-DD") from None


def _where(session: Session, q: AuditQuery) -> list[Any]:
    conditions: list[Any] = []
    if q.actor is not None:
        conditions.append(func.lower(col(AuditLog.actor)) == q.actor)
    if q.action is not None:
        conditions.append(col(AuditLog.action) == q.action if "." in q.action else or_(
            col(AuditLog.action) == q.action,
            col(AuditLog.action).startswith(q.action + ".", autoescape=True)))
    if q.object_type is not None:
        conditions.append(col(AuditLog.object_type) == q.object_type)
    if q.object_id is not None:
        conditions.append(col(AuditLog.object_id) == q.object_id)
    if q.since is not None:
        conditions.append(col(AuditLog.at) >= datetime.combine(q.since, time(), UTC))
    if q.until is not None and q.until < date.max:  # until the last day there is: no bound
        conditions.append(col(AuditLog.at) < datetime.combine(q.until + timedelta(days=1),
                                                              time(), UTC))
    if q.trial_id is not None:
        conditions.append(or_(*(and_(col(AuditLog.object_type) == kind,
                                     col(AuditLog.object_id).in_(ids))
                                for kind, ids in _trial_objects(session, q.trial_id).items())))
    return conditions


def _trial_objects(session: Session, trial_id: int) -> dict[str, list[str]]:
    """The audit objects that make up a trial's history, by object type (ids as text, as
    the audit trail keeps them)."""
    from store.models import BiasAssessment, Estimate, TrialReport

    def ids(model: Any) -> list[str]:
        return [str(i) for i in session.exec(select(model.id).where(model.trial_id == trial_id))]

    return {"trial": [str(trial_id)], "trial_report": ids(TrialReport),
            "estimate": ids(Estimate), "bias_assessment": ids(BiasAssessment)}


def audit_rows(session: Session, q: AuditQuery, *, limit: int | None = None,
               offset: int = 0) -> list[AuditLog]:
    """The rows ``q`` selects, newest first."""
    stmt = select(AuditLog).where(*_where(session, q)).order_by(
        col(AuditLog.at).desc(), col(AuditLog.id).desc()).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt).all())


def audit_row_batches(sessions: Callable[[], Session], q: AuditQuery, *, size: int = 1000,
                      blind: Callable[[Session, list[AuditLog]], list[AuditLog]] | None = None,
                      ) -> Iterator[list[AuditLog]]:
    """The rows ``q`` selects, newest first as :func:`audit_rows` gives them, ``size`` at a
    time, each batch read in a session of its own from ``sessions`` (passed through ``blind``
    there, when given).

    For the CSV of a whole trail: a busy review's runs to hundreds of thousands of rows, which
    read at once held every row and the whole file in memory (some 780 MB at 200,000 rows).
    Each batch starts after the last row of the one before, by (``at``, ``id``), rather than
    at an offset: no row is read twice or missed where many share a second, and rows written
    while the file downloads (newer than its first row) are not in it. A session per batch
    holds no transaction open while a slow client reads."""
    where: list[Any] | None = None
    after: tuple[datetime, int] | None = None
    while True:
        with sessions() as session:
            if where is None:
                where = _where(session, q)
            stmt = select(AuditLog).where(*where)
            if after is not None:
                stmt = stmt.where(or_(col(AuditLog.at) < after[0],
                                      and_(col(AuditLog.at) == after[0],
                                           col(AuditLog.id) < after[1])))
            batch = list(session.exec(stmt.order_by(col(AuditLog.at).desc(),
                                                    col(AuditLog.id).desc()).limit(size)))
            if not batch:
                return
            last = batch[-1]
            after = (last.at, int(last.id or 0))
            yield blind(session, batch) if blind is not None else batch
        if len(batch) < size:
            return


def count_audit_rows(session: Session, q: AuditQuery) -> int:
    return int(session.exec(select(func.count()).select_from(AuditLog)
                            .where(*_where(session, q))).one())


def audit_json(row: AuditLog) -> dict[str, Any]:
    """One row as the API and the CSV give it (:data:`AUDIT_CSV_COLUMNS`; ``at`` in UTC)."""
    return {"id": row.id, "at": row.at.isoformat() if row.at else None, "actor": row.actor,
            "action": row.action, "object_type": row.object_type, "object_id": row.object_id,
            "details": row.details}


def audit_csv_chunks(batches: Iterable[list[AuditLog]]) -> Iterator[str]:
    """The rows of ``batches`` as CSV text (:data:`AUDIT_CSV_COLUMNS` first; ``details`` as
    JSON), spreadsheet-safe, one piece per batch: the file is never whole in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for rows in batches:
        for row in rows:
            values = audit_json(row)
            values["details"] = json.dumps(row.details, ensure_ascii=False, sort_keys=True,
                                           default=str)
            writer.writerow(spreadsheet_row([values[c] for c in AUDIT_CSV_COLUMNS]))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():  # the header of a trail with no row
        yield buffer.getvalue()
