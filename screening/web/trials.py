"""Trials and their reports: reading and checking what the forms and the API send, creating
and editing trials."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from screening.web.extraction import MIN_YEAR, SETTINGS, FieldErrors, _Reader
from store.audit import audit
from store.citation import locator
from store.errors import Statement, ValidationError
from store.fulltext import SoughtRule, outcomes, record_link_problem
from store.locks import session_transaction_lock
from store.models import Estimate, Record, Trial, TrialReport, User, utcnow
from store.trial_match import REGISTRY_ID, TrialIndex, name_key, registry_key

REPORT_KINDS: tuple[str, ...] = ("primary", "update", "abstract", "secondary")


def parse_registry_ids(text: str | None) -> tuple[list[str], str | None]:
    ids = [t for t in re.split(r"[\s,;]+", (text or "").strip().upper()) if t]
    bad = [t for t in ids if not REGISTRY_ID.match(t)]
    if bad:
        return [], (f"{bad[0]!r} is not a registry id (NCT12345678, EudraCT 2004-001234-56, "
                    "ISRCTN…, ACTRN…)")
    return list(dict.fromkeys(ids)), None


#: What a curator may set on a trial, with the words the messages use for each field.
TRIAL_FIELDS: dict[str, str] = {
    "name": "name", "drug": "drug", "regimen": "regimen", "comparator": "comparator",
    "setting": "setting", "is_strategy": "strategy trial", "registry_ids": "registry ids",
    "notes": "notes",
}
#: Fields whose change moves the trial's estimates between analyses (drug, strategy flag) or
#: relabels them (name): the next pool run writes new snapshots.
POOLED_FIELDS: tuple[str, ...] = ("name", "drug", "is_strategy")


def read_trial(session: Session, data: Mapping[str, Any], *,
               trial: Trial | None = None) -> dict[str, Any]:
    """The checked values of the trial form, for a new trial or for editing ``trial``.

    Raises FieldErrors naming each bad field. The name must be free (``trial`` itself
    excepted). Seed trials may be renamed too: ``mmlr init`` finds them by their source key.
    """
    r = _Reader(data)
    # Two curators creating (or renaming to) one name at once: the second waits for the first
    # to commit, then finds its name taken (without the lock both checks passed, and names
    # differing in case or spacing are not caught by the column's unique index).
    session_transaction_lock(session, TRIAL_NAMES_LOCK)
    name = r.line("name", max_len=200)
    if name is None and "name" not in r.errors:
        r.errors["name"] = "is required"
    elif name and (taken := _name_taken(session, name, trial)) is not None:
        r.errors["name"] = Statement(
            f"a trial named {name!r} already exists" if taken == name else
            f"trial {taken!r} already exists, and {name!r} differs from it only in case, "
            "spacing, punctuation or Unicode form (full-width letters, roman or arabic "
            "numerals): the same trial entered twice would be pooled twice")
    drug = r.line("drug", max_len=100)
    if drug is None and "drug" not in r.errors:
        r.errors["drug"] = "is required (the maintenance drug as pooled, e.g. lenalidomide)"
    setting = r.choice("setting", SETTINGS)
    registry_ids, problem = parse_registry_ids(r.text("registry_ids", max_len=500))
    if problem:
        r.errors["registry_ids"] = problem
    elif taken := registrations_taken(session, registry_ids, trial):
        r.errors["registry_ids"] = taken
    values = {"name": name or "", "drug": (drug or "").lower(), "setting": setting or "",
              "regimen": r.line("regimen", max_len=200),
              "comparator": r.line("comparator", max_len=200),
              "is_strategy": r.flag("is_strategy"), "registry_ids": registry_ids,
              "notes": r.text("notes", max_len=4000)}
    # Checked after every field is read: a too-long regimen or note is an error, not dropped.
    if r.errors:
        raise FieldErrors(r.errors)
    return values


def registrations_taken(session: Session, registry_ids: Sequence[str],
                        trial: Trial | None = None) -> str | None:
    """Why these registrations cannot be ``trial``'s (a new trial when None): one belongs to
    another trial of the review already. A registration is one trial, and a trial entered
    twice is pooled twice; None when they are free."""
    if not registry_ids:
        return None
    # The matcher's index of registrations (its reports are not needed here).
    index = TrialIndex(session.exec(select(Trial)).all(), reports=[])
    for rid in registry_ids:
        others = sorted(index.by_registry.get(registry_key(rid), set())
                        - {trial.id if trial is not None else None})
        if others:
            other = index.names[others[0]]
            return (f"{rid} is already the registration of {other}: a trial entered twice is "
                    f"pooled twice (add the record as a report of {other} instead)")
    return None


def report_screening_note(session: Session, pmid: int | None) -> str | None:
    """What a curator adding ``pmid`` as a trial's report should know about its place in the
    PRISMA flow: the flow counts a trial's report as included only once its record passed
    title/abstract screening and was settled eligible at full text, and is not deleted
    (``store.fulltext.record_link_problem``); any other becomes a report — its numbers are
    pooled once verified — that the flow does not count. Not a refusal: the seed evidence's
    reports were included by the review mmlr continues, not screened here, and one of them
    stored as a record needs no screening either (``store.screening_pool``: the flow counts
    it among that version's reports, whatever is decided on it). None when nothing is
    missing, or the PMID is not stored (nothing to screen yet)."""
    if pmid is None:
        return None
    record = session.get(Record, pmid)
    if record is None:
        return None
    linked = session.exec(select(TrialReport.id).where(TrialReport.pmid == pmid)).first()
    problem = record_link_problem(record, outcomes(session, [pmid])[pmid],
                                  linked=linked is not None,
                                  rule=SoughtRule.for_session(session))
    if problem is None:
        return None
    if problem == "deleted":
        return (f"PMID {pmid} was deleted from PubMed: the PRISMA flow does not count it as "
                "included; check that the trial's report is the right one.")
    if problem in ("awaiting", "ruled_out"):
        state = ("is settled as excluded or not retrieved at full text" if problem == "ruled_out"
                 else "has no settled full-text verdict yet")
        return (f"PMID {pmid} {state}: the PRISMA flow counts it as included only once its "
                f"full text is settled eligible (/records/{pmid}#fulltext).")
    state = "was excluded at title/abstract screening" if problem == "excluded_at_screening" \
        else "has no title/abstract decision yet"
    return (f"PMID {pmid} {state}: screen it on its record page (/records/{pmid}), then assess "
            "its full text, so that the PRISMA flow counts it as included.")


def retraction_warning(session: Session, pmid: int | None) -> str | None:
    """The warning for a curator who has just made ``pmid`` a trial's report while PubMed
    marks it retracted (``Record.retracted``, set by the monitor): a retracted paper's numbers
    are not evidence, and linking one used to pass without a word. Not a refusal: a trial's
    retracted report stays on record, flagged wherever the trial's reports are listed. None
    when the record is not stored or not retracted."""
    if pmid is None:
        return None
    record = session.get(Record, pmid)
    if record is None or not record.retracted:
        return None
    return (f"PMID {pmid} is marked retracted in PubMed: a retracted report's numbers are "
            "not evidence. Check the retraction notice on its record page "
            f"(/records/{pmid}) before entering or verifying any hazard ratio from it; its "
            "row among the trial's reports is marked retracted.")


def retracted_pmids(session: Session, pmids: Iterable[int | None]) -> set[int]:
    """Which of ``pmids`` PubMed marks retracted (the stored records' flag)."""
    wanted = {p for p in pmids if p is not None}
    if not wanted:
        return set()
    return set(session.exec(select(Record.pmid).where(
        col(Record.pmid).in_(wanted), col(Record.retracted).is_(True))).all())


def primary_report_of(session: Session, pmid: int) -> str | None:
    """The trial whose primary report this PMID is already, by name (None: none). A new
    trial created from such a record would most likely be the same trial entered twice."""
    return session.exec(select(Trial.name).join(TrialReport).where(
        TrialReport.pmid == pmid, TrialReport.kind == "primary")).first()


#: The lock a new or renamed trial's name is checked and written under.
TRIAL_NAMES_LOCK = "trial-names"


def _name_taken(session: Session, name: str, trial: Trial | None) -> str | None:
    """The name of another trial that ``name`` is, compared by ``name_key`` ("calgb-100104"
    is "CALGB 100104", "ＭＹＥＬＯＭＡ XI" is "Myeloma XI"), or None."""
    query = select(Trial.name)
    if trial is not None:
        query = query.where(Trial.id != trial.id)
    key = name_key(name)
    return next((other for other in session.exec(query)
                 if other == name or (key and name_key(other) == key)), None)


def create_trial(session: Session, data: Mapping[str, Any], *, user: User) -> Trial:
    trial = Trial(**read_trial(session, data))
    session.add(trial)
    session.flush()
    audit(session, "trial.add", actor=user.email, object_type="trial", object_id=trial.id,
          name=trial.name)
    return trial


def trial_form_values(trial: Trial) -> dict[str, str]:
    """The trial form's fields filled from a stored trial."""
    return {"name": trial.name, "drug": trial.drug, "regimen": trial.regimen or "",
            "comparator": trial.comparator or "", "setting": trial.setting,
            "is_strategy": "1" if trial.is_strategy else "",
            "registry_ids": ", ".join(trial.registry_ids or []), "notes": trial.notes or ""}


def trial_fingerprint(trial: Trial) -> str:
    """A short digest of the trial's form fields as stored: the edit form carries the one it
    was filled from, so an edit made meanwhile by someone else is not overwritten unseen."""
    text = json.dumps(trial_form_values(trial), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_json(trial: Trial) -> dict[str, Any]:
    """A trial's own fields as the JSON API gives them back after an edit, with its
    ``version`` (``screening.web.preconditions``)."""
    return {"id": trial.id, "name": trial.name, "drug": trial.drug, "regimen": trial.regimen,
            "comparator": trial.comparator, "setting": trial.setting,
            "is_strategy": trial.is_strategy, "registry_ids": list(trial.registry_ids or []),
            "notes": trial.notes, "version": trial_fingerprint(trial)}


@dataclass(frozen=True)
class TrialChange:
    """What an edit changed: old and new value of each changed field (empty: nothing)."""

    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)

    @property
    def affects_analyses(self) -> bool:
        return any(name in self.new for name in POOLED_FIELDS)

    def describe(self) -> str:
        """E.g. "drug lenalidomide → thalidomide; strategy trial no → yes"."""
        parts = []
        for name in self.new:
            label = TRIAL_FIELDS[name]
            if name == "notes":  # can be long: the audit log keeps both versions
                parts.append("notes edited")
            else:
                parts.append(f"{label} {_shown(self.old[name])} → {_shown(self.new[name])}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: {"old": self.old[name], "new": self.new[name]} for name in self.new}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(value)
    text = str(value or "—")
    # flashes travel in the session cookie: keep them short
    return text if len(text) <= 60 else text[:59] + "…"


def edit_trial(session: Session, trial: Trial, data: Mapping[str, Any], *,
               user: User) -> TrialChange:
    """Check ``data`` like a new trial and store what changed, audited as ``trial.edit`` with
    old and new values (the caller commits). Raises FieldErrors naming each bad field.

    The trial's estimates are not touched: the next pool run reads the trial's drug, name and
    strategy flag afresh (``reports.selection.load_candidates``). Each estimate keeps the setting
    it was entered with (a trial reported by stratum has several); ``Trial.setting`` is the
    default of new estimates.
    """
    values = read_trial(session, data, trial=trial)
    old = {name: getattr(trial, name) for name in values}
    old["registry_ids"] = list(old["registry_ids"] or [])  # a JSON column: may be NULL
    changed = [name for name in TRIAL_FIELDS if values[name] != old[name]]
    if not changed:
        return TrialChange()
    change = TrialChange(old={name: old[name] for name in changed},
                         new={name: values[name] for name in changed})
    for name in changed:
        setattr(trial, name, values[name])
    session.add(trial)
    session.flush()
    audit(session, "trial.edit", actor=user.email, object_type="trial", object_id=trial.id,
          name=trial.name, old=change.old, new=change.new)
    return change


def edit_message(session: Session, trial: Trial, change: TrialChange) -> str:
    """The one sentence the trial page (flash) and the JSON API give after an edit."""
    if not change.new:
        return f"Trial {trial.name}: nothing changed."
    text = f"Trial {trial.name} updated: {change.describe()}."
    if change.affects_analyses:
        text += (" The analyses will be recomputed with this change at the next pool run "
                 "(mmlr pool, mmlr run, the scheduled cycle, or Pool now on the estimates "
                 "page).")
    if "setting" in change.new:
        others = session.exec(select(Estimate.setting).where(
            Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None),
            Estimate.setting != trial.setting)).all()
        if others:
            counts = sorted(Counter(others).items())
            listed = ", ".join(f"{n} in {setting}" for setting, n in counts)
            text += (f" Its estimates keep the setting they were entered with ({listed}): "
                     "correct an estimate to move it to another analysis; new estimates "
                     f"default to {trial.setting}.")
    return text


#: Keys of a trial's JSON (``GET /api/trials``) that are not editable: a client may send the
#: JSON back with new values, so they are accepted (``id`` must be this trial's) and ignored
#: (``version`` is checked by the route: ``screening.web.preconditions``).
_READ_ONLY = ("id", "reports", "estimates", "risk_of_bias", "version")


def trial_data_from_json(trial: Trial, body: Mapping[str, Any]) -> dict[str, Any]:
    """The edit form's data for a JSON body: the stored values with the body's on top (a
    field left out keeps its value). Refuses unknown keys and values of the wrong type rather
    than reading ``"yes"`` as a strategy flag or 5 as a name."""
    unknown = sorted(set(body) - set(TRIAL_FIELDS) - set(_READ_ONLY))
    if unknown:
        raise ValidationError(f"unknown field {', '.join(map(repr, unknown))}",
                              hint=f"a trial's fields are {', '.join(TRIAL_FIELDS)}")
    if "id" in body and body["id"] != trial.id:
        raise ValidationError(f"id {body['id']!r} is not this trial's ({trial.id})",
                              hint="leave out id, or send the edit to that trial's URL")
    errors: dict[str, str] = {}
    data: dict[str, Any] = dict(trial_form_values(trial))
    for name in TRIAL_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if name == "is_strategy":
            if not isinstance(value, bool):
                errors[name] = "must be true or false"
        elif name == "registry_ids" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                errors[name] = "must be a string or a list of strings"
            value = ", ".join(v for v in value if isinstance(v, str))
        elif value is not None and not isinstance(value, str):
            errors[name] = "must be a string"
        data[name] = value
    if errors:
        raise FieldErrors(errors)
    return data


def _citation_and_year(r: _Reader) -> tuple[str | None, int | None]:
    """A report form's citation (required) and year, read into ``r`` (errors included)."""
    citation = r.line("citation", max_len=1000)
    if citation is None and "citation" not in r.errors:
        r.errors["citation"] = "is required (authors, journal, year)"
    year = r.integer("year", minimum=MIN_YEAR)
    # An estimate without a data cut date is dated by its report's year, and a trial's latest
    # cut is the one pooled: a typo (2031 for 2013) would replace every real later cut. An
    # issue dated next year is real (online in December, in print in January).
    latest = utcnow().year + 1
    if year is not None and year > latest:
        r.errors["year"] = (f"{year} is in the future: a report is published already (in an "
                            f"issue dated {latest} at the latest); check the year")
    return citation, year


def add_report(session: Session, trial: Trial, data: Mapping[str, Any], *,
               user: User) -> TrialReport:
    r = _Reader(data)
    pmid = r.integer("pmid", minimum=1)
    citation, year = _citation_and_year(r)
    kind = r.choice("kind", REPORT_KINDS, default="primary")
    if pmid is not None and session.exec(select(TrialReport.id).where(
            TrialReport.trial_id == trial.id, TrialReport.pmid == pmid)).first():
        r.errors["pmid"] = f"{pmid} is already a report of {trial.name}"
    others = other_trials_of(session, pmid, trial) if "pmid" not in r.errors else []
    if others and not r.flag(CONFIRM_OTHER_TRIAL):
        # A record linked to a second trial is pooled under both: only on purpose (a paper
        # reporting two trials), never by a slip of the trial list.
        r.errors[CONFIRM_OTHER_TRIAL] = (
            f"PMID {pmid} is already a report of {' and '.join(others)}. Tick the box to link "
            f"it to {trial.name} as well (a publication that reports two trials is a report "
            f"of each); if it was linked to the wrong trial, correct that report on "
            f"{others[0]}'s trial page instead")
    if r.errors:
        raise FieldErrors(r.errors)
    report = TrialReport(trial_id=trial.id, pmid=pmid, citation=citation or "",  # type: ignore[arg-type]
                         year=year, kind=kind or "primary")
    session.add(report)
    session.flush()
    extra = {"also_report_of": others} if others else {}
    audit(session, "report.add", actor=user.email, object_type="trial_report",
          object_id=report.id, trial=trial.name, pmid=pmid, **extra)
    return report


@dataclass(frozen=True)
class ReportChange:
    """What a correction of a report changed (old and new value of each field), and the
    withdrawn estimates that no longer name it (moved to another trial)."""

    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)
    detached: tuple[int, ...] = ()


def _estimates_from(session: Session, report: TrialReport) -> tuple[list[Estimate],
                                                                     list[Estimate]]:
    """The current and the withdrawn estimates taken from ``report``."""
    rows = session.exec(select(Estimate).where(Estimate.report_id == report.id)
                        .order_by(col(Estimate.id))).all()
    return ([e for e in rows if e.withdrawn_at is None],
            [e for e in rows if e.withdrawn_at is not None])


def _current_estimates_problem(current: Sequence[Estimate], trial: Trial, what: str) -> str:
    ids = ", ".join(str(e.id) for e in current)
    return (f"{_count(len(current), 'current estimate')} of {trial.name} "
            f"({'estimate' if len(current) == 1 else 'estimates'} {ids}) "
            f"{'comes' if len(current) == 1 else 'come'} from this report: withdraw or correct "
            f"{'it' if len(current) == 1 else 'them'} first (their numbers are pooled under "
            f"{trial.name}), then {what} the report")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def correct_report(session: Session, report: TrialReport, data: Mapping[str, Any], *,
                   user: User) -> ReportChange:
    """Correct a report linked wrongly: move it to another trial (``trial_id``), change its
    kind, citation or year; audited as ``report.edit`` with old and new values (the caller
    commits). Raises FieldErrors naming each bad field.

    A report some current estimate comes from is not moved: the estimate's numbers are
    pooled under the trial it was entered for (withdraw or correct it first). Withdrawn
    estimates from a moved report stay with their trial and no longer name it (the audit
    row lists them). Moving a PMID to a trial that has it already is refused, and to one
    while it is a report of a third trial needs the same confirmation as a new link."""
    r = _Reader(data)
    source = session.get(Trial, report.trial_id)
    assert source is not None  # a foreign key
    trial_id = r.integer("trial_id", minimum=1)
    target = source if trial_id is None and "trial_id" not in r.errors else (
        session.get(Trial, trial_id) if trial_id is not None else None)
    if target is None and "trial_id" not in r.errors:
        r.errors["trial_id"] = f"{trial_id} does not exist"
    kind = r.choice("kind", REPORT_KINDS, default=report.kind)
    citation, year = _citation_and_year(r)
    reason = r.text("reason", max_len=2000)
    current, withdrawn = _estimates_from(session, report)
    moving = target is not None and target.id != source.id
    if moving and target is not None and "trial_id" not in r.errors:
        if report.pmid is not None and session.exec(select(TrialReport.id).where(
                TrialReport.trial_id == target.id, TrialReport.pmid == report.pmid)).first():
            r.errors["trial_id"] = (f"PMID {report.pmid} is already a report of {target.name}: "
                                    f"unlink this report of {source.name} instead")
        elif current:
            r.errors["report"] = _current_estimates_problem(current, source, "move")
        elif (others := [n for n in other_trials_of(session, report.pmid, source)
                         if n != target.name]) and not r.flag(CONFIRM_OTHER_TRIAL):
            r.errors[CONFIRM_OTHER_TRIAL] = (
                f"PMID {report.pmid} is also a report of {' and '.join(others)}. Tick the box "
                f"to move it to {target.name} all the same")
    if r.errors or target is None:
        raise FieldErrors(r.errors)
    values: dict[str, Any] = {"trial": target.name, "kind": kind or report.kind,
                              "citation": citation or "", "year": year}
    old = {"trial": source.name, "kind": report.kind, "citation": report.citation,
           "year": report.year}
    changed = [name for name in values if values[name] != old[name]]
    if not changed:
        return ReportChange()
    report.trial_id = int(target.id or 0)
    report.kind, report.citation, report.year = values["kind"], values["citation"], year
    detached: tuple[int, ...] = ()
    if moving:
        detached = tuple(int(e.id or 0) for e in withdrawn)
        for estimate in withdrawn:
            estimate.report_id = None
            session.add(estimate)
    session.add(report)
    session.flush()
    change = ReportChange(old={n: old[n] for n in changed}, new={n: values[n] for n in changed},
                          detached=detached)
    extra: dict[str, Any] = {"detached_estimates": list(detached)} if detached else {}
    if reason:
        extra["reason"] = reason
    audit(session, "report.edit", actor=user.email, object_type="trial_report",
          object_id=report.id, trial=target.name, pmid=report.pmid, old=change.old,
          new=change.new, **extra)
    return change


def unlink_report(session: Session, report: TrialReport, data: Mapping[str, Any], *,
                  user: User) -> tuple[int, ...]:
    """Remove a report from its trial (the record, if stored, stays, with its screening);
    audited as ``report.unlink`` with what the report was. Refused (FieldErrors on
    ``report``) while a current estimate comes from it; withdrawn ones no longer name it.
    Returns the ids of those withdrawn estimates."""
    r = _Reader(data)
    reason = r.text("reason", max_len=2000)
    trial = session.get(Trial, report.trial_id)
    assert trial is not None
    current, withdrawn = _estimates_from(session, report)
    if current:
        r.errors["report"] = _current_estimates_problem(current, trial, "unlink")
    if r.errors:
        raise FieldErrors(r.errors)
    for estimate in withdrawn:
        estimate.report_id = None
        session.add(estimate)
    session.flush()
    detached = tuple(int(e.id or 0) for e in withdrawn)
    extra: dict[str, Any] = {"detached_estimates": list(detached)} if detached else {}
    if reason:
        extra["reason"] = reason
    audit(session, "report.unlink", actor=user.email, object_type="trial_report",
          object_id=report.id, trial=trial.name, pmid=report.pmid, kind=report.kind,
          citation=report.citation, year=report.year, **extra)
    session.delete(report)
    session.flush()
    return detached


def report_change_words(change: ReportChange) -> str:
    """E.g. "trial CALGB 100104 → IFM 2005-02; kind primary → update"."""
    return "; ".join(f"{name} {_shown(change.old[name])} → {_shown(change.new[name])}"
                     for name in change.new)


#: The form field that confirms linking a PMID that is already another trial's report.
CONFIRM_OTHER_TRIAL = "confirm_other_trial"


def other_trials_of(session: Session, pmid: int | None, trial: Trial | None) -> list[str]:
    """The names of the trials other than ``trial`` that ``pmid`` is a report of."""
    if pmid is None:
        return []
    query = select(Trial.name).join(TrialReport).where(TrialReport.pmid == pmid)
    if trial is not None and trial.id is not None:
        query = query.where(TrialReport.trial_id != trial.id)
    return list(session.exec(query.order_by(col(Trial.name))).all())


def also_reported_words(session: Session, report: TrialReport) -> str:
    """" It is also a report of …" after a link, naming the other trials the PMID reports
    ("" when none)."""
    trial = session.get(Trial, report.trial_id)
    others = other_trials_of(session, report.pmid, trial)
    return f" It is also a report of {' and '.join(others)}." if others else ""


# A trial's short name in a title's parentheses: "(CALGB 100104)", "(TOURMALINE-MM3)",
# "(Myeloma XI)". Abbreviations of one word without a digit ("(ASCT)", "(PFS)") are not names.
_NAME_IN_TITLE = re.compile(r"\(([A-Z][A-Za-z0-9]*(?:[ ./#-]+[A-Za-z0-9]+)*)\)")


def trial_name_from_title(title: str | None) -> str:
    """The trial name a title gives in parentheses, or "" (the curator types it)."""
    for m in _NAME_IN_TITLE.finditer(title or ""):
        name = m.group(1)
        if any(ch.isdigit() for ch in name) or re.search(r"[ ./#-]", name):
            return name
    return ""


#: Maintenance drugs a title names (the first one named is the drug as pooled: a trial of
#: "thalidomide-interferon" pools with thalidomide, as the seed does).
MAINTENANCE_DRUGS = ("lenalidomide", "thalidomide", "pomalidomide", "bortezomib", "ixazomib",
                     "carfilzomib", "daratumumab", "isatuximab", "elotuzumab", "interferon")
_DRUG = re.compile(r"\b(" + "|".join(MAINTENANCE_DRUGS) + r")\b", re.IGNORECASE)
_TRANSPLANT = r"(?:autologous |stem[- ]cell )*transplant"
_NON_TRANSPLANT = re.compile(
    rf"transplant(?:ation)?[- ]ineligible|(?:ineligible|not eligible) for {_TRANSPLANT}"
    r"|non[- ]?transplant", re.IGNORECASE)
_POST_ASCT = re.compile(r"\bASCT\b|autologous (?:stem[- ]cell )?transplant|high[- ]dose melphalan",
                        re.IGNORECASE)
_COMPARATOR = re.compile(
    r"\b(?:versus|vs\.?|compared with)\s+(placebo|observation|no maintenance|no further therapy)\b",
    re.IGNORECASE)


def _setting_from_text(*texts: str | None) -> str:
    """post_asct or non_transplant when the first text that says either says only one."""
    for text in texts:
        if not text:
            continue
        non, post = bool(_NON_TRANSPLANT.search(text)), bool(_POST_ASCT.search(text))
        if non != post:
            return "non_transplant" if non else "post_asct"
        if non and post:
            return ""  # both populations: the curator decides (mixed, or strata)
    return ""


def new_trial_values(record: Record) -> dict[str, str]:
    """The new-trial form filled from the record it is created from: the name in the title's
    parentheses, the first maintenance drug the title names, the setting when the title (or
    else the abstract) names one population only, a no-treatment comparator named after
    "versus", and the record's registrations. Guesses, shown for the curator to check."""
    drug = _DRUG.search(record.title or "")
    comparator = _COMPARATOR.search(record.title or "") or _COMPARATOR.search(
        record.abstract or "")
    return {"name": trial_name_from_title(record.title),
            "drug": drug.group(1).lower() if drug else "",
            "setting": _setting_from_text(record.title, record.abstract),
            "comparator": comparator.group(1).lower() if comparator else "",
            "registry_ids": ", ".join(record.nct_ids or []), "from_pmid": str(record.pmid)}


def record_citation(record: Record) -> str:
    """A first citation of a record for its report row ("Holstein SA et al. Lancet Haematol
    2017;4(9):e431-42", the seed evidence's form); without volume and pages (online first, or
    stored before they were kept) the curator may complete it on the record page."""
    authors = list(record.authors or [])
    who = (authors[0] if len(authors) == 1 else f"{authors[0]} et al.") if authors else ""
    where = " ".join(str(x) for x in (record.journal_abbrev or record.journal, record.year) if x)
    place = locator(record.volume, record.issue, record.pages, record.elocation)
    if where and place:
        where += ("" if place.startswith(":") else ";") + place
    return " ".join(part for part in (who, where) if part) or f"PMID {record.pmid}"


def link_record(session: Session, record: Record, data: Mapping[str, Any], *,
                user: User) -> tuple[Trial, TrialReport, list[str]]:
    """Add ``record`` as a report of the trial the form names (``trial_id``, with the report's
    ``kind``, ``citation`` and ``year``). With ``add_registry`` set, the record's registry ids
    the trial does not have yet are added to it (PubMed's DataBank list is the registry's own
    cross-reference). Returns the trial, the report and the ids added; raises FieldErrors."""
    r = _Reader(data)
    trial_id = r.integer("trial_id", minimum=1)
    trial = session.get(Trial, trial_id) if trial_id is not None else None
    if trial is None and "trial_id" not in r.errors:
        # The form shows "<label> <error>": "Trial is required: …", "Trial 999 does not exist".
        r.errors["trial_id"] = ("is required: choose a trial of the review" if trial_id is None
                                else f"{trial_id} does not exist")
    if r.errors or trial is None:
        raise FieldErrors(r.errors)
    try:
        report = add_report(session, trial, {**data, "pmid": str(record.pmid)}, user=user)
    except FieldErrors as exc:
        # add_report's rule (one report per PMID and trial) speaks of the PMID; the record
        # page's form has no PMID field, so the error belongs to the trial chosen.
        errors = dict(exc.fields)
        if "pmid" in errors:
            errors["trial_id"] = f"PMID {errors.pop('pmid')}"
        raise FieldErrors(errors) from None
    added: list[str] = []
    if r.flag("add_registry"):
        have = set(trial.registry_ids or [])
        added = [rid for rid in parse_registry_ids(" ".join(record.nct_ids or []))[0]
                 if rid not in have]
        if taken := registrations_taken(session, added, trial):
            raise FieldErrors({"add_registry": taken})
        if added:
            old = list(trial.registry_ids or [])
            trial.registry_ids = [*old, *added]
            session.add(trial)
            audit(session, "trial.edit", actor=user.email, object_type="trial",
                  object_id=trial.id, name=trial.name, old={"registry_ids": old},
                  new={"registry_ids": trial.registry_ids}, source=f"PMID {record.pmid}")
    return trial, report, added
