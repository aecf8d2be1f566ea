"""Does the prioritised-order stopping test keep its promise on real reviews, and what does
stopping with it save?

    python bench/screening/stopping.py [--datasets A,B|all] [--replicates 10] [-j 2]
                                       [--process simulate|live]
    python bench/screening/stopping.py --report [--target 0.95] [--process simulate|live]

For each dataset of ../shared/data/screening and replicate r (the replicate protocol of
``replicates.py``: each record kept with probability 0.9, priors drawn with seed r) this runs
mmlr's default active learner to the end and keeps the order in which it screened. Then, after
every screened record, it asks each stopping rule whether screening may stop:

- ``ranked``: ``screening.stopping.first_stop`` (``ranked_p_value`` after every record) at
  the target recall, p < 0.05 (the test the queue and the digest show, and ``mmlr simulate
  --stop-recall`` replays; samples start after the two priors, which the model did not
  choose);
- ``50 excludes`` / ``100 excludes``: the rule of thumb "stop after N excludes in a row",
  the usual baseline (no error guarantee);
- ``oracle``: the first point where recall reaches the target (needs the labels; the floor).

``--process live`` replays the way the running service orders the work instead of
``mmlr simulate``'s loop: the model retrains after every ``MMLR_RETRAIN_MIN_DECISIONS`` (10)
decisions on the cross-validation fold ensemble with its flag threshold at
``MMLR_TARGET_RECALL``; records below the threshold whose fixed draw falls under
``MMLR_AUDIT_FRACTION`` form the audit sample (a salt per replicate), and the queue
interleaves one of them every ``screening.queue.AUDIT_EVERY`` places, as ``screening.queue``
does. Curators take the queue from the top.

For each rule: the share of records screened when it stops, the recall at that point, and
how often that recall is below the target. The test claims "recall ≥ target with 95%
confidence", so its failures should be at most about 5% of runs (a one-sided 95% Clopper–Pearson
bound on the failure rate is printed). The order is cached per (dataset, replicate) in
bench/results/stopping.json (git-ignored; the run resumes) and the rules are applied at
report time, so every rule sees the same screening orders.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import mean

import numpy as np
import sklearn
from scipy.stats import beta

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from cache import load, run_cached  # noqa: E402
from replicates import subsample  # noqa: E402
from tune import DATA  # noqa: E402

from screening.config import ScreeningConfig  # noqa: E402
from screening.features import FeatureSet  # noqa: E402
from screening.model import (  # noqa: E402
    FoldEnsemble,
    cross_validate,
    make_classifier,
    to_score,
)
from screening.queue import interleave  # noqa: E402
from screening.service import audit_draw  # noqa: E402
from screening.simulate import (  # noqa: E402
    LabelledDataset,
    choose_priors,
    load_dataset,
    run_active_learning,
    screening_sequence,
)
from screening.stopping import ALPHA, first_stop  # noqa: E402
from store.errors import ScreeningError  # noqa: E402
from store.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "stopping.json"
SHARE = 0.9
PRIORS = 2  # the first two screened records are the priors: no sample reaches before them


def _key(dsname: str, replicate: int, process: str = "simulate") -> str:
    return f"{dsname}|{replicate}|{SHARE}" + ("" if process == "simulate" else f"|{process}")


def _run_one(job: tuple[str, int, str]) -> tuple[str, dict[str, object]]:
    """Screen one replicate to the end; the labels in screening order, priors first."""
    dsname, replicate, process = job
    data = subsample(load_dataset(DATA / f"{dsname}.csv.gz"), replicate, SHARE)
    started = time.perf_counter()
    priors = choose_priors(data, replicate)
    if process == "live":
        sequence = live_order(data, priors, f"bench-{replicate}")
    else:
        order = run_active_learning(data, priors, ScreeningConfig())
        sequence = screening_sequence(len(data.labels), priors, order)
    labels = "".join(str(int(data.labels[i])) for i in sequence)
    return _key(dsname, replicate, process), {
        "labels": labels, "seconds": round(time.perf_counter() - started, 2)}


def live_order(data: LabelledDataset, priors: tuple[int, int], salt: str) -> list[int]:
    """The order in which curators taking the live queue from the top screen ``data``."""
    # The service's defaults (read from the settings' fields, not the environment).
    setting = {name: Settings.model_fields[name].default
               for name in ("target_recall", "audit_fraction", "retrain_min_decisions")}
    config = ScreeningConfig(target_recall=setting["target_recall"])
    X = FeatureSet.from_config(config.features).fit_transform(data.docs)
    y = data.labels
    draw = np.array([audit_draw(int(rid), salt=salt) for rid in data.record_ids])
    labelled = np.zeros(len(y), dtype=bool)
    labelled[list(priors)] = True
    order = list(priors)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        while y[~labelled].any():
            train = np.flatnonzero(labelled)
            pool = np.flatnonzero(~labelled)
            try:  # the service calibrates once cross-validation is possible
                cv = cross_validate(X[train], y[train], config)
                scores = to_score(FoldEnsemble(cv.models).decision(X[pool]))
                flagged = scores >= cv.threshold
            except ScreeningError:
                scores = to_score(make_classifier(config).fit(X[train], y[train])
                                  .decision(X[pool]))
                flagged = np.zeros(len(pool), dtype=bool)
            audit = ~flagged & (draw[pool] < setting["audit_fraction"])
            by_score = np.argsort(-scores, kind="stable")
            main = [int(pool[i]) for i in by_score if not audit[i]]
            sampled = [int(pool[i]) for i in by_score if audit[i]]
            # Curators take the top of a fresh queue listing until the model retrains.
            for idx in interleave(main, sampled, setting["retrain_min_decisions"]):
                labelled[idx] = True
                order.append(idx)
    return screening_sequence(len(y), priors, order[len(priors):])


def run(datasets: list[str], replicates: int, jobs: int, process: str) -> None:
    cache = load(RESULTS)
    todo = [(d, r, process) for r in range(replicates) for d in datasets
            if _key(d, r, process) not in cache]
    run_cached(RESULTS, todo, _run_one, jobs,
               lambda key, res: f"{key}: {len(res['labels'])} records, {res['seconds']} s")


# ----------------------------------------------------------------------------- the rules
def stop_ranked(y: np.ndarray, target: float) -> int:
    """Records screened when the prioritised-order test first rejects (all of them if never)."""
    t = first_stop(y, target_recall=target, start=PRIORS)
    return len(y) if t is None else t


def stop_consecutive(y: np.ndarray, run_length: int) -> int:
    """Records screened when ``run_length`` excludes in a row first occur (after the priors)."""
    streak = 0
    for t in range(PRIORS, len(y)):
        streak = 0 if y[t] else streak + 1
        if streak >= run_length:
            return t + 1
    return len(y)


def stop_oracle(y: np.ndarray, target: float) -> int:
    """The fewest records screened (in this order) whose includes reach the target recall."""
    need = int(np.ceil(target * y.sum() - 1e-9))
    return int(np.searchsorted(np.cumsum(y), need) + 1)


RULES = ("ranked", "50 excludes", "100 excludes", "oracle")


def outcomes(y: np.ndarray, target: float) -> dict[str, tuple[int, float]]:
    """(records screened, recall) at each rule's stop."""
    stops = {"ranked": stop_ranked(y, target), "50 excludes": stop_consecutive(y, 50),
             "100 excludes": stop_consecutive(y, 100), "oracle": stop_oracle(y, target)}
    total = int(y.sum())
    return {rule: (t, float(y[:t].sum()) / total) for rule, t in stops.items()}


def report(datasets: list[str], replicates: int, target: float, process: str) -> str:
    cache = load(RESULTS)
    lines = [f"Screening order: {process}. Stopping at a {target:.0%} recall target; per "
             "dataset the mean over the replicates of the share of records screened at the "
             f"stop, the mean and lowest recall there, and the runs stopping below "
             f"{target:.0%} (failures)", "",
             "| dataset | runs | includes | " + " | ".join(
                 f"{r}: screened / recall (min) / failures" for r in RULES) + " |",
             "|" + " --- |" * (len(RULES) + 3)]
    pooled: dict[str, list[tuple[float, float]]] = {r: [] for r in RULES}
    per_set_ratio: list[float] = []
    for d in datasets:
        runs = [np.array([int(c) for c in str(cache[_key(d, r, process)]["labels"])])
                for r in range(replicates) if _key(d, r, process) in cache]
        if not runs:
            continue
        res = [outcomes(y, target) for y in runs]
        cells = []
        for rule in RULES:
            shares = [o[rule][0] / len(y) for o, y in zip(res, runs, strict=True)]
            recalls = [o[rule][1] for o in res]
            pooled[rule].extend(zip(shares, recalls, strict=True))
            fails = sum(r < target - 1e-12 for r in recalls)
            cells.append(f"{mean(shares):.2f} / {mean(recalls):.3f} ({min(recalls):.3f}) / "
                         f"{fails}")
        per_set_ratio.append(mean(o["ranked"][0] for o in res)
                             / mean(o["oracle"][0] for o in res))
        lines.append(f"| {d} | {len(runs)} | {mean(int(y.sum()) for y in runs):.0f} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    for rule in RULES:
        rows = pooled[rule]
        if not rows:
            continue
        n = len(rows)
        fails = sum(r < target - 1e-12 for _, r in rows)
        upper = float(beta.ppf(1 - ALPHA, fails + 1, n - fails)) if fails < n else 1.0
        lines.append(f"- `{rule}`: {n} runs, mean share screened {mean(s for s, _ in rows):.3f}, "
                     f"mean recall {mean(r for _, r in rows):.3f}, lowest "
                     f"{min(r for _, r in rows):.3f}; below {target:.0%} in {fails} "
                     f"({fails / n:.1%}; one-sided 95% upper bound {upper:.1%})")
    if per_set_ratio:
        lines.append(f"- records screened by `ranked` / by `oracle`: mean over datasets "
                     f"{mean(per_set_ratio):.2f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="all", help="comma-separated names, or 'all'")
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--process", choices=("simulate", "live"), default="simulate",
                        help="replay mmlr simulate's loop, or the live service's order")
    parser.add_argument("--report", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the benchmark needs ../shared/data/screening")
    if not 0.5 <= args.target < 1.0:
        parser.error("--target must be in [0.5, 1)")
    sizes = {p.name.removesuffix(".csv.gz"): p.stat().st_size for p in DATA.glob("*.csv.gz")}
    datasets = (sorted(sizes, key=sizes.__getitem__) if args.datasets == "all"
                else args.datasets.split(","))
    if not args.report:
        run(datasets, args.replicates, args.jobs, args.process)
    print(report(datasets, args.replicates, args.target, args.process))


if __name__ == "__main__":
    main()
