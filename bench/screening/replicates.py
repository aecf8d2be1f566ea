"""How much of a per-dataset ΔWSS@95 is the model, and how much is the one dataset it ran on?

    python bench/screening/replicates.py [--datasets A,B|all] [--replicates 20] [--share 0.9]
                                         [--variants default] [--baseline elas] [-j 2]
    python bench/screening/replicates.py --report [--variants …]

The benchmark compares mmlr with ASReview once per dataset (five seeds, which differ only in
the two priors; the runs converge after the first includes, so they are nearly one
observation). WSS@95 is the position of one include near the tail: a model that differs at
all from ELAS u4 moves it by a few records either way. This script measures that spread.

Each *replicate* r of a dataset keeps a random ``--share`` of its records (each record kept
independently with that probability, drawn from a generator seeded by the dataset's name and
r; at least three includes are kept), draws the two priors with seed r and runs the baseline
(by default ``elas``: our exact replica of ASReview's ELAS u4, word TF-IDF + the same linear
SVM, which ranks identically to ASReview on every dataset without controlled terms) and each
variant on the *same* replicate, from the same priors. The paired differences
Δ_r = WSS@95(variant) − WSS@95(baseline) estimate the expected difference on datasets like
this one, with a standard error and a 95% t interval over the replicates: a Δ whose interval
excludes 0 is the model; one whose interval contains 0 cannot be told from the draw of records.

Variants are ``tune.py``'s (same names). Results are cached per (variant, dataset, replicate)
in bench/results/replicates.json (git-ignored); an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path
from statistics import mean, stdev

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from cache import load, run_cached  # noqa: E402
from tune import DATA, VARIANTS, simulate_variant  # noqa: E402

from screening.simulate import LabelledDataset, load_dataset  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replicates.json"
MIN_INCLUDES = 3


def subsample(data: LabelledDataset, replicate: int, share: float) -> LabelledDataset:
    """The records of replicate ``replicate``: each kept with probability ``share``."""
    digest = hashlib.sha256(f"{data.name}|{replicate}|{share}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    for _ in range(100):
        keep = np.flatnonzero(rng.random(len(data.labels)) < share)
        if int(data.labels[keep].sum()) >= MIN_INCLUDES and int((data.labels[keep] == 0).sum()):
            break
    else:  # pragma: no cover - only for datasets with fewer than MIN_INCLUDES includes
        raise SystemExit(f"{data.name}: cannot keep {MIN_INCLUDES} includes at share {share}")
    return LabelledDataset(f"{data.name}#r{replicate}", [data.record_ids[i] for i in keep],
                           [data.docs[i] for i in keep], data.labels[keep].copy())


def _run_one(job: tuple[str, str, int, float]) -> tuple[str, dict[str, float]]:
    variant, dsname, replicate, share = job
    data = subsample(load_dataset(DATA / f"{dsname}.csv.gz"), replicate, share)
    return _key(variant, dsname, replicate, share), simulate_variant(data, variant, replicate)


def _key(variant: str, dsname: str, replicate: int, share: float) -> str:
    return f"{variant}|{dsname}|{replicate}|{share}"


def run(variants: list[str], datasets: list[str], replicates: int, share: float,
        jobs: int) -> None:
    cache = load(RESULTS)
    todo = [(v, d, r, share) for r in range(replicates) for d in datasets for v in variants
            if _key(v, d, r, share) not in cache]
    # Replicates in the outer loop: an interrupted run has every dataset for the first ones.
    run_cached(RESULTS, todo, _run_one, jobs,
               lambda key, res: f"{key}: WSS@95 {res['wss_95']:.3f} {res['seconds']:.1f}s")


def paired(deltas: list[float]) -> dict[str, float]:
    """Mean, standard error and 95% t interval of paired differences."""
    n = len(deltas)
    mu = mean(deltas)
    se = stdev(deltas) / math.sqrt(n) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * se if n > 1 else math.nan
    return {"n": n, "mean": mu, "se": se, "low": mu - half, "high": mu + half,
            "share_ge0": sum(d >= -5e-6 for d in deltas) / n}


def report(variants: list[str], baseline: str, datasets: list[str], replicates: int,
           share: float) -> str:
    cache = load(RESULTS)
    lines = [f"ΔWSS@95 of each variant against `{baseline}` on the same replicate "
             f"({share:.0%} of the records, same priors); mean [95% t interval] over the "
             "replicates both finished, and the share of replicates with Δ ≥ 0", "",
             "| dataset | n | " + " | ".join(variants) + " |",
             "|" + " --- |" * (len(variants) + 2)]
    summary: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for d in datasets:
        cells, n_used = [], 0
        for v in variants:
            deltas = [cache[_key(v, d, r, share)]["wss_95"] - cache[_key(baseline, d, r, share)]
                      ["wss_95"] for r in range(replicates)
                      if _key(v, d, r, share) in cache and _key(baseline, d, r, share) in cache]
            if len(deltas) < 2:
                cells.append("–")
                continue
            s = paired(deltas)
            summary[v].append(s)
            n_used = max(n_used, len(deltas))
            mark = "**" if s["low"] > 0 or s["high"] < 0 else ""
            cells.append(f"{mark}{s['mean']:+.3f}{mark} [{s['low']:+.3f}, {s['high']:+.3f}] "
                         f"{s['share_ge0']:.0%}")
        lines.append(f"| {d} | {n_used} | " + " | ".join(cells) + " |")
    lines.append("")
    for v in variants:
        rows = summary[v]
        if not rows:
            continue
        above = sum(s["low"] > 0 for s in rows)
        below = sum(s["high"] < 0 for s in rows)
        lines.append(f"`{v}`: mean Δ {mean(s['mean'] for s in rows):+.3f} over {len(rows)} "
                     f"datasets; interval above 0 on {above}, below 0 on {below}, containing 0 "
                     f"on {len(rows) - above - below} (bold: the interval excludes 0).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="all", help="comma-separated names, or 'all'")
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--share", type=float, default=0.9)
    parser.add_argument("--variants", default="default")
    parser.add_argument("--baseline", default="elas")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not 0.5 <= args.share < 1.0:
        parser.error("--share must be in [0.5, 1)")
    sizes = {p.name.removesuffix(".csv.gz"): p.stat().st_size for p in DATA.glob("*.csv.gz")}
    datasets = (sorted(sizes, key=sizes.__getitem__) if args.datasets == "all"
                else args.datasets.split(","))
    unknown = [v for v in [args.baseline, *args.variants.split(",")] if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; see tune.py's VARIANTS")
    variants = args.variants.split(",")
    if not args.report:
        run([args.baseline, *variants], datasets, args.replicates, args.share, args.jobs)
    print(report(variants, args.baseline, datasets, args.replicates, args.share))


if __name__ == "__main__":
    main()
