"""``mmlr status``: one read-only look at a running installation, for an operator, a cron job
or a container health check.

It reads the database and nothing else (no network, no PubMed, no SMTP), changes nothing (no
migration, no lock taken, and a SQLite file that does not exist is not created), and says
whether something needs attention. The rules (docs/operations.md, "Health: mmlr status"):

- the database cannot be opened, or its schema is not the one this mmlr expects;
- the newest poll run (any kind) ended ``failed`` or ``interrupted``, or says ``running`` but
  no live process holds the poll lock, or it has not checkpointed for longer than the poll's
  lock lease (:data:`monitor.poll.LOCK_TTL`): its poll stopped without ending it (its
  process died, or the database went away under it), and nothing is being monitored until
  the next poll resumes it;
- no search of new records (``crdt``) has completed yet, or none for longer than
  :func:`stale_after`: twice the longest gap between two firings of ``MMLR_POLL_CRON``, at
  least a day (default daily cron: 2 days) — one missed slot (NCBI down for a morning) is
  forgiven, two in a row are not;
- ``MMLR_POLL_CRON`` is not a cron ``serve``/``worker`` would start with;
- the newest digest did not reach a recipient (its latest delivery to them failed), or an
  older one did not and no later digest they received carried its changes;
- records still carry an older model's score and no live process holds the screen lock: a
  killed `mmlr screen` left the queue ordered by two models.
- ``MMLR_ANALYSES_FILE`` cannot be read or has a mistake: pooling fails on it, and
  ``serve``/``worker``/``run`` refuse to start.

Everything else (screening backlog, pending pool changes, locks, alerts) is reported, never a
reason to fail: those are curators' work or normal operation, not an operator's alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col, func, select

from store.errors import ConfigError
from store.settings import Settings

if TYPE_CHECKING:  # the models are imported where used: `mmlr status` starts fast
    from store.models import Delivery

#: The shortest staleness window: a cron firing every few minutes must not turn a slow
#: PubMed morning into an alarm.
MIN_STALE = timedelta(days=1)
#: Newest alerts listed by name (the count covers all of them).
ALERTS_LISTED = 5
#: A poll run's kind in words for the report (the JSON keeps the code).
_RUN_KINDS = {"crdt": "search by create date, crdt", "modified": "modified records, mdat",
              "pmids": "PMIDs asked for", "recheck": "left-out PMIDs asked for again",
              "watched": "trial reports re-fetched"}


def stale_after(poll_cron: str, now: datetime) -> timedelta:
    """How long without a completed poll is too long under ``poll_cron`` (module docstring).
    ConfigError when the cron is not one the scheduler accepts."""
    from monitor.scheduler import longest_gap

    return max(2 * longest_gap("poll-cycle", poll_cron, now), MIN_STALE)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC (store.models).
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class StatusReport:
    """What ``mmlr status`` found: ``sections`` (the stable JSON keys, documented in
    docs/operations.md) and ``problems``, the reasons for exit code 1, most urgent first."""

    checked_at: datetime
    sections: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        """The one line for stderr: the most urgent problem, and how many more there are."""
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more: see the report)" if more else "")

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "problems": list(self.problems),
                "checked_at": _iso(self.checked_at), **self.sections}

    def describe(self) -> str:
        """A short aligned table for a terminal."""
        rows = _text_rows(self)
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


# ----------------------------------------------------------------------------- gathering
def gather_status(settings: Settings, *, now: datetime | None = None) -> StatusReport:
    """Read the installation's state (module docstring); never raises for a database that
    cannot be opened: that is the report's first problem."""
    from store.engine import check_connection, make_engine, schema_revisions, shown_url
    from store.locks import held_by_a_live_process

    now = now or datetime.now(UTC)
    report = StatusReport(checked_at=now)
    url = settings.db_url
    parsed = make_url(url)
    database: dict[str, Any] = {"engine": parsed.get_backend_name(), "url": shown_url(url),
                                "reachable": False, "error": None}
    report.sections.update(database=database, schema=None, poll=None, digest=None,
                           screening=None, pooling=None, locks=None, alerts=None)
    # (A ``file:`` URI, ``?uri=true``, is SQLite's to resolve: not checked here.)
    if parsed.get_backend_name() == "sqlite" and parsed.database and \
            parsed.query.get("uri") not in ("true", "1"):
        # Connecting would create an empty file: status must not, and "no database here" is
        # the finding (a wrong MMLR_DATA_DIR or MMLR_DATABASE_URL, or `mmlr init` never ran).
        path = Path(parsed.database)
        if not path.is_file():
            database["error"] = (f"the SQLite database {path} does not exist" if not path.exists()
                                 else f"the SQLite database {path} is not a file")
            report.problems.append(f"{database['error']} (check MMLR_DATABASE_URL or "
                                   "MMLR_DATA_DIR; `mmlr init` creates it)")
            return report
    try:
        engine = make_engine(settings)
    except ConfigError as exc:
        database["error"] = exc.one_line()
        report.problems.append(exc.one_line())
        return report
    try:
        try:
            check_connection(engine)
        except ConfigError as exc:
            database["error"] = exc.one_line()
            report.problems.append(exc.one_line())
            return report
        database["reachable"] = True
        current, expected = schema_revisions(engine)
        at_head = current == ((expected,) if expected else ())
        report.sections["schema"] = {"current": ",".join(current) or None,
                                     "expected": expected, "at_head": at_head}
        if not at_head:
            # The tables are not the ones this code reads: reading them could fail or mislead.
            report.problems.append(
                "the database has no mmlr schema (run `mmlr init`)" if not current else
                f"the database schema is at revision {','.join(current)}, this mmlr expects "
                f"{expected} (`mmlr init` upgrades it; a newer revision means a newer mmlr "
                "upgraded it)")
            return report
        poll_lock_free = not _poll_lock_held(engine)  # read before the run: see _poll
        screen_lock_free = not held_by_a_live_process(engine, "screen")  # see _screening
        with Session(engine) as session:
            _poll(session, settings, now, report,
                  died=lambda: poll_lock_free and not _poll_lock_held(engine))
            _digest(session, settings, report)
            _screening(session, settings, report, died=lambda: screen_lock_free
                       and not held_by_a_live_process(engine, "screen"))
            _pooling(session, settings, report)
            _alerts(session, report)
        _locks(engine, report)
    finally:
        engine.dispose()
    return report


#: What a run left "running" with nobody at it means. Not "its process died": a poll that
#: lost the database (a restart, an outage) cannot mark its run either, and its worker lives
#: on to resume it at the next tick.
_ENDED_UNRECORDED = ("the poll running it stopped without recording why (its process died, "
                     "or the database went away under it); the next poll resumes it")


def _poll_lock_held(engine: Engine) -> bool:
    """Whether a live process holds the poll lock (an orphaned SQLite lease is no holder)."""
    from store.locks import held_locks

    return any(lock.name == "poll" and not lock.orphaned for lock in held_locks(engine))


def _poll(session: Session, settings: Settings, now: datetime, report: StatusReport, *,
          died: Callable[[], bool] = lambda: False) -> None:
    """``died``: whether nobody held the poll lock before the newest run was read, nor after.
    A poll takes the lock before it creates or resumes a run and marks its run ended before
    releasing it, so a run still marked running with the lock free on both sides is a dead
    process's (SIGKILL, a lost container), not one about to start or just finished."""
    from monitor.poll import LOCK_TTL
    from store.models import PollRun
    from store.searches import last_completed_search

    newest = session.exec(select(PollRun).order_by(col(PollRun.started_at).desc(),
                                                   col(PollRun.id).desc())).first()
    last = last_completed_search(session)
    # Every scheduled job's cron stops serve and worker when the scheduler refuses it: each is
    # said here, or status called the installation healthy while its worker could not start.
    from monitor.scheduler import check_cron, default_jobs

    refused: set[str] = set()
    for job_id, spec in default_jobs(settings).items():
        try:
            check_cron(job_id, spec.cron)
        except ConfigError as exc:
            refused.add(job_id)
            report.problems.append(
                f"{exc.one_line()}: `mmlr serve`/`mmlr worker` will not start")
    limit = None if "poll-cycle" in refused else stale_after(settings.poll_cron, now)
    section: dict[str, Any] = {
        "last_completed_at": None, "window_start": None, "window_end": None, "found": None,
        "new": None, "updated": None, "dropped_terms": [], "stale_after_hours": (
            round(limit.total_seconds() / 3600, 1) if limit is not None else None),
        "stale": False, "first_search_pending": False, "newest_run": None}
    report.sections["poll"] = section
    if newest is not None:
        heartbeat = _aware(newest.heartbeat_at)
        # A live poll checkpoints (and renews its lease) after every batch: silence longer
        # than the lease means its process died and the lease is free for the next poll.
        hung = newest.status == "running" and now - heartbeat > timedelta(seconds=LOCK_TTL)
        # No lock holder says so at once: PostgreSQL frees the advisory lock when the process
        # dies, and a SQLite lease of a dead process on this host is orphaned.
        orphaned = newest.status == "running" and not hung and died()
        section["newest_run"] = {
            "id": newest.id, "kind": newest.kind,
            "status": "stale" if hung or orphaned else newest.status,
            "started_at": _iso(newest.started_at), "heartbeat_at": _iso(heartbeat),
            "error": newest.error}
        if newest.status in ("failed", "interrupted"):
            report.problems.append(
                f"the newest poll run #{newest.id} ({newest.kind}) {newest.status}: "
                f"{' '.join((newest.error or 'no reason recorded').split())}")
        elif hung:
            report.problems.append(
                f"poll run #{newest.id} ({newest.kind}) says running but has not progressed "
                f"since {heartbeat:%Y-%m-%d %H:%M} UTC: {_ENDED_UNRECORDED}")
        elif orphaned:
            report.problems.append(
                f"poll run #{newest.id} ({newest.kind}) says running but no process holds "
                f"the poll lock: {_ENDED_UNRECORDED}")
    if last is None or last.finished_at is None:
        # A new installation waits for its first MMLR_POLL_CRON slot (up to a day with the
        # default cron): only past the stale limit, counted from when it was set up (its
        # first user, its first audit row), is the missing first search a problem.
        since = _set_up_at(session)
        section["first_search_pending"] = True
        if limit is None or since is None or now - since <= limit:
            return
        report.problems.append(
            f"no search of new records has completed since mmlr was set up on "
            f"{since:%Y-%m-%d %H:%M} UTC (more than {_span(limit)}, twice the gap of "
            f"MMLR_POLL_CRON {settings.poll_cron!r}; run `mmlr poll`)")
        return
    finished = _aware(last.finished_at)
    section.update({
        "last_completed_at": _iso(finished),
        "window_start": last.window_start.isoformat() if last.window_start else None,
        "window_end": last.window_end.isoformat() if last.window_end else None,
        "found": last.found, "new": last.new, "updated": last.updated,
        "dropped_terms": list(last.dropped_terms or [])})
    if limit is not None and now - finished > limit:
        section["stale"] = True
        report.problems.append(
            f"no search of new records has completed since {finished:%Y-%m-%d %H:%M} UTC "
            f"(more than {_span(limit)}, twice the gap of MMLR_POLL_CRON "
            f"{settings.poll_cron!r})")


def _set_up_at(session: Session) -> datetime | None:
    """When this installation was set up: its first user or first audit row (``mmlr init``
    makes both), None for a database with neither."""
    from store.models import AuditLog, User

    times = [session.exec(select(func.min(User.created_at))).one(),
             session.exec(select(func.min(AuditLog.at))).one()]
    known = [_aware(t) for t in times if t is not None]
    return min(known) if known else None


def _span(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def _digest(session: Session, settings: Settings, report: StatusReport) -> None:
    from store.models import Delivery, Digest
    from store.subscribers import recipient_addresses

    digest = session.exec(select(Digest).order_by(col(Digest.created_at).desc(),
                                                  col(Digest.id).desc())).first()
    if digest is None:
        report.sections["digest"] = {"id": None, "built_at": None, "sent": 0, "failed": 0,
                                     "unknown": 0, "pending": 0, "no_longer_recipients": 0,
                                     "errors": []}
        return
    latest = _recipients(session.exec(select(Delivery).where(
        Delivery.digest_id == digest.id).order_by(col(Delivery.id))).all())
    counts = {status: sum(r.status == status for r in latest.values())
              for status in ("sent", "failed", "unknown", "pending")}
    errors = sorted({" ".join((r.error or "no reason recorded").split())
                     for r in latest.values() if r.status == "failed"})
    # A failure for an address that is no longer a recipient (removed, unsubscribed, taken
    # out of MMLR_DIGEST_TO) needs nobody to act: no delivery will ever go to it again, so
    # it is told (no_longer_recipients) but is no problem. It kept status at 1 forever.
    current = recipient_addresses(session, settings.digest_recipients)
    gone = {k for k, r in latest.items()
            if r.status in ("failed", "unknown") and not _still_recipient(k, current)}
    report.sections["digest"] = {"id": digest.id, "built_at": _iso(digest.created_at),
                                 **counts, "no_longer_recipients": len(gone), "errors": errors}

    def errors_of(status: str, unknown: str) -> list[str]:
        """The errors of the current recipients whose latest delivery has ``status``."""
        return sorted(" ".join((r.error or unknown).split())
                      for k, r in latest.items() if r.status == status and k not in gone)

    failed = errors_of("failed", "no reason recorded")
    if failed:
        report.problems.append(
            f"the newest digest #{digest.id} was not delivered to {len(failed)} of "
            f"{len(latest)} recipients: {failed[0]} (`mmlr digest --send` sends it again to "
            "the current recipients it missed)")
    unsure = errors_of("unknown", "")
    if unsure:
        # The server did not answer after the message went out: it may have arrived, so
        # nothing resends it by itself (reports.mail); a person has to ask.
        report.problems.append(
            f"the newest digest #{digest.id} may not have reached {len(unsure)} of "
            f"{len(latest)} recipients: {unsure[0]} (not resent by itself: ask them; "
            "`mmlr digest --send --resend-unknown` sends it to them again, "
            "`mmlr digest --confirm-received EMAIL` records that it arrived)")
    _older_digests(session, int(digest.id or 0), current, report)


#: A recipient of a digest: (digest id, channel, address in lower case; None for the outbox).
_Recipient = tuple[int, str, str | None]


def _recipients(rows: Sequence[Delivery]) -> dict[_Recipient, Delivery]:
    """Each recipient's delivery of each digest in ``rows`` (in id order). The latest row
    decides, but one sent copy settles it: a retry that sent it after a failure is a delivery
    (as reports.digest counts "already sent"). The outbox copy is nobody (it is written beside
    SMTP deliveries when the digest went to the outbox before MMLR_SMTP_URL was set) and
    counts only where it is the delivery, a digest with no SMTP recipient."""
    latest: dict[_Recipient, Delivery] = {}
    for row in rows:
        key = (row.digest_id, row.channel, row.recipient.lower() if row.recipient else None)
        if key not in latest or latest[key].status != "sent":
            latest[key] = row
    by_smtp = {key[0] for key in latest if key[1] == "smtp"}
    return {key: row for key, row in latest.items()
            if not (key[1] == "outbox" and key[0] in by_smtp)}


def _still_recipient(key: _Recipient, current: set[str]) -> bool:
    """Whether the next digest still goes to this recipient (the outbox is no address)."""
    return key[2] is None or key[2] in current


def _older_digests(session: Session, newest: int, current: set[str],
                   report: StatusReport) -> None:
    """An older digest that did not reach a recipient is a problem only when no later digest
    they received carried its changes: a digest counts from the last one delivered
    (``reports.digest.previous_digest``), so one that reached nobody is covered by the next,
    while one that reached others but not them is not (its changes are not said again).
    Only for a recipient still in ``current``: nothing can reach one who left."""
    from store.models import Delivery, Digest

    latest = _recipients(session.exec(select(Delivery).order_by(col(Delivery.id))).all())
    missed = sorted(k for k, r in latest.items() if r.status == "failed" and k[0] < newest
                    and _still_recipient(k, current))
    if not missed:
        return
    # What each later digest was compared with; one stored before that was kept counts
    # from the digest just before it.
    since: dict[int, int | None] = {}
    before: int | None = None
    for digest_id, summary in session.exec(
            select(Digest.id, Digest.summary).where(col(Digest.id) >= missed[0][0])
            .order_by(col(Digest.id))):
        value = (summary or {}).get("since_digest") if isinstance(summary, dict) else None
        since[int(digest_id or 0)] = value if isinstance(value, int) else \
            (None if "since_digest" in (summary or {}) else before)
        before = int(digest_id or 0)
    uncovered: dict[int, list[Delivery]] = {}
    for digest_id, channel, rcpt in missed:
        carried = any(
            later > digest_id and (base is None or base < digest_id)
            and (got := latest.get((later, channel, rcpt))) is not None and got.status == "sent"
            for later, base in since.items())
        if not carried:
            uncovered.setdefault(digest_id, []).append(latest[(digest_id, channel, rcpt)])
    for digest_id, failed in sorted(uncovered.items()):
        error = " ".join((failed[0].error or "no reason recorded").split())
        report.problems.append(
            f"digest #{digest_id} was not delivered to {len(failed)} "
            f"recipient{'' if len(failed) == 1 else 's'} and no later digest they received "
            f"carried its changes: {error} (it is kept: /digests/{digest_id} shows it)")


def _screening(session: Session, settings: Settings, report: StatusReport, *,
               died: Callable[[], bool] = lambda: False) -> None:
    """``died``: whether no live process held the screen lock before the counts were read, nor
    after (as ``_poll``'s): `mmlr screen` holds it from training until every record is scored,
    so records still scored by an older model then are a killed run's."""
    from screening.health import count_live, count_pool, prioritised_order_test
    from screening.votes import in_conflict, screened_once
    from store.models import ModelVersion, Record
    from store.settings import is_dual_screening

    model = session.exec(select(ModelVersion).where(col(ModelVersion.active).is_(True))
                         .order_by(col(ModelVersion.id).desc())).first()
    test = prioritised_order_test(session, target_recall=settings.stopping_recall)
    version = col(Record.score_model_version_id)
    older = count_live(session, col(Record.score).is_not(None),
                       version.is_(None) | (version != model.id)) if model else 0
    if older and died():
        report.problems.append(
            f"{older} record{' still carries' if older == 1 else 's still carry'} the score of "
            f"an older model "
            f"than the active v{model.id if model else '?'}: the `mmlr screen` that trained it "
            "stopped before scoring them, so the queue mixes two models' orders; run "
            "`mmlr screen`")
    undecided = count_pool(session, col(Record.decision).is_(None))
    # Under dual screening, as the PRISMA flow counts them: a conflict waits for a resolution,
    # not for screening ("awaiting screening 186" beside PRISMA's 185 and 1 in conflict).
    conflicts = second = None
    if is_dual_screening(settings.screeners_per_record):
        conflicts = count_pool(session, in_conflict())
        second = count_pool(session, col(Record.decision).is_(None),
                            col(Record.pmid).in_(screened_once()))
    report.sections["screening"] = {
        "model_version": model.id if model else None,
        "model_trained_at": _iso(model.created_at) if model else None,
        # scored by an older model than the active one: as much in need of scoring
        "unscored": count_live(session, col(Record.score).is_(None)) + older,
        "awaiting_screening": undecided - (conflicts or 0),
        "awaiting_second_vote": second, "in_conflict": conflicts,
        "may_stop": test.rejects, "stopping_test": test.describe(),
    }


def _pooling(session: Session, settings: Settings, report: StatusReport) -> None:
    from reports.analyses import check_analyses_file
    from reports.selection import pending_changes
    from store.models import PooledResult

    last = session.exec(select(func.max(PooledResult.computed_at))).one()
    pending: int | None = None
    error: str | None = None
    try:
        # Every mistake of the file at once (as serve, worker and run check it at start),
        # not only those the pending changes happen to read.
        check_analyses_file(settings.analyses_file)
        pending = len(pending_changes(session, settings.analyses_file))
    except ConfigError as exc:
        # The rest of the report still holds: the file is one more reason for attention.
        error = exc.one_line()
        report.problems.append(f"{error}: pooling fails and `mmlr serve`/`mmlr worker`/"
                               "`mmlr run` will not start")
    report.sections["pooling"] = {"last_pooled_at": _iso(last),
                                  "analyses_with_pending_changes": pending, "error": error}


def _alerts(session: Session, report: StatusReport) -> None:
    from store.models import Alert

    in_use = col(Alert.in_analysis).is_(True)
    waiting = [in_use, col(Alert.digest_id).is_(None)]
    total = int(session.exec(select(func.count()).select_from(Alert).where(in_use)).one())
    unreported = int(session.exec(select(func.count()).select_from(Alert)
                                  .where(*waiting)).one())
    newest = session.exec(select(Alert).where(*waiting).order_by(col(Alert.id).desc())
                          .limit(ALERTS_LISTED)).all()
    report.sections["alerts"] = {
        "in_use": total, "in_use_not_in_a_digest": unreported,
        "newest": [{"id": a.id, "kind": a.kind, "pmid": a.pmid,
                    "created_at": _iso(a.created_at)} for a in newest]}


def _locks(engine: Engine, report: StatusReport) -> None:
    from store.locks import held_locks

    report.sections["locks"] = [
        {"name": lock.name, "holder": lock.holder, "since": _iso(lock.since),
         "expires_at": _iso(lock.expires_at), "orphaned": lock.orphaned}
        for lock in held_locks(engine)]


# ----------------------------------------------------------------------------- text
def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _text_rows(report: StatusReport) -> list[tuple[str, str]]:
    s = report.sections
    db = s["database"]
    rows = [("database", f"{db['url']}" + ("" if db["reachable"] else
                                           f" — {db['error'] or 'not reachable'}"))]
    if s["schema"] is not None:
        sc = s["schema"]
        rows.append(("schema", f"{sc['current'] or 'none'} (expected {sc['expected']})"))
    if (poll := s["poll"]) is not None:
        if poll["last_completed_at"]:
            rows.append(("last poll", f"{_when(poll['last_completed_at'])}, create dates "
                         f"{poll['window_start']} to {poll['window_end']}: found "
                         f"{poll['found']}, {poll['new']} new, {poll['updated']} updated"
                         + (" (stale)" if poll["stale"] else "")
                         + ("; searched without what PubMed does not know in MMLR_QUERY: "
                            + ", ".join(poll["dropped_terms"]) if poll["dropped_terms"] else "")))
        else:
            rows.append(("last poll", "none completed" + (
                " (the first is due at the next MMLR_POLL_CRON slot)"
                if poll.get("first_search_pending") and not report.problems else "")))
        if (run := poll["newest_run"]) is not None:
            kind = _RUN_KINDS.get(run["kind"], run["kind"])
            rows.append(("newest poll run", f"#{run['id']} ({kind}) {run['status']}, "
                         f"started {_when(run['started_at'])}"))
        if poll["stale_after_hours"] is not None:
            rows.append(("poll stale after", _span(timedelta(hours=poll["stale_after_hours"]))))
    if (dg := s["digest"]) is not None:
        rows.append(("last digest", "none built" if dg["id"] is None else
                     f"#{dg['id']} built {_when(dg['built_at'])}: {dg['sent']} delivered, "
                     f"{dg['failed']} failed, "
                     + (f"{dg['unknown']} perhaps delivered, " if dg["unknown"] else "")
                     + f"{dg['pending']} pending"
                     + (f" ({dg['no_longer_recipients']} of those not delivered are no longer "
                        "recipients)" if dg["no_longer_recipients"] else "")))
    if (sc := s["screening"]) is not None:
        rows.append(("model", f"#{sc['model_version']} trained {_when(sc['model_trained_at'])}"
                     if sc["model_version"] is not None else "none trained"))
        rows.append(("unscored", str(sc["unscored"])))
        rows.append(("awaiting screening", str(sc["awaiting_screening"])
                     + (f" ({sc['awaiting_second_vote']} of them with one vote, awaiting the "
                        "second screener)" if sc["awaiting_second_vote"] else "")))
        if sc["in_conflict"] is not None:
            rows.append(("conflicts", f"{sc['in_conflict']} awaiting resolution"))
        rows.append(("stopping test", sc["stopping_test"]))
    if (pl := s["pooling"]) is not None:
        rows.append(("last pool", f"{_when(pl['last_pooled_at'])}; " + (
            f"analyses with changes waiting unknown: {pl['error']}" if pl["error"] else
            f"{pl['analyses_with_pending_changes']} analyses with changes waiting")))
    if (locks := s["locks"]) is not None:
        rows.append(("locks", "; ".join(
            f"{lk['name']} by {lk['holder']}" + (f" since {_when(lk['since'])}"
                                                 if lk["since"] else "")
            + (" (orphaned)" if lk["orphaned"] else "") for lk in locks) or "none held"))
    if (al := s["alerts"]) is not None:
        rows.append(("alerts in use", "none" if not al["in_use"] else (
            f"{al['in_use']} on records in the evidence, {al['in_use_not_in_a_digest']} not "
            "yet in a digest" + "".join(f"; {a['kind']} PMID {a['pmid']}"
                                        for a in al["newest"]))))
    rows.append(("status", "ok" if report.healthy else "attention: " + report.reason()))
    return rows
