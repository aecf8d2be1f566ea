"""Analyses as data (drug × setting × endpoint) and the rules that pick their inputs.

An :class:`Analysis` names what is pooled; :func:`default_analyses` lists the IMWG 2012
Figure 1 analyses (thalidomide PFS/EFS and OS by setting, lenalidomide PFS by setting) plus
every other drug/endpoint/setting with data, and a sensitivity twin that includes strategy
trials wherever a strategy trial has data. :func:`select_inputs` applies the selection rules to
plain :class:`Candidate` rows (no database here, so the rules are tested on their own):

1. the trial's pooled drug (``Trial.drug``) is the analysis' drug; the estimate's endpoint is
   accepted (PFS analyses accept PFS, EFS and TTP, the latter two flagged ``efs_ttp``); the
   estimate's setting matches (``all`` accepts post_asct, non_transplant and mixed);
2. only verified estimates count (``Estimate.verified``), and never a withdrawn one
   (``Estimate.withdrawn_at``: retracted by a curator or replaced by a correction);
3. strategy trials (``Trial.is_strategy``: induction differs too) are left out of the primary
   analysis and included in its ``with_strategy`` sensitivity twin. Head-to-head trials,
   whose control arm receives maintenance too (HOVON-50: thalidomide vs interferon; the
   arms as ``reports.arms`` reads them, ``[[arms]]`` entries included), are left out of
   every analysis, the twins too: an analysis pools maintenance against no maintenance, and
   such a trial enters the network meta-analysis only (``keep_head_to_head``). An add-on
   design is not head-to-head (thalidomide + interferon vs interferon);
4. multi-arm trials contribute one comparison. Comparisons are compared as written but
   without case, spacing or "versus"/"vs." differences (``comparison_key``), and the generic
   "maintenance vs control" (what the form stores when a curator names none) stands for the
   trial's one named comparison. A trial with two or more named comparisons uses one
   comparison for every endpoint: the first that has estimates for both PFS and OS, else the
   first, in the order of their first entered estimate (lowest id; a correction counts as
   the estimate it corrects, ``Candidate.origin``, so correcting a number never switches
   the comparison);
   other contrasts (which would re-use a control arm or the maintenance arm) are dropped,
   and so are its unnamed estimates (which contrast they are cannot be told);
5. one estimate per trial per analysis: the latest data cut. The cut date is
   ``Estimate.data_cut``; an estimate with only its report's year has a cut some time
   before that report appeared, so against a dated cut in or before that year the later
   report counts as the later cut (``cut_order``); no date at all is oldest. Ties
   on the same cut: PFS before EFS before TTP, then the most recently entered estimate
   (highest id). Earlier cuts stay in the database for the cumulative view;
6. exception for ``all``: a trial reported only by stratum (e.g. MRC Myeloma IX intensive /
   non-intensive) has disjoint patients in each stratum, so each setting's latest estimate
   enters as its own row; when a whole-trial (``mixed``) estimate exists, it is used instead,
   unless both strata have later cuts than it (then the strata enter).

Every dropped candidate is returned with its reason, so a snapshot explains itself.
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reports.arms import ENTRY_SOURCE, UNNAMED_KEYS, ArmOverrides, ArmReading
from reports.arms import GENERIC_COMPARISON as GENERIC_COMPARISON  # the form stores it
from reports.arms import comparison_key as comparison_key
from reports.arms import is_named_comparison as is_named_comparison
from store.errors import ConfigError
from store.settings import MONITORING_HR_RULE, is_monitorable_hr
from store.text import bidi_override

SETTINGS = ("post_asct", "non_transplant", "all")
SETTING_LABELS = {"post_asct": "post-ASCT", "non_transplant": "non-transplant",
                  "mixed": "mixed", "all": "all settings"}
ENDPOINTS: dict[str, tuple[str, ...]] = {"PFS": ("PFS", "EFS", "TTP"), "OS": ("OS",)}
_ENDPOINT_RANK = {"PFS": 0, "EFS": 1, "TTP": 2, "OS": 0}


#: IMWG 2012 Figure 1: (A) thalidomide PFS/EFS, (B) thalidomide OS, (C) lenalidomide PFS.
IMWG_2012 = (("thalidomide", "PFS"), ("thalidomide", "OS"), ("lenalidomide", "PFS"))


@dataclass(frozen=True)
class Analysis:
    """One pooled analysis: drug × setting × endpoint (± strategy trials).

    ``drug`` names the analysis (its key starts with it); it pools the trials of that drug,
    or of every drug in ``drugs`` for an analysis defined in ``MMLR_ANALYSES_FILE`` (a drug
    class such as IMiD, shown as ``title``)."""

    drug: str
    setting: str  # post_asct | non_transplant | all
    endpoint: str  # PFS | OS
    include_strategy: bool = False
    drugs: tuple[str, ...] = ()
    title: str = ""
    # The anticipated HR of this analysis' sequential monitoring, when its entry in
    # MMLR_ANALYSES_FILE sets one; None: the endpoint's (MMLR_MONITORING_HR).
    monitoring_hr: float | None = None

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {tuple(ENDPOINTS)}, got {self.endpoint!r}")

    @property
    def key(self) -> str:
        base = f"{self.drug}/{self.endpoint}/{self.setting}"
        return base + "/with_strategy" if self.include_strategy else base

    @property
    def members(self) -> tuple[str, ...]:
        """The (normalised) trial drugs this analysis pools."""
        return tuple(_norm(d) for d in self.drugs) or (_norm(self.drug),)

    @property
    def label(self) -> str:
        endpoint = "PFS (EFS/TTP accepted)" if self.endpoint == "PFS" else "OS"
        name = self.title or self.drug.capitalize()
        text = f"{name} maintenance — {endpoint} — {SETTING_LABELS[self.setting]}"
        return text + " (sensitivity: strategy trials included)" if self.include_strategy else text

    @property
    def short_label(self) -> str:
        """The label without the trial's own drug, for a page that is about one trial:
        "PFS post-ASCT", "IMiD: OS all settings", "PFS all settings, with strategy trials"."""
        text = f"{self.endpoint} {SETTING_LABELS[self.setting]}"
        if self.drugs:
            text = f"{self.title or self.drug}: {text}"
        return text + ", with strategy trials" if self.include_strategy else text

    @property
    def is_default(self) -> bool:
        return (self.drug, self.endpoint) in IMWG_2012 and not self.include_strategy

    def accepts(self, c: Candidate) -> bool:
        return (
            _norm(c.drug) in self.members
            and c.endpoint.upper() in ENDPOINTS[self.endpoint]
            and (self.setting == "all" or c.setting == self.setting)
        )


@dataclass
class Candidate:
    """One stored estimate with what the selection rules need (built by reports.pool)."""

    estimate_id: int
    trial_id: int
    trial_name: str
    drug: str
    is_strategy: bool
    endpoint: str
    setting: str
    comparison: str
    log_hr: float
    se: float
    verified: bool
    data_cut: date | None = None
    data_cut_label: str | None = None
    report_year: int | None = None
    pmid: int | None = None
    hr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str = "reported_ci"
    approximate: bool = False
    withdrawn: bool = False
    # RoB 2 overall judgment of the trial's result for this endpoint (store.bias), None when
    # nobody has assessed it.
    risk_of_bias: str | None = None
    # Whether the people who assessed it disagree (store.bias.assessor_agreement): the
    # judgment above is then the newest one, not an agreed one.
    risk_of_bias_disputed: bool = False
    # Whether that judgment was saved before this estimate was entered, while an earlier one
    # of the trial's endpoint existed: made on an earlier data cut (or report) and carried
    # over to this one, which nobody has judged yet (reports.selection.load_candidates).
    risk_of_bias_carried_over: bool = False
    # The trial's arms as entered (Trial.regimen / Trial.comparator) and the estimate's arm
    # sizes: the network meta-analysis maps arms to treatments and sizes its nodes with them.
    regimen: str | None = None
    comparator: str | None = None
    n_maintenance: int | None = None
    n_control: int | None = None
    # The HR and CI as the paper printed them, maintenance vs control ({"hr": "0.50", …};
    # None when entered the other way round, derived, or stored before 0012): what a
    # one-trial analysis shows (reports.presentation).
    printed: dict[str, str] | None = None
    # The id of the estimate this one's supersedes chain starts from (a correction is a new
    # row pointing at the one it replaces): the original extraction's id, which rule 4 ranks
    # comparisons by. None: the estimate corrects none (its own id).
    origin_id: int | None = None

    @property
    def origin(self) -> int:
        """The original extraction's id (``origin_id``, else the estimate's own)."""
        return self.origin_id if self.origin_id is not None else self.estimate_id

    @property
    def cut_date(self) -> date | None:
        if self.data_cut is not None:
            return self.data_cut
        if self.report_year:
            return date(self.report_year, 12, 31)
        return None

    @property
    def efs_ttp(self) -> bool:
        return self.endpoint.upper() in ("EFS", "TTP")


@dataclass
class Selection:
    chosen: list[Candidate]
    dropped: list[tuple[Candidate, str]]


def _norm(text: str) -> str:
    return text.strip().lower()


#: A comparison's rank among its trial's (rule 4): (−the endpoints it has, its first
#: extraction's id); the lowest is pooled.
Rank = tuple[int, int]


def _comparison_ranks(candidates: Sequence[Candidate], reading: ArmReading | None
                      ) -> dict[int, dict[str, Rank]]:
    """Rule 4's order of each trial's named comparisons, over every endpoint: those with
    verified, current estimates for both PFS and OS first, then by their first extraction
    (``Candidate.origin``). Ranked per endpoint, a multi-arm trial could pool its PFS
    against one control arm and its OS against the other."""
    endpoints: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    first: dict[int, dict[str, int]] = defaultdict(dict)
    for c in candidates:
        key = comparison_key(c.comparison)
        endpoint = next((e for e, accepted in ENDPOINTS.items()
                         if c.endpoint.upper() in accepted), None)
        if (c.withdrawn or not c.verified or key in UNNAMED_KEYS or endpoint is None
                or (reading is not None and reading.active_control(c) is not None)):
            continue
        endpoints[c.trial_id][key].add(endpoint)
        have = first[c.trial_id].get(key)
        first[c.trial_id][key] = c.origin if have is None else min(have, c.origin)
    return {trial: {key: (-len(found), first[trial][key]) for key, found in keys.items()}
            for trial, keys in endpoints.items()}


def _one_comparison(cands: list[Candidate], ranks: dict[str, Rank]
                    ) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """Rule 4: the candidates of the trial's pooled comparison, and the others with reasons.
    ``ranks``: the trial's comparisons in order (:func:`_comparison_ranks`)."""
    named = sorted({comparison_key(c.comparison) for c in cands} - UNNAMED_KEYS)
    if len(named) <= 1:
        return cands, []
    # By the original extraction (the root of a correction's supersedes chain): a corrected
    # estimate is a new row with a larger id, and ranking by it switched the pool to the
    # trial's other comparison.
    first = min((c for c in cands if comparison_key(c.comparison) not in UNNAMED_KEYS),
                key=lambda c: (ranks.get(comparison_key(c.comparison), (0, c.origin)),
                               c.origin, c.estimate_id))
    primary = comparison_key(first.comparison)
    keep: list[Candidate] = []
    dropped: list[tuple[Candidate, str]] = []
    for c in cands:
        key = comparison_key(c.comparison)
        if key == primary:
            keep.append(c)
        elif key in UNNAMED_KEYS:
            dropped.append((c, f"comparison not named, and this multi-arm trial has "
                               f"{len(named)} ({', '.join(repr(n) for n in named)}): name it "
                               "to pool this estimate"))
        else:
            dropped.append((c, f"other comparison of a multi-arm trial "
                               f"({first.comparison!r} used)"))
    return keep, dropped


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


class Dated(Protocol):
    """What the order of two data cuts rests on (a :class:`Candidate`, or an estimate being
    entered)."""

    @property
    def data_cut(self) -> date | None: ...

    @property
    def report_year(self) -> int | None: ...


DatedT = TypeVar("DatedT", bound=Dated)


def cut_order(a: DatedT, b: DatedT) -> tuple[int, DatedT | None]:
    """Whether ``a``'s data cut is later (1) or earlier (−1) than ``b``'s, or 0 when nothing
    tells; and the estimate with only its report's year when that made the call uncertain.

    A report's year bounds its cut from above, nothing more: a cut precedes its publication,
    often by a year or two. So a dated cut in or before that year may lie on either side of
    it. The later *publication* is then taken as the later cut (a follow-up paper reports a
    later cut), and with no publication year to tell, nothing does (0: the tie-breaks decide).
    Treating the year as 31 December would let a 2017 paper whose undated cut was in 2016 hide
    a 2018 paper's cut of mid-2017."""
    if a.data_cut is not None and b.data_cut is not None:
        return _sign((a.data_cut - b.data_cut).days), None
    if a.data_cut is None and b.data_cut is None:
        return _sign((a.report_year or 0) - (b.report_year or 0)), None
    dated, undated, flip = (a, b, 1) if a.data_cut is not None else (b, a, -1)
    assert dated.data_cut is not None
    if undated.report_year is None or dated.data_cut > date(undated.report_year, 12, 31):
        return flip, None  # no date at all is oldest; a cut after that year is later
    if dated.report_year is not None:
        return flip * _sign(dated.report_year - undated.report_year), undated
    return 0, undated


def _later(a: Candidate, b: Candidate) -> bool:
    """``a`` comes after ``b``: the later cut; on the same or an unknown order, PFS before EFS
    before TTP, then the estimate entered last."""
    order, _ = cut_order(a, b)
    if order:
        return order > 0
    rank_a, rank_b = (-_ENDPOINT_RANK.get(c.endpoint.upper(), 9) for c in (a, b))
    return (rank_a, a.estimate_id) > (rank_b, b.estimate_id)


def _latest(cands: list[Candidate]) -> Candidate:
    """The candidate later than every other (:func:`_later`). Report years make that order
    a judgment, which three estimates can make circular (a dated 2015 cut published in 2018, a
    2016 cut published in 2016, an undated one published in 2017): then the dates as bounds
    decide, the year as 31 December, as for the evidence over time."""
    for c in cands:
        if all(_later(c, other) for other in cands if other is not c):
            return c
    return max(cands, key=lambda c: (c.cut_date or date.min,
                                     -_ENDPOINT_RANK.get(c.endpoint.upper(), 9),
                                     c.estimate_id))


def _superseded(c: Candidate, best: Candidate) -> str:
    """The reason ``c`` is dropped for ``best``, saying when the order is a judgment, and when
    nothing orders the two cuts (the same date; no dates and the same report year) what
    decided instead: "latest data cut" there was untrue."""
    text = f"superseded by estimate {best.estimate_id} (latest verified data cut"
    order, uncertain = cut_order(best, c)
    if uncertain is None and order == 0:
        tie = (f"{best.endpoint} preferred to {c.endpoint}"
               if _ENDPOINT_RANK.get(best.endpoint.upper(), 9)
               != _ENDPOINT_RANK.get(c.endpoint.upper(), 9) else "the estimate entered later")
        if best.data_cut is not None:
            same = f"the same data cut as estimate {c.estimate_id}, {best.data_cut.isoformat()}"
        elif best.report_year is not None:
            same = (f"no data cut date on either it or estimate {c.estimate_id}, and the same "
                    f"report year {best.report_year}")
        else:
            same = f"no data cut date nor report year on either it or estimate {c.estimate_id}"
        return f"superseded by estimate {best.estimate_id} ({same}: {tie})"
    if uncertain is None:
        return text + ")"
    how = {1: ", judged by the report years", 0: ", as far as can be told",
           -1: ", each report's year read as 31 December"}[order]
    return (f"{text}{how}: estimate {uncertain.estimate_id} has no data cut date, only its "
            f"report's year {uncertain.report_year}; enter its data cut to be sure)")


_STRATA = ("post_asct", "non_transplant")


def _whole_or_strata(groups: dict[str, list[Candidate]]
                     ) -> tuple[dict[str, list[Candidate]], list[tuple[Candidate, str]]]:
    """Rule 6 for one trial with a whole-trial (``mixed``) estimate in an ``all`` analysis:
    the groups to pool and the candidates left out. The whole trial, unless both strata have
    a later cut than its latest: the strata together are then the trial's latest data, and
    pooling the older whole-trial estimate instead would put an outdated cut beside the
    by-setting analyses that pool the strata. One later stratum alone cannot replace the
    whole trial (the other stratum's patients would be lost)."""
    whole = _latest(groups["mixed"])
    strata = {s: _latest(groups[s]) for s in _STRATA if groups.get(s)}
    if len(strata) == len(_STRATA) and all(_later(b, whole) for b in strata.values()):
        ids = " and ".join(str(b.estimate_id) for b in strata.values())
        return ({s: groups[s] for s in _STRATA},
                [(c, f"the strata's later cuts (estimates {ids}) used instead of the "
                     "whole-trial estimate") for c in groups["mixed"]])
    left_out = [(c, "whole-trial estimate used instead of the stratum"
                    + (" (a later cut of one stratum alone cannot replace the whole trial)"
                       if c is strata.get(c.setting) and _later(c, whole) else ""))
                for s, group in groups.items() if s != "mixed" for c in group]
    return {"mixed": groups["mixed"]}, left_out


def _head_to_head(c: Candidate, control: str, source: str) -> str:
    """Why a head-to-head contrast is left out of a drug-vs-control analysis."""
    where = ("its [[arms]] entry in MMLR_ANALYSES_FILE" if source == ENTRY_SOURCE else
             f"read from the comparator {c.comparator!r}; an [[arms]] entry in "
             "MMLR_ANALYSES_FILE corrects the reading")
    return (f"head-to-head trial: the control arm receives maintenance too ({control}, "
            f"{where}), so it is not maintenance vs control; it enters the network "
            "meta-analysis only")


def select_inputs(analysis: Analysis, candidates: Iterable[Candidate], *,
                  arms: ArmReading | None = None,
                  keep_head_to_head: bool = False) -> Selection:
    """Apply the selection rules of the module docstring to ``candidates``.

    ``arms`` reads each trial's control arm (rule 4's head-to-head trials): built from
    ``candidates`` without ``[[arms]]`` entries when not given. ``keep_head_to_head``: the
    network meta-analysis, which compares active treatments too."""
    candidates = list(candidates)
    reading = None if keep_head_to_head else arms or ArmReading.of(candidates)
    chosen: list[Candidate] = []
    dropped: list[tuple[Candidate, str]] = []
    by_trial: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if not analysis.accepts(c):
            continue
        if c.withdrawn:
            dropped.append((c, "withdrawn"))
        elif not c.verified:
            dropped.append((c, "not verified"))
        elif c.is_strategy and not analysis.include_strategy:
            dropped.append((c, "strategy trial (sensitivity analysis only)"))
        elif reading is not None and (active := reading.active_control(c)) is not None:
            dropped.append((c, _head_to_head(c, *active)))
        else:
            by_trial[c.trial_id].append(c)
    ranks = _comparison_ranks(candidates, reading) if by_trial else {}
    for trial_id, trial_cands in by_trial.items():
        same, other = _one_comparison(trial_cands, ranks.get(trial_id, {}))
        dropped.extend(other)
        groups: dict[str, list[Candidate]] = defaultdict(list)
        for c in same:
            groups[c.setting].append(c)
        if analysis.setting == "all" and "mixed" in groups:
            groups, left_out = _whole_or_strata(groups)
            dropped.extend(left_out)
        for group in groups.values():
            best = _latest(group)
            chosen.append(best)
            for c in group:
                if c is not best:
                    dropped.append((c, _superseded(c, best)))
    chosen.sort(key=lambda c: (c.cut_date or date.min, c.trial_name, c.estimate_id))
    return Selection(chosen=chosen, dropped=dropped)


def analysis_order(key: str) -> tuple[int, int, str, int, int]:
    """Reading order of an analysis key (``drug/endpoint/setting[/with_strategy]``): the IMWG
    2012 Figure 1 analyses first, then the other drugs, sensitivity analyses last; within a
    drug PFS before OS and post-ASCT, non-transplant, all."""
    parts = key.split("/")
    drug, endpoint, setting = [*parts, "", "", ""][:3]
    strategy = int(len(parts) > 3)
    imwg = next((i for i, pair in enumerate(IMWG_2012) if pair == (drug, endpoint)), len(IMWG_2012))
    setting_rank = SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS)
    return (strategy, imwg, drug, 0 if endpoint == "PFS" else 1, setting_rank)


def default_analyses(candidates: Iterable[Candidate],
                     defined: Sequence[Analysis] = ()) -> list[Analysis]:
    """IMWG 2012 Figure 1 analyses, then every other drug/endpoint/setting with data, then
    the ``defined`` ones (``load_analyses``).

    A ``with_strategy`` sensitivity twin is added wherever a strategy trial has an estimate
    the primary analysis leaves out (for a defined analysis too).
    """
    candidates = list(candidates)
    out: list[Analysis] = [
        Analysis(drug, setting, endpoint)
        for drug, endpoint in IMWG_2012 for setting in SETTINGS
    ]
    seen = set(out)
    extra: set[Analysis] = set()
    strategy: set[Analysis] = set()
    for c in candidates:
        # Unverified estimates count too: their analysis then exists with k = 0 ("no data"
        # in `mmlr pool --json`) and the trial page can say what verifying them will change.
        if c.withdrawn:
            continue
        endpoint = next((e for e, accepted in ENDPOINTS.items()
                         if c.endpoint.upper() in accepted), None)
        if endpoint is None:
            continue
        drug = _norm(c.drug)
        settings = ["all"] + ([c.setting] if c.setting in SETTINGS else [])
        for setting in settings:
            analysis = Analysis(drug, setting, endpoint)
            if c.is_strategy:
                strategy.add(Analysis(drug, setting, endpoint, include_strategy=True))
            if analysis not in seen:
                extra.add(analysis)
    order = {s: i for i, s in enumerate(SETTINGS)}

    def sort_key(a: Analysis) -> tuple[str, str, int]:
        return (a.drug, a.endpoint, order[a.setting])

    out += sorted(extra, key=sort_key)
    clash = sorted({a.drug for a in defined} & {a.drug for a in out})
    if clash:
        raise ConfigError(f"MMLR_ANALYSES_FILE: analysis name(s) {', '.join(clash)} are also "
                          "trial drugs, whose own analyses have that name",
                          hint="name the class differently, e.g. 'imid'")
    out += list(defined)
    for a in defined:
        if any(c.is_strategy and not c.withdrawn and a.accepts(c)
               for c in candidates):
            strategy.add(replace(a, include_strategy=True))
    out += sorted(strategy, key=sort_key)
    return out


# ----------------------------------------------------------------------------- defined analyses
_ANALYSIS_KEYS = {"name", "title", "drugs", "endpoint", "settings", "monitoring_hr"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def load_analyses(path: Path | None) -> list[Analysis]:
    """The analyses of ``MMLR_ANALYSES_FILE`` (TOML), each setting of each entry one Analysis.

    An entry is ``[[analysis]]`` with ``name`` (the key's first part: lower case letters,
    digits, ``-``/``_``), ``drugs`` (the trial drugs pooled together), ``endpoint`` (PFS or
    OS), optional ``title`` (shown instead of the name), ``settings`` (default all three) and
    ``monitoring_hr`` (the anticipated HR of its sequential monitoring; default the endpoint's).
    Every mistake is a ConfigError naming the file, the entry and the field: a silently
    skipped analysis would be an evidence gap nobody sees.
    """
    doc, where = _read_file(path)
    entries = doc.get("analysis", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected [[analysis]] tables, found analysis = …")
    out: list[Analysis] = []
    names: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries, start=1):
        out += _defined(entry, f"{where}, analysis {i}", names)
    return out


def check_analyses_file(path: Path | None) -> None:
    """ConfigError now for every mistake in ``MMLR_ANALYSES_FILE`` (its analyses and its arm
    corrections): for `run`, `serve` and `worker` at start, which would otherwise poll first
    and fail at every pooling."""
    load_analyses(path)
    load_arm_overrides(path)


def _read_file(path: Path | None) -> tuple[dict[str, Any], str]:
    """The analyses file's TOML (empty without a file) and how errors name it."""
    where = f"MMLR_ANALYSES_FILE {path}"
    if path is None:
        return {}, where
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist",
                          hint="unset MMLR_ANALYSES_FILE or point it at a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"analysis", "arms"})
    if unknown:
        raise ConfigError(f"{where}: expected only [[analysis]] and [[arms]] tables, found "
                          f"{', '.join(unknown)}")
    return doc, where


_ARMS_KEYS = {"trial", "treatment", "control"}
_ARMS_OPTIONAL = {"comparison"}


def load_arm_overrides(path: Path | None) -> ArmOverrides:
    """The ``[[arms]]`` entries of ``MMLR_ANALYSES_FILE``: how the network meta-analysis
    should name a trial's two arms, where the automatic reading of the trial's drug and
    comparator (``reports.network_inputs``) is not what curators mean. An entry with a
    ``comparison`` (as the estimates name it, compared like ``comparison_key``) maps that
    contrast of a multi-arm trial; a trial's entries then all name one, and each mapped
    comparison enters the network. Names are compared without case or surrounding spaces;
    every mistake is a ConfigError naming the entry.
    """
    doc, where = _read_file(path)
    entries = doc.get("arms", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected [[arms]] tables, found arms = …")
    out: ArmOverrides = {}
    for i, entry in enumerate(entries, start=1):
        at = f"{where}, arms {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: must be a table")
        unknown = sorted(set(entry) - _ARMS_KEYS - _ARMS_OPTIONAL)
        missing = sorted(_ARMS_KEYS - set(entry))
        if unknown or missing:
            raise ConfigError(f"{at}: " + "; ".join(
                ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing {', '.join(missing)}"] if missing else [])),
                hint="each [[arms]] names trial, treatment and control (and optionally the "
                     "comparison of a multi-arm trial)")
        values = [entry[k] for k in ("trial", "treatment", "control")]
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise ConfigError(f"{at}: trial, treatment and control must be non-empty text")
        comparison = entry.get("comparison")
        if comparison is not None and not (isinstance(comparison, str)
                                           and is_named_comparison(comparison)):
            raise ConfigError(f"{at}: comparison {comparison!r} must name a contrast as the "
                              "trial's estimates do, e.g. \"VT vs IFN\"")
        # The web app refuses these in what people type (screening.web.refused_text); a name
        # carrying one would show reordered on the page, in the SVG and the digest ("evil"
        # as "live"), numbers after it reversed.
        for name in ("trial", "treatment", "control", "comparison"):
            value = entry.get(name)
            code = bidi_override(value) if isinstance(value, str) else None
            if code:
                raise ConfigError(f"{at}: {name} has a bidirectional control ({code}), which "
                                  "shows the text after it reordered, numbers reversed",
                                  hint="type the name without it; right-to-left letters need "
                                       "none")
        trial, treatment, control = (" ".join(v.split()) for v in values)
        if _norm(treatment) == _norm(control):
            raise ConfigError(f"{at} ({trial}): treatment and control are both {treatment!r}",
                              hint="a network compares two different treatments")
        mapped = out.setdefault(_norm(trial), {})
        key = comparison_key(comparison) if comparison is not None else None
        if key in mapped:
            raise ConfigError(f"{at}: trial {trial!r} has two [[arms]] entries"
                              + (f" for comparison {comparison!r}" if key else ""))
        if mapped and (key is None or None in mapped):
            raise ConfigError(f"{at}: trial {trial!r} has [[arms]] entries with and without "
                              "a comparison", hint="name the comparison in every entry of a "
                                                   "multi-arm trial, or give one entry without")
        mapped[key] = (_norm(treatment), _norm(control))
    return out


def _defined(entry: Any, where: str, names: set[tuple[str, str]]) -> list[Analysis]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _ANALYSIS_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}",
                          hint=f"valid keys: {', '.join(sorted(_ANALYSIS_KEYS))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: name {name!r} must be 1-40 lower-case letters, digits, "
                          "'-' or '_' (it becomes the analysis key)")
    drugs = entry.get("drugs")
    if (not isinstance(drugs, list) or not drugs
            or not all(isinstance(d, str) and d.strip() for d in drugs)):
        raise ConfigError(f"{where} ({name}): drugs must be a non-empty list of drug names, "
                          "as the trials name them")
    endpoint = entry.get("endpoint")
    if not isinstance(endpoint, str) or endpoint not in ENDPOINTS:  # (a list is unhashable)
        raise ConfigError(f"{where} ({name}): endpoint {endpoint!r} must be one of "
                          f"{', '.join(ENDPOINTS)}")
    settings = entry.get("settings", list(SETTINGS))
    if (not isinstance(settings, list) or not settings
            or any(st not in SETTINGS for st in settings)):
        raise ConfigError(f"{where} ({name}): settings {settings!r} must be a list of "
                          f"{', '.join(SETTINGS)}")
    title = entry.get("title", "")
    if not isinstance(title, str):
        raise ConfigError(f"{where} ({name}): title must be text")
    if (name, endpoint) in names:
        raise ConfigError(f"{where}: analysis {name} {endpoint} is defined twice")
    if any(_norm(name) == _norm(d) for d in drugs) and len(drugs) == 1:
        raise ConfigError(f"{where} ({name}): a single drug is pooled already, under its own "
                          "name", hint="define a class of two or more drugs, or another name")
    monitoring_hr = entry.get("monitoring_hr")
    if monitoring_hr is not None and (
            isinstance(monitoring_hr, bool) or not isinstance(monitoring_hr, int | float)
            or not is_monitorable_hr(monitoring_hr)):
        raise ConfigError(f"{where} ({name}): monitoring_hr {monitoring_hr!r} must be "
                          f"{MONITORING_HR_RULE} (the smallest effect worth detecting)")
    names.add((name, endpoint))
    members = tuple(dict.fromkeys(_norm(d) for d in drugs))
    return [Analysis(name, setting, endpoint, drugs=members, title=title.strip(),
                     monitoring_hr=float(monitoring_hr) if monitoring_hr is not None else None)
            for setting in dict.fromkeys(settings)]
