"""Trials and their reports: reading and checking what the forms send."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from screening.web.extraction import SETTINGS, FieldErrors, _Reader
from store.audit import audit
from store.models import Trial, TrialReport, User

REPORT_KINDS: tuple[str, ...] = ("primary", "update", "abstract", "secondary")
# ClinicalTrials.gov, EudraCT, ISRCTN and the Australian/NZ registry: the ones myeloma trials use.
_REGISTRY_ID = re.compile(
    r"^(NCT\d{8}|\d{4}-\d{6}-\d{2}|ISRCTN\d{8}|ACTRN\d{14}|EUCTR\d{4}-\d{6}-\d{2}(-[A-Z]{2})?)$"
)


def parse_registry_ids(text: str | None) -> tuple[list[str], str | None]:
    ids = [t for t in re.split(r"[\s,;]+", (text or "").strip().upper()) if t]
    bad = [t for t in ids if not _REGISTRY_ID.match(t)]
    if bad:
        return [], (f"{bad[0]!r} is not a registry id (NCT12345678, EudraCT 2004-001234-56, "
                    "ISRCTN…, ACTRN…)")
    return list(dict.fromkeys(ids)), None


def create_trial(session: Session, data: Mapping[str, Any], *, user: User) -> Trial:
    r = _Reader(data)
    name = r.text("name", max_len=200)
    if name is None and "name" not in r.errors:
        r.errors["name"] = "is required"
    elif name and session.exec(select(Trial).where(Trial.name == name)).first() is not None:
        r.errors["name"] = f"a trial named {name!r} already exists"
    drug = r.text("drug", max_len=100)
    if drug is None and "drug" not in r.errors:
        r.errors["drug"] = "is required (the maintenance drug as pooled, e.g. lenalidomide)"
    setting = r.choice("setting", SETTINGS)
    registry_ids, problem = parse_registry_ids(r.text("registry_ids", max_len=500))
    if problem:
        r.errors["registry_ids"] = problem
    if r.errors:
        raise FieldErrors(r.errors)
    trial = Trial(name=name or "", drug=(drug or "").lower(), setting=setting or "",
                  regimen=r.text("regimen", max_len=200),
                  comparator=r.text("comparator", max_len=200), is_strategy=r.flag("is_strategy"),
                  registry_ids=registry_ids, notes=r.text("notes", max_len=4000))
    session.add(trial)
    session.flush()
    audit(session, "trial.add", actor=user.email, object_type="trial", object_id=trial.id,
          name=trial.name)
    return trial


def add_report(session: Session, trial: Trial, data: Mapping[str, Any], *,
               user: User) -> TrialReport:
    r = _Reader(data)
    pmid = r.integer("pmid", minimum=1)
    citation = r.text("citation", max_len=1000)
    if citation is None and "citation" not in r.errors:
        r.errors["citation"] = "is required (authors, journal, year)"
    year = r.integer("year", minimum=1900)
    if year is not None and year > 2100:
        r.errors["year"] = "must be a four-digit year"
    kind = r.choice("kind", REPORT_KINDS, default="primary")
    if r.errors:
        raise FieldErrors(r.errors)
    report = TrialReport(trial_id=trial.id, pmid=pmid, citation=citation or "",  # type: ignore[arg-type]
                         year=year, kind=kind or "primary")
    session.add(report)
    session.flush()
    audit(session, "report.add", actor=user.email, object_type="trial_report",
          object_id=report.id, trial=trial.name, pmid=pmid)
    return report
