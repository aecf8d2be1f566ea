"""SQLModel tables of mmlr (DESIGN §1 and §4).

Conventions:
- timestamps are timezone-aware UTC (``utcnow()``); SQLModel's ``UTCDateTime`` refuses naive
  values, so a local time can never slip in;
- lists and small documents are JSON columns (portable between both engines);
- ``Decision``, ``BiasAssessment`` and ``AuditLog`` are append-only: nothing updates or deletes
  their rows;
- a PubMed record's key is its PMID; each content change keeps a ``RecordRevision``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    and_,
)
from sqlmodel import Field, SQLModel, col


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


def _json(default: Any = None, *, nullable: bool = False) -> Any:
    factory = (
        (lambda: list(default))
        if isinstance(default, list)
        else ((lambda: dict(default)) if isinstance(default, dict) else None)
    )
    if factory is None:
        return Field(default=None, sa_column=Column(JSON, nullable=True))
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=nullable))


def _text(*, nullable: bool = True) -> Any:
    return Field(default=None if nullable else "", sa_column=Column(Text, nullable=nullable))


# --------------------------------------------------------------------------- records
class Record(SQLModel, table=True):
    """The newest version of one PubMed record."""

    __tablename__ = "records"

    pmid: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    pmid_version: int = 1
    title: str = _text(nullable=False)
    abstract: str | None = _text()
    journal: str | None = None
    journal_abbrev: str | None = None
    year: int | None = Field(default=None, index=True)
    pub_date: str | None = None  # as printed (e.g. "2012 Mar-Apr"), ISO when exact
    create_date: date | None = Field(default=None, index=True)  # [crdt] / PubStatus=entrez
    authors: list[str] = _json([])
    doi: str | None = None
    pmc: str | None = None
    language: list[str] = _json([])
    publication_types: list[str] = _json([])
    mesh: list[dict[str, Any]] = _json([])  # {"descriptor", "major", "qualifiers": [...]}
    keywords: list[str] = _json([])
    nct_ids: list[str] = _json([])
    status: str | None = None  # MedlineCitation/@Status: Publisher, In-Process, MEDLINE, …
    comments_corrections: list[dict[str, Any]] = _json([])  # {"ref_type", "pmid", "source"}
    is_book: bool = False
    # Where it sits in its journal (store.citation): as PubMed prints them, NULL when PubMed
    # has none (online first) and for records stored before migration 0013 until re-fetched.
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None  # MedlinePgn, e.g. "3003-15" (end page abbreviated)
    elocation: str | None = None  # non-DOI ELocationID: article number, or pii when online first
    source: str = "entrez"  # entrez | demo | seed
    # How the review first identified the record (PRISMA 2020's two identification columns):
    # "search" (a PubMed search: the create- or modification-date pass), "pmid" (a curator's
    # PMID list: /fetch, `mmlr poll --pmids`; PRISMA's "other methods") or "watched" (a
    # trial report's PMID re-fetched by the modified pass). Set once, on insert: a later
    # search returning the PMID does not change it (IDENTIFIED_VIA, monitor.poll).
    identified_via: str = Field(default="search", sa_column_kwargs={"server_default": "search"})
    content_hash: str = Field(default="", index=True)
    deleted: bool = Field(default=False, index=True)  # DeleteCitation: hidden from the queue
    deleted_at: datetime | None = None  # when a poll hid it (NULL: not deleted, or before 0007)
    retracted: bool = False
    first_seen_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_fetched_at: datetime = Field(default_factory=utcnow)
    # Denormalised current screening state, so the queue is one indexed query.
    score: float | None = Field(default=None, index=True)
    score_model_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    flagged: bool = Field(default=False, index=True)
    audit_sample: bool = False  # chosen for the random low-score audit
    decision: str | None = Field(default=None, index=True)  # latest: include | exclude | maybe


#: The one order of records by score, wherever records are listed by it (the queue, the
#: conflicts, a search, ``GET /api/records``, the digest's likely trials): highest score
#: first, unscored last on every engine, and a tie broken by the newest PMID, so pages never
#: overlap and a curator sees the same order in the app, the API and the e-mail.
BY_SCORE = (col(Record.score).desc().nulls_last(), col(Record.pmid).desc())

#: That order as an index: PostgreSQL walks it and stops after one page instead of sorting
#: every waiting record (migration 0017). PostgreSQL only: SQLite cannot say NULLS LAST in an
#: index and walks ``ix_records_score`` for this order (the migration says why).
QUEUE_ORDER_INDEX = Index("ix_records_queue_order", *BY_SCORE).ddl_if(dialect="postgresql")

#: A record of the random audit sample still waiting for its decision: the queue reads these
#: first, in ``BY_SCORE`` order, on every page (``screening.queue``).
PENDING_AUDIT = (col(Record.audit_sample).is_(True), col(Record.decision).is_(None))

#: Those records in that order, a partial index (migration 0018): the audit sample is a few
#: percent of the low-score records, so without it both engines read every waiting record to
#: find a page of them, and all of them once the audit is screened. The same name on both
#: engines, declared twice because SQLite cannot say NULLS LAST in an index (its DESC already
#: puts NULL last).
AUDIT_QUEUE_INDEXES = (
    Index("ix_records_audit_queue", *BY_SCORE,
          postgresql_where=and_(*PENDING_AUDIT)).ddl_if(dialect="postgresql"),
    Index("ix_records_audit_queue", col(Record.score).desc(), col(Record.pmid).desc(),
          sqlite_where=and_(*PENDING_AUDIT)).ddl_if(dialect="sqlite"),
)


class RecordRevision(SQLModel, table=True):
    """A previous version of a record, kept when its content changed."""

    __tablename__ = "record_revisions"
    __table_args__ = (UniqueConstraint("pmid", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    pmid: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    revision: int
    content_hash: str
    status: str | None = None
    changed_fields: list[str] = _json([])
    snapshot: dict[str, Any] = _json({})  # the content *before* the change
    recorded_at: datetime = Field(default_factory=utcnow)
    poll_run_id: int | None = Field(default=None, foreign_key="poll_runs.id")


#: Values of ``Record.identified_via``, and the poll run kind each comes from (a kind not
#: listed — recheck — only re-fetches stored records, so it never inserts one).
IDENTIFIED_VIA: dict[str, str] = {"crdt": "search", "modified": "search", "pmids": "pmid",
                                  "watched": "watched"}
#: The route PRISMA 2020 counts under "identification via other methods".
BY_PMID = "pmid"


class PollRun(SQLModel, table=True):
    """One monitoring pass, checkpointed after every efetch batch so it can resume."""

    __tablename__ = "poll_runs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = "crdt"  # crdt | pmids | recheck | modified | watched
    status: str = Field(default="running", index=True)  # running | completed | failed
    query: str = _text(nullable=False)
    window_start: date | None = None
    window_end: date | None = None
    pmids: list[int] = _json([])  # the full list to fetch, fixed once searched
    batch_size: int = 200
    batches_done: int = 0
    found: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    retracted: int = 0
    missing: list[int] = _json([])  # requested but not returned by efetch
    #: What PubMed left out of the searched query as unknown ("<term> (<why>)", from the
    #: esearch ErrorList/WarningList): the search ran without it (migration 0020).
    dropped_terms: list[str] = _json([])
    requests: int = 0
    retries: int = 0
    error: str | None = _text()
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    heartbeat_at: datetime = Field(default_factory=utcnow)


class Alert(SQLModel, table=True):
    """Something a curator must know: retraction, erratum, deletion of a record in use."""

    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # retraction | erratum | expression_of_concern | deleted
    pmid: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    related_pmid: int | None = Field(default=None, sa_column=Column(BigInteger))
    message: str = _text(nullable=False)
    in_analysis: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    digest_id: int | None = Field(default=None, foreign_key="digests.id")


# --------------------------------------------------------------------------- screening
class ModelVersion(SQLModel, table=True):
    """A trained classifier with its configuration, training data size and CV metrics."""

    __tablename__ = "model_versions"

    id: int | None = Field(default=None, primary_key=True)
    name: str = "default"
    config: dict[str, Any] = _json({})
    n_train: int = 0
    n_positive: int = 0
    n_decisions: int = 0  # curator decisions in the training set
    cv_metrics: dict[str, Any] = _json({})
    threshold: float | None = None
    artifact: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    code_version: str = ""
    active: bool = Field(default=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Score(SQLModel, table=True):
    """A model's score of one record (one row per model version and record content)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("pmid", "model_version_id", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    pmid: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    model_version_id: int = Field(foreign_key="model_versions.id", index=True)
    content_hash: str = ""
    score: float
    flagged: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True)
    name: str | None = None
    role: str = "viewer"  # admin | curator | viewer
    password_hash: str = ""
    api_token_hash: str | None = Field(default=None, index=True)
    # When the API token stops working (``MMLR_API_TOKEN_DAYS`` after it was issued); None
    # with no token. Checked when the token is used: expiry is computed, not a job.
    api_token_expires_at: datetime | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
    # Each session cookie carries the version it was issued under, and a password change
    # bumps it, so every older cookie of the user stops working at once (LoginSession ends
    # one session: logging out).
    session_version: int = 0


class LoginSession(SQLModel, table=True):
    """One browser session (a login). The signed cookie carries a random token whose hash is
    stored here: logging out ends the row, so a copy of the cookie stops working too — a
    signed cookie alone stays valid until it expires, whatever the browser forgets."""

    __tablename__ = "login_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(index=True, unique=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class LoginAttempt(SQLModel, table=True):
    """A password being checked now (a login, or the password asked again before a sensitive
    change): the login throttle counts it as a failure until the check ends.

    The row is written under the throttle's lock before the slow scrypt check and deleted
    when the check is done (a wrong password is then an ``auth.login_failed`` audit row).
    Counting the audit rows alone let a burst of parallel attempts all pass the count before
    any of them was recorded. Not an audit row: nothing of it outlives the check, except when
    the process dies during it; then the row counts as a failure until the throttle's window
    has passed, and the next attempt deletes it."""

    __tablename__ = "login_attempts"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    #: The normalised e-mail address; None when the login name typed is not an address (no
    #: account can have it, and what was typed may be a password).
    account: str | None = None
    client: str = ""


class Decision(SQLModel, table=True):
    """A curator's screening decision. Append-only.

    Single screening: the latest row per record counts (kind ``decision``; rows stored before
    that kind existed are of kind ``vote``). Dual screening
    (``settings.dual_screening``): rows of kind ``vote`` are each screener's
    independent votes (their latest counts) and rows of kind ``resolution`` settle a conflict
    (rules in ``screening.agreement``); ``Record.decision`` holds the outcome either way.
    """

    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    pmid: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    # Indexed: the dual-screening queue asks "which records has this user voted on?".
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    decision: str  # include | exclude | maybe
    # vote | resolution (a third person's or an admin's final decision) | decision (single
    # screening)
    kind: str = "vote"
    reason: str | None = _text()
    stage: str = "title_abstract"
    # Provenance: what the curator saw when deciding.
    model_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    score_shown: float | None = None
    rank_shown: int | None = None
    audit_sample: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)


class FullTextAssessment(SQLModel, table=True):
    """A curator's full-text eligibility verdict on a record included at title/abstract
    screening (PRISMA 2020: reports sought, not retrieved, assessed, excluded with reasons).
    Append-only. ``kind`` is ``verdict`` (one assessor: it settles the record), ``vote`` (two
    independent assessors: settled when they agree) or ``resolution`` (a third person's
    ruling on a conflict); the rules are in ``store.fulltext``."""

    __tablename__ = "fulltext_assessments"

    id: int | None = Field(default=None, primary_key=True)
    pmid: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    user_id: int | None = Field(default=None, foreign_key="users.id")
    verdict: str  # eligible | excluded | not_retrieved
    reason: str | None = None  # a code of store.fulltext.REASONS when excluded
    note: str | None = _text()
    kind: str = "verdict"  # verdict | vote | resolution
    created_at: datetime = Field(default_factory=utcnow, index=True)


# --------------------------------------------------------------------------- evidence
class Trial(SQLModel, table=True):
    """A randomised trial (pooled once per analysis, whatever its number of reports)."""

    __tablename__ = "trials"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    registry_ids: list[str] = _json([])  # NCT…, EudraCT…
    drug: str  # maintenance drug as pooled, e.g. "thalidomide", "lenalidomide"
    regimen: str | None = None  # as given, e.g. "thalidomide+prednisone"
    comparator: str | None = None
    setting: str  # post_asct | non_transplant | mixed
    is_strategy: bool = False  # induction differs too: out of the primary analysis
    notes: str | None = _text()
    created_at: datetime = Field(default_factory=utcnow)


class TrialReport(SQLModel, table=True):
    """One publication of a trial (primary paper, update, abstract)."""

    __tablename__ = "trial_reports"
    # One report per publication and trial (reports without a PMID are not constrained).
    __table_args__ = (Index("uq_trial_reports_trial_pmid", "trial_id", "pmid", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    trial_id: int = Field(foreign_key="trials.id", index=True)
    pmid: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    citation: str = _text(nullable=False)
    year: int | None = None
    source_key: str | None = None
    kind: str = "primary"  # primary | update | abstract | secondary
    created_at: datetime = Field(default_factory=utcnow)


class Estimate(SQLModel, table=True):
    """A hazard ratio of maintenance vs control for one endpoint at one data cut."""

    __tablename__ = "estimates"

    id: int | None = Field(default=None, primary_key=True)
    trial_id: int = Field(foreign_key="trials.id", index=True)
    report_id: int | None = Field(default=None, foreign_key="trial_reports.id")
    endpoint: str  # PFS | EFS | TTP | OS
    setting: str  # post_asct | non_transplant | mixed
    comparison: str = "maintenance vs control"  # arm contrast, for multi-arm trials
    hr: float
    ci_low: float | None = None
    ci_high: float | None = None
    log_hr: float
    se: float
    # reported_ci | p_value_events | hr_p_value | o_minus_e | medians | km_curves
    method: str = "reported_ci"
    approximate: bool = False
    orientation_entered: str = "maint_vs_control"
    data_cut: date | None = None
    data_cut_label: str | None = None
    n_maintenance: int | None = None
    n_control: int | None = None
    events: int | None = None
    verified: bool = False
    verified_by: int | None = Field(default=None, foreign_key="users.id")
    source_key: str | None = None
    citation: str | None = _text()
    notes: str | None = _text()
    created_by: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)
    # Numbers that may have been pooled are never edited in place: a correction is a new row
    # pointing at the one it replaces, and the old row is withdrawn (kept, out of analyses).
    withdrawn_at: datetime | None = None
    withdrawn_by: int | None = Field(default=None, foreign_key="users.id")
    withdrawn_reason: str | None = _text()
    supersedes_id: int | None = Field(default=None, foreign_key="estimates.id")
    # What the curator typed for a derived HR (P value as text, events, O−E and V, medians…,
    # and the orientation), so a second reviewer can re-derive it and a correction can start
    # from it; None for a reported HR with CI. SQL NULL, not JSON null, when absent.
    derivation_inputs: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    # A reported HR and CI as typed from the paper ({"hr": "0.50", "ci_low": "0.41",
    # "ci_high": "0.62"}, in ``orientation_entered``): a float forgets that "0.50" was printed
    # with two decimals, which the Correct form gives back. None for a derived HR (its inputs
    # are above) and for rows older than 0012.
    printed: dict[str, str] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))


class BiasAssessment(SQLModel, table=True):
    """A Cochrane RoB 2 judgment of one trial's result for one endpoint. Append-only.

    Re-assessing adds a row: the newest per (trial, endpoint) is current, the older ones are
    its history (rules and queries in ``store.bias``). ``domains`` maps each of the five
    domain keys of ``store.bias.DOMAINS`` to ``{"judgment": "low" | "some_concerns" | "high",
    "support": text}``.
    """

    __tablename__ = "bias_assessments"

    id: int | None = Field(default=None, primary_key=True)
    trial_id: int = Field(foreign_key="trials.id", index=True)
    endpoint: str  # PFS | EFS | TTP | OS, as Estimate.endpoint
    domains: dict[str, Any] = _json({})
    overall: str  # low | some_concerns | high
    overall_note: str | None = _text()
    assessed_by: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)


class BaselineRisk(SQLModel, table=True):
    """The assumed control-arm risk of one analysis at one time point, from which the summary
    of findings turns the pooled HR into absolute effects (``reports.absolute``). Append-only.

    ``event_free`` is the proportion of control patients free of the analysis' event (alive
    and progression-free for PFS, alive for OS) ``months`` after randomisation, as read from a
    source the curator names (a trial's control arm, a registry). Entering a new one adds a
    row: the newest per analysis is current, the older ones are its history
    (``store.baselines``).
    """

    __tablename__ = "baseline_risks"

    id: int | None = Field(default=None, primary_key=True)
    analysis_key: str = Field(index=True)
    months: float
    event_free: float
    source: str = _text(nullable=False)
    entered_by: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)


class PooledResult(SQLModel, table=True):
    """A frozen snapshot of one analysis: inputs, settings, code version, result."""

    __tablename__ = "pooled_results"

    id: int | None = Field(default=None, primary_key=True)
    analysis_key: str = Field(index=True)
    analysis_label: str = ""
    method: str = "REML"
    ci_method: str = "hksj"
    k: int = 0
    estimate: float | None = None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    tau2: float | None = None
    i2: float | None = None
    q: float | None = None
    q_p: float | None = None
    result: dict[str, Any] = _json({})  # everything else (weights, leave-one-out, …)
    inputs: list[dict[str, Any]] = _json([])
    inputs_hash: str = Field(default="", index=True)
    settings: dict[str, Any] = _json({})
    code_version: str = ""
    computed_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- digests
class Digest(SQLModel, table=True):
    __tablename__ = "digests"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    period_start: datetime | None = None
    period_end: datetime = Field(default_factory=utcnow)
    subject: str = ""
    html: str = _text(nullable=False)
    text: str = _text(nullable=False)
    summary: dict[str, Any] = _json({})
    pooled_result_ids: list[int] = _json([])
    content_hash: str = Field(default="", index=True)


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"

    id: int | None = Field(default=None, primary_key=True)
    digest_id: int = Field(foreign_key="digests.id", index=True)
    channel: str = "outbox"  # outbox | smtp
    recipient: str | None = None
    status: str = "pending"  # pending | sent | failed | unknown (sent, no reply: may have arrived)
    attempts: int = 0
    error: str | None = _text()
    path: str | None = None
    message_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class Subscriber(SQLModel, table=True):
    """A digest recipient managed in the app (``store.subscribers``), beside the fixed
    ``MMLR_DIGEST_TO`` list.

    Rows are never deleted: unsubscribing clears ``active`` and stamps ``unsubscribed_at``,
    so the history stays auditable and the id never gets reused, which matters because the
    unsubscribe link is an HMAC of (id, e-mail) and stores no secret of its own.
    """

    __tablename__ = "subscribers"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True)  # normalised: stripped, lower-case
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = "system"  # an admin's e-mail, "cli" or "system"
    unsubscribed_at: datetime | None = None


# --------------------------------------------------------------------------- operations
class AuditLog(SQLModel, table=True):
    """Who did what, when. Append-only."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = "system"  # user e-mail or "system"
    # Indexed: the screening pool finds the seed trials by their action in every count.
    action: str = Field(index=True)
    object_type: str | None = None
    object_id: str | None = None
    details: dict[str, Any] = _json({})


class JobLock(SQLModel, table=True):
    """Lease-based lock (the SQLite equivalent of a PostgreSQL advisory lock)."""

    __tablename__ = "job_locks"

    name: str = Field(primary_key=True)
    holder: str
    acquired_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class KeyValue(SQLModel, table=True):
    """Small service state (e.g. the last digest cut-off), one row per key."""

    __tablename__ = "key_values"

    key: str = Field(primary_key=True)
    value: dict[str, Any] = _json({})
    updated_at: datetime = Field(default_factory=utcnow)
