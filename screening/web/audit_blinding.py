"""The audit trail as a person may read it while votes are blind.

Under dual screening each vote is hidden from everyone but its screener until the second vote
is in — admins included, since admins screen too (docs/curation.md, "Blinding"). The audit
trail records every vote with its decision; shown as stored, it would let an admin read the
first vote and then cast the second. So, on the page, in the CSV and in the API, a vote whose
record still awaits its second vote at that stage shows its judgement as hidden to anyone but
the person who cast it. The stored row is never changed: once the second vote is in, the trail
shows it whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from screening.agreement import VOTE, latest_votes, record_state
from screening.votes import votes_on
from store.fulltext import outcomes
from store.models import AuditLog, Record, User

HIDDEN = "hidden until the second vote"

#: The judgement in a vote's audit details, by action (the rest — who, when, which record,
#: the score shown — is what the record page says too: "1 vote recorded, hidden").
_JUDGEMENT = {"decision.add": ("decision", "resolved"),
              "fulltext.assess": ("verdict", "reason", "settled")}


def _vote_pmid(row: AuditLog) -> int | None:
    details = row.details or {}
    if row.action not in _JUDGEMENT or details.get("kind") != VOTE \
            or row.object_type != "record" or not str(row.object_id or "").isdigit():
        return None
    return int(str(row.object_id))


def blinded(session: Session, rows: Sequence[AuditLog], viewer: User) -> list[AuditLog]:
    """``rows`` with the judgement of others' still-blind votes hidden: copies, never the
    session's rows, so nothing hidden is written back."""
    others = {row.id: pmid for row in rows
              if (pmid := _vote_pmid(row)) is not None and row.actor != viewer.email}
    if not others:
        return list(rows)
    pmids = set(others.values())
    blind = {("decision.add", p) for p in _awaiting_second_vote(session, pmids)}
    blind |= {("fulltext.assess", p) for p, o in outcomes(session, pmids).items()
              if o.state == "awaiting_second"}
    out: list[AuditLog] = []
    for row in rows:
        pmid = others.get(row.id)
        if pmid is None or (row.action, pmid) not in blind:
            out.append(row)
            continue
        details = {k: (HIDDEN if k in _JUDGEMENT[row.action] and v is not None else v)
                   for k, v in (row.details or {}).items()}
        out.append(AuditLog(id=row.id, at=row.at, actor=row.actor, action=row.action,
                            object_type=row.object_type, object_id=row.object_id,
                            details=details))
    return out


def _awaiting_second_vote(session: Session, pmids: set[int]) -> set[int]:
    decided = dict(session.exec(select(Record.pmid, Record.decision)
                                .where(col(Record.pmid).in_(pmids))).all())
    return {pmid for pmid, votes in votes_on(session, pmids).items()
            if record_state(decided.get(pmid), len(latest_votes(votes))) == "awaiting_second"}


__all__ = ["HIDDEN", "blinded"]
