"""What the digest says about the network meta-analysis: a compact snapshot of each fitted
network, kept in the digest's summary, the changes since the previous digest's snapshot, and
a network's history over the digests (the network page's "over time" tables, one per
reference).

A digest says what changed (DESIGN §4). For a network that is: it was fitted for the first
time (saying too whether its direct and indirect evidence disagree, p < 0.05 between
designs, in a random-effects network with the heterogeneity within designs taken into
account, for it cannot "start" disagreeing later, and which treatments are left out as not
connected to the reference) or can no longer be; trials or treatments joined; a
treatment's HR against the reference moved (as shown: two decimals, half-up, as the page
writes it) or its CI now includes or excludes 1; the reference itself changed (no
maintenance joined a network that was expressed against its most compared treatment), when
HRs against two references are not compared; another treatment now ranks first; direct and
indirect evidence started or stopped disagreeing; the treatments not connected to the
reference changed; trials joined or left (named: a trial swapped for another leaves the count
as it was) or are fitted with another estimate. Networks without such a change are counted,
not listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from reports.network import NetworkResult
from reports.network_inputs import Fitted
from reports.small_study import p_text
from reports.words import hr_ci_text, rounded
from store.models import Digest

INCONSISTENCY_P = 0.05


def snapshot(items: Sequence[Fitted]) -> dict[str, dict[str, Any]]:
    """The fitted networks by key, with what the next digest compares."""
    out: dict[str, dict[str, Any]] = {}
    for net, res, _ in items:
        if res is None:
            continue
        vs = {}
        for t in res.treatments[1:]:
            rel = res.relative(t, res.reference)
            vs[t] = [_hr(rel.log_hr), _hr(rel.ci_low), _hr(rel.ci_high)]
        ranking = res.ranking()
        out[net.key] = {
            "label": net.label, "reference": res.reference, "studies": res.studies,
            "treatments": res.treatments, "vs_reference": vs,
            "best": ranking[0][0], "best_p_score": _kept(ranking[0][1]),
            # Krahn's random-effects Q between designs in a random-effects network
            # (heterogeneity within designs is not inconsistency), common-effect otherwise.
            "inconsistency_p": res.inconsistency.p,
            "inconsistency_model": "random" if res.q_between_random is not None else "common",
            # Treatments whose trials are not connected to the reference: not in the HRs.
            "unconnected": res.unconnected, "unconnected_note": res.disconnection_note,
            # What was fitted, so the digest's numbers can be audited later (DESIGN §4).
            "method": res.method, "tau2": res.tau2,
            "inputs": [[c.study, c.treat, c.control, c.estimate_id] for c in res.contrasts],
        }
    return out


def _kept(value: float) -> float:
    # Kept to 6 decimals like the digest's other machine numbers and written by
    # reports.words when shown: rounding here with round() would be half-even on the binary
    # value (1.025 -> 1.02 where the page says 1.03) and turn an HR below 0.005 into 0.
    return round(value, 6)


def _hr(log_value: float) -> float:
    return _kept(math.exp(log_value))


def _text(hr: Sequence[float]) -> str:
    return hr_ci_text(hr[0], hr[1], hr[2])  # "0.54 (0.45–0.65)", as every HR of the digest


def _crosses(hr: Sequence[float]) -> bool:
    return hr[1] <= 1.0 <= hr[2]


def changes(before: dict[str, dict[str, Any]] | None, after: dict[str, dict[str, Any]]
            ) -> tuple[list[dict[str, Any]], int]:
    """The networks to list (key, label, lines, current rows) and how many are unchanged.
    ``before`` None: no earlier digest kept a snapshot, so every network is new."""
    before = before or {}
    listed: list[dict[str, Any]] = []
    unchanged = 0
    for key, now in after.items():
        was = before.get(key)
        lines = _lines(was, now)
        if not lines:
            unchanged += 1
            continue
        rows = [{"treatment": t, "hr": _text(hr), "crosses_one": _crosses(hr)}
                for t, hr in now["vs_reference"].items()]
        listed.append({"key": key, "label": now["label"], "reference": now["reference"],
                       "lines": lines, "rows": rows, "best": now["best"],
                       "best_p_score": now["best_p_score"]})
    for key, was in before.items():
        if key not in after:
            listed.append({"key": key, "label": was["label"], "reference": was["reference"],
                           "lines": ["No longer fitted: fewer than three connected treatments "
                                     "or no verified estimates."], "rows": [], "best": None,
                           "best_p_score": None})
    return listed, unchanged


def _lines(was: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    p_now = now.get("inconsistency_p")
    if was is None:
        first = [f"Fitted for the first time: {now['studies']} trials, "
                 f"{len(now['treatments'])} treatments."]
        # A network that disagrees from its first fit never "starts" disagreeing: without
        # this, its first digest, the one a reader sees it in, would not say so at all.
        if p_now is not None and p_now < INCONSISTENCY_P:
            first.append(f"Direct and indirect evidence disagree ({p_text(p_now)}).")
        first.extend(_unconnected(now))
        return first
    lines: list[str] = []
    lines.extend(_trials(was, now))
    joined = [t for t in now["treatments"] if t not in was["treatments"]]
    left = [t for t in was["treatments"] if t not in now["treatments"]]
    if joined:
        lines.append(f"Joined the network: {', '.join(joined)}.")
    if left:
        lines.append(f"Left the network: {', '.join(left)}.")
    # (a snapshot from before this was kept has none: a disconnection is said once)
    if was.get("unconnected", []) != now.get("unconnected", []):
        lines.extend(_unconnected(now) or [
            f"Every treatment is now connected to {now['reference']}."])
    # An HR against thalidomide and one against no maintenance are different comparisons:
    # when the reference changed (``reports.network_inputs`` takes no maintenance once the
    # network has it), a move between them would be no move at all.
    if was["reference"] != now["reference"]:
        lines.append(f"The reference is now {now['reference']}, was {was['reference']}: "
                     "HRs are not compared.")
    else:
        lines.extend(_moves(was["vs_reference"], now["vs_reference"], now["reference"]))
    if now["best"] != was["best"]:
        lines.append(f"Highest P-score: {was['best']} → {now['best']} "
                     f"({rounded(now['best_p_score'])}).")
    p_was = was.get("inconsistency_p")
    # A snapshot from before random-effects networks were judged on Krahn's random-effects Q
    # between designs kept the common-effect p: its "disagree" going away is no news.
    same_measure = (was.get("inconsistency_model", "common")
                    == now.get("inconsistency_model", "common"))
    if p_now is not None and p_now < INCONSISTENCY_P and not (
            p_was is not None and p_was < INCONSISTENCY_P):
        lines.append(f"Direct and indirect evidence now disagree ({p_text(p_now)}).")
    elif p_was is not None and p_was < INCONSISTENCY_P and not (
            p_now is not None and p_now < INCONSISTENCY_P) and same_measure:
        lines.append("Direct and indirect evidence no longer disagree.")
    return lines


def _trials(was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The trials that joined or left the network, and those fitted with another estimate
    (a new data cut): the count alone missed a trial swapped for another. A snapshot from
    before the inputs were kept is compared on the count."""
    if "inputs" not in was or "inputs" not in now:
        return ([f"Trials: {was['studies']} → {now['studies']}."]
                if now["studies"] != was["studies"] else [])
    used_was: dict[str, set[Any]] = {}
    used_now: dict[str, set[Any]] = {}
    for inputs, used in ((was["inputs"], used_was), (now["inputs"], used_now)):
        for study, _treat, _control, estimate_id in inputs:
            used.setdefault(study, set()).add(estimate_id)
    joined = sorted(set(used_now) - set(used_was), key=str.casefold)
    left = sorted(set(used_was) - set(used_now), key=str.casefold)
    other = sorted((t for t in set(used_now) & set(used_was) if used_now[t] != used_was[t]),
                   key=str.casefold)
    lines = []
    if joined or left:
        which = "; ".join(f"{what}: {', '.join(names)}"
                          for what, names in (("joined", joined), ("left", left)) if names)
        lines.append(f"Trials: {was['studies']} → {now['studies']} ({which}).")
    if other:
        lines.append(f"Fitted with another estimate: {', '.join(other)}.")
    return lines


def _unconnected(now: dict[str, Any]) -> list[str]:
    """The line naming the treatments left out as not connected to the reference, if any."""
    note = now.get("unconnected_note")
    return [f"{note[0].upper()}{note[1:]}."] if note else []


def _moves(was: dict[str, list[float]], now: dict[str, list[float]], reference: str
           ) -> list[str]:
    """Each treatment's HR against the same ``reference`` that moved between two snapshots."""
    lines: list[str] = []
    for t, hr in now.items():
        old = was.get(t)
        # Moved as the reader sees it: digits that print the same are no change (snapshots
        # before 2026-12-02 kept two decimals, and compare the same way).
        if old is None or (_text(old) == _text(hr) and _crosses(old) == _crosses(hr)):
            continue
        text = f"{t} vs {reference}: HR {_text(old)} → {_text(hr)}"
        if _crosses(old) and not _crosses(hr):
            text += "; the CI now excludes 1"
        elif _crosses(hr) and not _crosses(old):
            text += "; the CI now includes 1"
        lines.append(text + ".")
    return lines


def history(session: Session, key: str) -> list[dict[str, Any]]:
    """A network as each digest froze it, oldest first: the digest, its date, the trials, the
    best-ranked treatment and every treatment's HR against the reference (None where it was
    not in the network then). A living review's readers ask what the last update changed;
    this is the answer for the network, from the digests' own snapshots, not recomputed."""
    rows: list[dict[str, Any]] = []
    # Only the summary's networks, extracted by the database (JSON path on SQLite and
    # PostgreSQL alike): a summary also lists every flagged PMID, which this does not need.
    networks = col(Digest.summary)["networks"]
    stmt = select(Digest.id, Digest.period_end, networks).order_by(col(Digest.id))
    for digest_id, period_end, snaps in session.exec(stmt):
        snap = (snaps or {}).get(key) if isinstance(snaps, dict) else None
        if snap is None:
            continue
        rows.append({"digest_id": digest_id, "date": period_end, "studies": snap["studies"],
                     "reference": snap["reference"], "best": snap["best"],
                     "vs_reference": {t: _text(hr) for t, hr in snap["vs_reference"].items()}})
    return rows


def history_tables(rows: Sequence[dict[str, Any]], res: NetworkResult) -> list[dict[str, Any]]:
    """The ``history`` rows and today's fit (the last row, ``now`` true) as the page's
    over-time tables: one per run of rows with the same reference, with the treatments that
    have an HR in it (latest order first). The reference is no maintenance only once the
    network has that arm (``reports.network_inputs``): a column mixing HRs against thalidomide
    with HRs against no maintenance would read as a change that is none. No digest kept the
    network yet: no tables."""
    if not rows:
        return []
    now = {"digest_id": None, "date": None, "studies": res.studies, "now": True,
           "reference": res.reference, "best": res.ranking()[0][0],
           "vs_reference": {t: res.relative(t, res.reference).hr_text
                            for t in res.treatments[1:]}}
    tables: list[dict[str, Any]] = []
    for row in [*rows, now]:
        if not tables or tables[-1]["reference"] != row["reference"]:
            tables.append({"reference": row["reference"], "rows": []})
        tables[-1]["rows"].append(row)
    for table in tables:
        table["treatments"] = list(dict.fromkeys(
            t for row in reversed(table["rows"]) for t in row["vs_reference"]))
    return tables
