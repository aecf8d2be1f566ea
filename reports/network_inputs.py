"""From stored evidence to the networks of ``reports.network``: which trials, which arms.

One network per endpoint (PFS, accepting EFS/TTP as the pairwise analyses do, and OS) and
setting (post-ASCT, non-transplant, all settings), plus a sensitivity network with strategy
trials wherever a strategy trial has data. The trials and estimates are the pairwise
analyses' (``reports.analyses.select_inputs`` over every drug): verified, not withdrawn, one
comparison per trial, its latest data cut, strata as separate rows in "all settings"; and
the head-to-head trials the pairwise analyses leave out, which only a network can use.

**Arms to treatments** (``reports.arms``, which the pairwise analyses read them with too).
Each trial's maintenance arm is its pooled drug (``Trial.drug``, the
review's own vocabulary, so the network's nodes are the pairwise analyses' drugs). Its
control arm is read from ``Trial.comparator``:

- maintenance agents named in the comparator (the review's drugs, interferon, steroids and
  the other agents of ``AGENTS``; "no X"/"without X or Y" does not name X or Y, nor does an
  agent of induction, one given at relapse or progression, or the drug a placebo matches;
  a hyphen does not join two names: "thalidomide-interferon", "IFN-α2b") that the maintenance
  arm also receives besides its pooled drug (``Trial.regimen``) are background of an add-on
  design and drop out: "thalidomide + interferon-alpha vs interferon-alpha" is thalidomide
  vs no maintenance, as the pairwise analysis pools it;
- what is left names the control treatment ("thalidomide vs interferon-alpha":
  interferon); nothing left (placebo, observation, "MP (no maintenance)") is
  ``NO_MAINTENANCE``.

Curators correct any reading with an ``[[arms]]`` entry in ``MMLR_ANALYSES_FILE``
(``reports.analyses.load_arm_overrides``); the page shows each trial's arms and where they
came from. A trial whose two arms read as the same treatment (a dose or schedule comparison)
cannot enter and is listed with the reason.

**Multi-arm trials** enter the pooled analyses with one comparison (rule 4). Here, entries
that name a trial's comparisons map each to its arms, and every mapped comparison enters
with its latest cut, as one trial with a common arm (``reports.network`` models the
correlation). **Sensitivity:** ``without_high_rob`` leaves out the trials whose result is at
high risk of bias (RoB 2), keeping those not assessed, as the pooled analyses' view does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from reports.analyses import (
    ENDPOINTS,
    SETTING_LABELS,
    SETTINGS,
    Analysis,
    Candidate,
    load_arm_overrides,
    select_inputs,
)
from reports.arms import AGENTS as AGENTS  # re-exported: the reading lives in reports.arms
from reports.arms import (
    ENTRY_SOURCE,
    NO_MAINTENANCE,
    ArmOverrides,
    ArmReading,
    agents_named,
    comparison_key,
    trial_key,
    vocabulary_of,
)
from reports.arms import read_arms as read_arms
from reports.network import Contrast, NetworkResult, network_meta_analysis
from reports.network_plot import PlotEdge, PlotNode, render_network_svg
from reports.presentation import trial_hr
from reports.selection import load_candidates
from reports.small_study import p_text
from reports.words import estimate_text, plural
from store.errors import PoolingError
from store.models import Trial

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Arms:
    """How one trial's contrast entered a network: its two arms as treatments, and where
    that reading came from (shown on the page beside the comparator as entered)."""

    trial: str
    treatment: str
    control: str
    source: str  # "read from the trial" | "MMLR_ANALYSES_FILE [[arms]]"
    comparator: str | None = None
    comparison: str | None = None  # the estimate's, when an [[arms]] entry mapped it
    # The trial's current RoB 2 overall judgment for the endpoint (None: not assessed), and
    # whether its assessors disagree (store.bias), as the pooled analyses show them.
    risk_of_bias: str | None = None
    risk_of_bias_disputed: bool = False


@dataclass
class NetworkInput:
    """One network's inputs: the contrasts to fit, each with its arms, and what was left out
    with the reason (the selection rules' drops, dose comparisons, unmapped comparisons)."""

    endpoint: str
    setting: str
    include_strategy: bool
    # The sensitivity network without trials whose result is at high risk of bias (RoB 2);
    # trials nobody has assessed stay in, as in the pooled analyses' "without high risk".
    without_high_rob: bool = False
    contrasts: list[Contrast] = field(default_factory=list)
    arms: list[Arms] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    @property
    def key(self) -> str:
        base = f"{self.endpoint}/{self.setting}"
        return base + "/with_strategy" if self.include_strategy else base

    @property
    def label(self) -> str:
        endpoint = "PFS (EFS/TTP accepted)" if self.endpoint == "PFS" else "OS"
        text = f"{endpoint} — {SETTING_LABELS[self.setting]}"
        if self.include_strategy:
            text += " (sensitivity: strategy trials included)"
        if self.without_high_rob:
            text += " — without trials at high risk of bias"
        return text

    @property
    def treatments(self) -> list[str]:
        return list(dict.fromkeys(t for c in self.contrasts for t in (c.treat, c.control)))


#: A network with its fit, or None and the reason it has none.
Fitted = tuple[NetworkInput, NetworkResult | None, str]


def build_networks(candidates: Sequence[Candidate], overrides: ArmOverrides | None = None,
                   *, without_high_rob: bool = False) -> list[NetworkInput]:
    """Every network with at least one trial, in a stable order (PFS before OS; post-ASCT,
    non-transplant, all; the primary network before its strategy twin)."""
    overrides = overrides or {}
    vocab = vocabulary_of(candidates)
    drugs = tuple(sorted({" ".join(c.drug.lower().split()) for c in candidates}))
    has_strategy = {(c.endpoint.upper(), c.setting) for c in candidates if c.is_strategy}
    out: list[NetworkInput] = []
    if not drugs:
        return out
    split, unmapped = _split_multi_arm(candidates, ArmReading.of(candidates, overrides))
    for endpoint in ENDPOINTS:
        for setting in SETTINGS:
            for strategy in (False, True):
                if strategy and not any(
                        e in ENDPOINTS[endpoint] and (setting == "all" or s == setting)
                        for e, s in has_strategy):
                    continue
                analysis = Analysis("network", setting, endpoint, include_strategy=strategy,
                                    drugs=drugs)
                net = _network(analysis, split, unmapped, vocab, overrides,
                               without_high_rob)
                if net.arms or net.dropped:
                    out.append(net)
    return out


def _split_multi_arm(candidates: Sequence[Candidate], reading: ArmReading
                     ) -> tuple[list[Candidate], list[Candidate]]:
    """Candidates with each comparison that ``[[arms]]`` maps as a trial of its own for the
    selection rules (so each keeps its latest cut instead of rule 4 keeping one comparison);
    and the candidates of such trials whose comparison no entry maps. An unnamed estimate
    stands for its trial's one named comparison, as rule 4 reads it: a new data cut entered
    with the comparison blank was left out here as unmapped, and the network used the cut it
    supersedes, where the pooled analysis used the new one."""
    pseudo: dict[tuple[int, str], int] = {}
    out: list[Candidate] = []
    unmapped: list[Candidate] = []
    for c in candidates:
        mapped = reading.overrides.get(trial_key(c.trial_name), {})
        if None in mapped or not mapped:
            out.append(c)
            continue
        comparison = reading.comparison_of(c)
        key = comparison_key(comparison)
        if key not in mapped:
            unmapped.append(c)
            continue
        # A negative id no stored trial has: one per (trial, comparison).
        ident = pseudo.setdefault((c.trial_id, key), -1 - len(pseudo))
        out.append(replace(c, trial_id=ident, comparison=comparison))
    return out, unmapped


def _arms_of(c: Candidate, vocab: dict[str, tuple[str, ...]], overrides: ArmOverrides,
             study: str) -> Arms:
    treatment, control, source = ArmReading(vocab, overrides).arms(c)
    mapped = overrides.get(trial_key(c.trial_name), {})
    named = source == ENTRY_SOURCE and None not in mapped
    return Arms(study, treatment, control, source, c.comparator,
                c.comparison if named else None, c.risk_of_bias, c.risk_of_bias_disputed)


def _reversed_entry(c: Candidate, arms: Arms, vocab: dict[str, tuple[str, ...]]
                    ) -> str | None:
    """Why an ``[[arms]]`` entry would enter the trial's HR the wrong way round, or None.

    The stored HR is always the maintenance arm against its control, and an entry only names
    the two arms: it cannot turn the number round. "treatment = no maintenance, control =
    thalidomide" for a thalidomide trial entered its 0.55 as no maintenance against
    thalidomide, i.e. as thalidomide's HR of 1.82, without a word. Refused, as the other
    [[arms]] problems are, rather than guessed at: the entry is the curator's to swap."""
    if arms.source != ENTRY_SOURCE:
        return None
    treated = agents_named(arms.treatment, vocab)
    if not treated and agents_named(arms.control, vocab):
        return (f"its [[arms]] entry gives treatment {arms.treatment!r} (no maintenance "
                f"agent) and control {arms.control!r}, but the stored HR is the maintenance "
                "arm's against its control, so it would enter reversed: swap them in "
                "MMLR_ANALYSES_FILE")
    # A multi-arm trial's comparisons name their own arms; a two-arm trial's maintenance
    # arm receives its drug.
    if arms.comparison is None and not treated & agents_named(c.drug, vocab):
        return (f"its [[arms]] treatment {arms.treatment!r} does not name the trial's drug "
                f"({c.drug}), and the stored HR is the maintenance arm's against its "
                "control: name the maintenance arm as treatment in MMLR_ANALYSES_FILE")
    return None


def _shown_hr(c: Candidate) -> str | None:
    """The trial's HR and CI as its pairwise analysis shows them ("0.50 (0.38–0.66)", the
    printed digits when kept), or None for an HR with no CI of its own (derived)."""
    hr, low, high = trial_hr({"printed": c.printed, "hr": c.hr, "ci_low": c.ci_low,
                              "ci_high": c.ci_high, "yi": c.log_hr})
    return estimate_text(hr, low, high) if low is not None and high is not None else None


def _network(analysis: Analysis, candidates: Sequence[Candidate],
             unmapped: Sequence[Candidate], vocab: dict[str, tuple[str, ...]],
             overrides: ArmOverrides, without_high_rob: bool = False) -> NetworkInput:
    net = NetworkInput(analysis.endpoint, analysis.setting, analysis.include_strategy,
                       without_high_rob)
    for c in unmapped:
        if analysis.accepts(c):
            net.dropped.append((f"{c.trial_name}, estimate {c.estimate_id}",
                                f"comparison {c.comparison!r} has no [[arms]] entry, and "
                                "this trial's other comparisons have"))
    selection = select_inputs(analysis, candidates, keep_head_to_head=True)
    for c, why in selection.dropped:
        net.dropped.append((f"{c.trial_name}, estimate {c.estimate_id}", why))
    settings_of: dict[str, set[str]] = defaultdict(set)
    for c in selection.chosen:
        settings_of[c.trial_name].add(c.setting)
    rows: dict[str, list[tuple[Arms, Contrast]]] = defaultdict(list)
    for c in selection.chosen:
        if without_high_rob and c.risk_of_bias == "high":
            net.dropped.append((c.trial_name, "high risk of bias (RoB 2), left out of this "
                                "sensitivity network"))
            continue
        # A trial entered by stratum is one row per setting: disjoint patients, two studies.
        study = c.trial_name if len(settings_of[c.trial_name]) == 1 else \
            f"{c.trial_name} ({SETTING_LABELS.get(c.setting, c.setting)})"
        arms = _arms_of(c, vocab, overrides, study)
        reversed_why = _reversed_entry(c, arms, vocab)
        if reversed_why:
            log.warning("network %s: %s left out: %s", net.key, c.trial_name,
                        reversed_why)
            net.dropped.append((c.trial_name, reversed_why))
            continue
        if arms.treatment == arms.control:
            net.dropped.append((c.trial_name, f"both arms read as {arms.treatment!r} (a dose "
                                "or schedule comparison?): name them with [[arms]] in "
                                "MMLR_ANALYSES_FILE"))
            continue
        rows[study].append((arms, Contrast(study, arms.treatment, arms.control, c.log_hr,
                                           c.se, estimate_id=c.estimate_id,
                                           n_treat=c.n_maintenance, n_control=c.n_control,
                                           label=study, shown=_shown_hr(c))))
    for study, entries in rows.items():
        pairs = [frozenset((a.treatment, a.control)) for a, _ in entries]
        shared = set.intersection(*(set(p) for p in pairs))
        if len(entries) > 1 and (len(set(pairs)) < len(pairs) or len(shared) != 1):
            net.dropped.append((study, "its [[arms]] comparisons must be different pairs of "
                                "arms sharing one arm (a multi-arm trial against its common "
                                "arm)"))
            continue
        for arms, contrast in entries:
            net.arms.append(arms)
            net.contrasts.append(contrast)
    return net


def networks_for(candidates: Sequence[Candidate], analyses_file: Path | None,
                 method: str = "REML", *, without_high_rob: bool = False) -> list[Fitted]:
    """Each network with its fit, or None and the reason it has none (fewer than three
    connected treatments: a pairwise analysis already answers it)."""
    out: list[Fitted] = []
    for net in build_networks(candidates, load_arm_overrides(analyses_file),
                              without_high_rob=without_high_rob):
        treatments = net.treatments
        if len(treatments) < 3:
            out.append((net, None, f"{plural(len(treatments), 'treatment')}: nothing beyond the "
                                   "pairwise analyses"))
            continue
        reference = NO_MAINTENANCE if NO_MAINTENANCE in treatments else None
        try:
            res = network_meta_analysis(net.contrasts, reference=reference, method=method)
        except PoolingError as exc:
            # Shown on the page; logged too, since the digest then skips the network.
            log.warning("network %s not fitted: %s", net.key, exc.one_line())
            out.append((net, None, exc.one_line()))
            continue
        if len(res.treatments) < 3:
            out.append((net, None, "fewer than three connected treatments"))
            continue
        out.append((net, res, ""))
    return out


def node_sizes(res: NetworkResult) -> dict[str, tuple[int, int | None]]:
    """Trials and randomised patients per treatment (patients None when any arm size is
    missing: a partial count would draw a misleading node). Each trial's arm counts once:
    a multi-arm trial's contrasts all carry its common arm, which adding them up would count
    once per contrast (a 120-patient placebo arm of a six-arm trial as 600)."""
    arms: dict[tuple[str, str], int | None] = {}
    for c in res.contrasts:
        for arm, n in ((c.treat, c.n_treat), (c.control, c.n_control)):
            # The contrasts should agree on a shared arm's size; one that leaves it out does
            # not make it unknown, and of two that disagree the larger is the arm randomised.
            have = arms.get((c.study, arm))
            arms[(c.study, arm)] = n if have is None else have if n is None else max(have, n)
    trials: dict[str, int] = {t: 0 for t in res.treatments}
    patients: dict[str, int | None] = {t: 0 for t in res.treatments}
    for (_, arm), n in arms.items():
        trials[arm] = trials.get(arm, 0) + 1
        have = patients.get(arm, 0)
        patients[arm] = None if have is None or n is None else have + n
    return {t: (trials[t], patients[t]) for t in res.treatments}


def summary_json(net: NetworkInput, res: NetworkResult | None, reason: str) -> dict[str, Any]:
    """What the API, the CLI and the digest keep of one network."""
    doc: dict[str, Any] = {
        "key": net.key, "label": net.label, "endpoint": net.endpoint, "setting": net.setting,
        "include_strategy": net.include_strategy, "without_high_rob": net.without_high_rob,
        "arms": [{"trial": a.trial, "treatment": a.treatment, "control": a.control,
                  "source": a.source, "comparator": a.comparator, "comparison": a.comparison,
                  "risk_of_bias": a.risk_of_bias,
                  "risk_of_bias_disputed": a.risk_of_bias_disputed}
                 for a in net.arms],
        "inputs": [{"trial": c.study, "treatment": c.treat, "control": c.control,
                    "log_hr": c.log_hr, "se": c.se, "estimate_id": c.estimate_id}
                   for c in net.contrasts],
        "dropped": [{"what": what, "why": why} for what, why in net.dropped],
        "fitted": res is not None, "reason": reason or None,
    }
    if res is not None:
        doc.update(res.to_json())
    return doc


def network_method(pool_method: str) -> str:
    """The network's model for ``MMLR_POOL_METHOD``: common effect for FE, else random
    effects with REML τ² (the one multivariate estimator we fit; see ``reports.network``)."""
    return "FE" if pool_method == "FE" else "REML"


def arms_naming_no_trial(session: Session, analyses_file: Path | None) -> list[str]:
    """The trials named by ``[[arms]]`` entries that no stored trial has (as the entries
    compare names: without case or surrounding spaces), e.g. a misspelt name. Such an entry
    changes nothing; said on the network page and by ``mmlr network`` rather than ignored.
    A trial without verified estimates yet is stored, so its entry is not listed."""
    overrides = load_arm_overrides(analyses_file)
    if not overrides:
        return []
    stored = {" ".join(name.split()).lower() for name in session.exec(select(Trial.name))}
    return sorted(name for name in overrides if name not in stored)


def current_networks(session: Session, analyses_file: Path | None, pool_method: str, *,
                     without_high_rob: bool = False) -> list[Fitted]:
    """Every network of the evidence as stored now (``without_high_rob``: the sensitivity
    networks without trials at high risk of bias)."""
    return networks_for(load_candidates(session), analyses_file, network_method(pool_method),
                        without_high_rob=without_high_rob)


def plot_parts(res: NetworkResult) -> tuple[list[PlotNode], list[PlotEdge]]:
    """The network plot's nodes (trials, patients) and edges (direct comparisons). A
    multi-arm trial randomised every pair of its arms, so it draws (and counts on) a line
    for each: A vs B of an A/B/P trial entered as A vs P and B vs P is direct evidence, as
    the direct-evidence table counts it, not an indirect comparison through P."""
    sizes = node_sizes(res)
    nodes = [PlotNode(t, sizes[t][0], sizes[t][1]) for t in res.treatments]
    order = {t: i for i, t in enumerate(res.treatments)}
    arms: dict[str, set[str]] = defaultdict(set)
    for c in res.contrasts:
        arms[c.study].update((c.treat, c.control))
    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for study, names in arms.items():
        for a, b in combinations(sorted(names, key=lambda t: order[t]), 2):
            pairs[(a, b)].append(study)
    edges = [PlotEdge(a, b, len(names), tuple(names)) for (a, b), names in pairs.items()]
    return nodes, edges


def network_svg(net: NetworkInput, res: NetworkResult) -> str:
    nodes, edges = plot_parts(res)
    return render_network_svg(nodes, edges, title=f"Network: {net.label}",
                              reference=res.reference)


def describe(items: Sequence[Fitted]) -> str:
    """The networks as text, for ``mmlr network``."""
    if not items:
        return "No verified estimates yet: no network to analyse."
    lines: list[str] = []
    for net, res, why in items:
        lines.append(f"{net.label}  [{net.key}]")
        if res is None:
            lines.append(f"  not fitted: {why}")
            continue
        lines.append(f"  {res.studies} trials, {len(res.treatments)} treatments, "
                     f"{'common effect' if res.method == 'FE' else 'random effects (REML)'}"
                     f", tau2 = {res.tau2:.4f}")
        width = max(len(t) for t in res.treatments)
        for t in res.treatments[1:]:
            rel = res.relative(t, res.reference)
            lines.append(f"  {t:<{width}}  HR vs {res.reference} "
                         f"{rel.hr_text}  P-score {res.p_scores[t]:.2f}")
        inc = res.inconsistency
        lines.append(f"  inconsistency (between designs): Q = {inc.q:.2f} on {inc.df} df"
                     + (f", {p_text(inc.p)}" if inc.p is not None else " (no closed loop)")
                     + (f" with tau2 within designs {res.tau2_within_designs:.4f}; "
                        f"common-effect Q = {res.q_between.q:.2f}"
                        if res.q_between_random is not None and inc.p is not None else ""))
        lines.extend(f"  note: {note}" for note in res.notes)
    return "\n".join(lines)


def brief(items: Sequence[Fitted]) -> str:
    """One line per fitted network for ``mmlr run``: its treatments and the best-ranked one
    against the reference (the page and ``mmlr network`` have the rest)."""
    fitted = [(net, res) for net, res, _ in items if res is not None]
    if not fitted:
        return "no network with three or more connected treatments yet"
    lines = [f"{len(fitted)} network(s) fitted; `mmlr network` or /network for all of it"]
    for net, res in fitted:
        best, p_score = res.ranking()[0]
        text = f"{net.key}: {res.studies} trials, {len(res.treatments)} treatments; " \
               f"highest P-score {best} ({p_score:.2f})"
        if best != res.reference:
            rel = res.relative(best, res.reference)
            text += f", HR vs {res.reference} {rel.hr_text}"
        lines.append(text)
    return "\n".join(lines)
