"""`mmlr init`: schema, seed evidence and the first admin.

The seed evidence (``monitor/seed/trials.csv`` and ``estimates.csv``) holds facts and figures
about the maintenance trials — names, PMIDs, drugs, settings, hazard ratios with their CIs,
arm sizes — each with its citation. The numbers were taken from ``../shared/data/trials/``
(see ``docs/seed-evidence.md``). Loading is idempotent: rows are matched on natural keys
and only missing ones are added, so curator edits made later are never overwritten.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlmodel import Session, select

from store.audit import SEED_TRIAL, audit
from store.context import AppContext
from store.errors import ValidationError
from store.locks import transaction_lock
from store.models import AuditLog, Estimate, Trial, TrialReport, User

log = logging.getLogger(__name__)

SEED_PACKAGE = "monitor.seed"


@dataclass
class SeedSummary:
    trials_added: int = 0
    reports_added: int = 0
    estimates_added: int = 0


@dataclass
class InitReport:
    seed: SeedSummary
    admin_email: str | None = None
    admin_password: str | None = None  # only when generated: shown once
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            "schema at the newest revision",
            f"seed evidence: {self.seed.trials_added} trials, {self.seed.reports_added} reports, "
            f"{self.seed.estimates_added} estimates added",
        ]
        if self.admin_email and self.admin_password:
            lines.append(
                f"admin {self.admin_email} created; password (shown once): {self.admin_password}"
            )
        elif self.admin_email:
            lines.append(f"admin {self.admin_email} created (password from MMLR_ADMIN_PASSWORD)")
        lines.extend(self.notes)
        return "\n".join(lines)


def _read_seed(name: str) -> list[dict[str, str]]:
    text = resources.files(SEED_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _opt_int(value: str) -> int | None:
    return int(value) if value.strip() else None


def _flag(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


#: Seed citations an earlier version of the seed files worded differently for the same
#: publication: (source key, old wording) -> the wording the seed uses now. ``mmlr init``
#: before 2026-12-02 made GBRAM0001 two reports of its one ASH abstract (the trial's row said
#: "(ASH abstract, interim)", the estimate's "(ASH abstract)"), which the PRISMA flow counted
#: as two publications of the previous version.
SUPERSEDED_CITATIONS: dict[tuple[str, str], str] = {
    ("MAIOLINO2008ASH", "Maiolino A et al. Blood 2008;112(11):3703 (ASH abstract)"):
        "Maiolino A et al. Blood 2008;112(11):3703 (ASH abstract, interim)",
}


def merge_superseded_reports(session: Session) -> int:
    """Correct a database an earlier seed loaded: a seed report under a superseded wording
    (:data:`SUPERSEDED_CITATIONS`) is merged into the trial's report under the current one
    (its estimates point there, the old row is deleted), or reworded when the trial has no
    such report. Returns how many reports were merged; each change is audited. A curator's
    report (no source key) is never touched."""
    merged = 0
    for (source_key, old), new in SUPERSEDED_CITATIONS.items():
        stale = session.exec(select(TrialReport).where(
            TrialReport.source_key == source_key, TrialReport.citation == old)).all()
        for report in stale:
            keep = session.exec(select(TrialReport).where(
                TrialReport.trial_id == report.trial_id, TrialReport.source_key == source_key,
                TrialReport.citation == new)).first()
            if keep is None:
                report.citation = new
                session.add(report)
                audit(session, "seed.report_reworded", object_type="trial_report",
                      object_id=report.id, source_key=source_key)
                continue
            for estimate in session.exec(select(Estimate).where(
                    Estimate.report_id == report.id)):
                estimate.report_id = keep.id
                session.add(estimate)
            session.flush()
            session.delete(report)
            session.flush()
            merged += 1
            log.info("seed: merged report %s (%s) into report %s, the same publication",
                     report.id, old, keep.id)
            audit(session, "seed.report_merged", object_type="trial_report",
                  object_id=keep.id, merged_id=report.id, source_key=source_key)
    return merged


def load_seed_evidence(session: Session) -> SeedSummary:
    """Add the seed trials, their reports and estimates that are not stored yet (after
    :func:`merge_superseded_reports` corrected what an earlier seed loaded)."""
    from reports.derive import from_ci

    summary = SeedSummary()
    merge_superseded_reports(session)
    stored = session.exec(select(Trial)).all()
    trials: dict[str, Trial] = {t.name: t for t in stored}
    # A seed trial is found by its source key (kept in its "seed.trial" audit row), not only
    # by name: curators may rename it, and a renamed seed trial must not be added again.
    by_id = {str(t.id): t for t in stored}
    seeded: dict[str, Trial] = {}
    for object_id, details in session.exec(select(AuditLog.object_id, AuditLog.details).where(
            AuditLog.action == SEED_TRIAL, AuditLog.object_type == "trial")):
        key = (details or {}).get("source_key")
        if key and str(object_id) in by_id:
            seeded[str(key)] = by_id[str(object_id)]
    for row in _read_seed("trials.csv"):
        trial = seeded.get(row["source_key"]) or trials.get(row["trial"])
        if trial is not None:
            trials[row["trial"]] = trial  # estimates.csv names trials by their seed name
        if trial is None:
            trial = Trial(
                name=row["trial"],
                drug=row["drug"],
                regimen=row["regimen"] or None,
                comparator=row["comparator"] or None,
                setting=row["setting"],
                is_strategy=_flag(row["is_strategy"]),
                notes=row["notes"] or None,
            )
            session.add(trial)
            session.flush()
            trials[trial.name] = trial
            summary.trials_added += 1
            audit(
                session,
                SEED_TRIAL,
                object_type="trial",
                object_id=trial.id,
                source_key=row["source_key"],
            )
        _, added = _ensure_report(
            session,
            trial,
            pmid=_opt_int(row["pmid"]),
            citation=row["citation"],
            year=_opt_int(row["year"]),
            source_key=row["source_key"],
            kind="primary",
        )
        summary.reports_added += added

    existing: set[tuple[object, ...]] = {
        (e.trial_id, e.endpoint, e.setting, e.source_key, e.comparison)
        for e in session.exec(select(Estimate)).all()
    }
    for lineno, row in enumerate(_read_seed("estimates.csv"), start=2):
        trial = trials.get(row["trial"])
        if trial is None:
            raise ValidationError(
                f"seed estimates.csv line {lineno}: trial {row['trial']!r} is not in trials.csv"
            )
        key = (trial.id, row["endpoint"], row["setting"], row["source_key"], row["comparison"])
        if key in existing:
            continue
        # strings keep the printed digits, which the asymmetry check needs
        derived = from_ci(row["hr"], row["ci_low"], row["ci_high"], orientation=row["orientation"])
        hr, lo, hi = float(row["hr"]), float(row["ci_low"]), float(row["ci_high"])
        if row["orientation"] == "control_vs_maint":  # stored as maintenance vs control
            hr, lo, hi = 1 / hr, 1 / hi, 1 / lo
        report, added = _ensure_report(
            session,
            trial,
            pmid=_opt_int(row["pmid"]),
            citation=row["citation"],
            year=_opt_int(row["report_year"]),
            source_key=row["source_key"],
            kind="primary" if row["pmid"] else "secondary",
        )
        summary.reports_added += added
        estimate = Estimate(
            trial_id=trial.id,  # type: ignore[arg-type]
            report_id=report.id,
            endpoint=row["endpoint"],
            setting=row["setting"],
            comparison=row["comparison"],
            hr=hr,
            ci_low=lo,
            ci_high=hi,
            log_hr=derived.log_hr,
            se=derived.se,
            method=derived.method,
            approximate=derived.approximate,
            orientation_entered=row["orientation"],
            data_cut_label=row["data_cut_label"] or None,
            n_maintenance=_opt_int(row["n_maintenance"]),
            n_control=_opt_int(row["n_control"]),
            verified=_flag(row["verified"]),
            source_key=row["source_key"],
            citation=row["citation"],
            notes=row["notes"] or None,
            # as printed (in the orientation entered), like an estimate typed on the form:
            # a one-trial analysis shows these digits (reports.presentation)
            printed={name: row[name].strip() for name in ("hr", "ci_low", "ci_high")},
        )
        session.add(estimate)
        session.flush()
        existing.add(key)
        summary.estimates_added += 1
        audit(
            session,
            "seed.estimate",
            object_type="estimate",
            object_id=estimate.id,
            trial=trial.name,
            source_key=row["source_key"],
        )
    return summary


def _find_report(
    session: Session, trial: Trial, source_key: str, citation: str
) -> TrialReport | None:
    return session.exec(
        select(TrialReport).where(
            TrialReport.trial_id == trial.id,
            TrialReport.source_key == source_key,
            TrialReport.citation == citation,
        )
    ).first()


def _ensure_report(session: Session, trial: Trial, **fields: Any) -> tuple[TrialReport, int]:
    """The report with this source and citation, added when missing (and 1 if it was).

    A PMID is one publication: a seed row citing it again under other words (an estimate
    read from the conference abstract of the paper whose PMID the row gives) uses the trial's
    report of that PMID rather than a second one."""
    found = _find_report(session, trial, fields["source_key"], fields["citation"])
    if found is None and fields.get("pmid"):
        found = session.exec(select(TrialReport).where(
            TrialReport.trial_id == trial.id, TrialReport.pmid == fields["pmid"])).first()
    if found is not None:
        return found, 0
    report = TrialReport(trial_id=trial.id, **fields)  # type: ignore[arg-type]
    session.add(report)
    session.flush()
    return report, 1


def seed_pmids(session: Session) -> set[int]:
    """PMIDs of the protocol's known reports (the classifier's cold-start includes)."""
    return {p for p in session.exec(select(TrialReport.pmid)).all() if p}


def ensure_admin(ctx: AppContext, session: Session) -> tuple[str | None, str | None]:
    """Create the first admin when there is none. Returns (email, generated password)."""
    from screening.web.auth import add_user, check_password_strength

    if session.exec(select(User).where(User.role == "admin")).first() is not None:
        return None, None
    settings = ctx.settings
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    if given is not None:
        try:  # checked here too, so that the error names the setting it came from
            check_password_strength(given, settings.admin_email)
        except ValidationError as exc:
            hint = f"{exc.hint or 'choose another'}; or leave it unset to have one generated"
            raise ValidationError(f"MMLR_ADMIN_PASSWORD: {exc.message}", hint=hint) from None
    generated = add_user(session, settings.admin_email, role="admin", password=given)
    return settings.admin_email, (None if given else generated)


def initialise(ctx: AppContext) -> InitReport:
    """Everything `mmlr init` does (the schema is already at head: make_context migrated it).

    One init at a time, in one transaction under the lock ``init``: two containers starting
    together on a new database both found no seed and inserted it, and all but one stopped
    with an internal error (the trials' unique name). A later init waits, then finds the
    seed and the admin the first committed, and adds nothing."""
    with ctx.engine.connect() as conn:
        transaction_lock(conn, "init")
        with Session(bind=conn, expire_on_commit=False) as session:
            seed = load_seed_evidence(session)
            email, password = ensure_admin(ctx, session)
            session.commit()  # the flush: the transaction is the connection's, begun above
        conn.commit()
    log.info("init: %s trials, %s estimates added", seed.trials_added, seed.estimates_added)
    return InitReport(seed=seed, admin_email=email, admin_password=password)
