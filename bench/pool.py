"""Pooling throughput: ``pool_all`` + a forest plot per analysis vs one metafor invocation.

Builds a fresh SQLite database with 100 synthetic trials (4 drugs, 3 settings, PFS/EFS/TTP/OS,
1–3 data cuts each, a few strategy trials and unverified estimates), then in one run:

1. ours: ``pool_all`` (selection, REML + HKSJ, Q-profile τ² CI, leave-one-out, cumulative,
   subgroups, sequential monitoring, small-study effects, snapshot writes) and
   ``render_forest`` (PNG) for every analysis;
2. baseline: one ``Rscript`` over the same per-analysis inputs (the ``mmlr export metafor``
   CSV): ``rma`` + ``predict`` + ``confint`` + ``leave1out`` + ``cumul``, from 3 trials
   ``regtest`` + ``trimfill``, and a ``forest()`` PNG per analysis — R start-up and
   ``library(metafor)`` included, as a user would run it.

Also times the statistics alone (no database, no plots) without and with the sequential
monitoring, the small-study effects (Egger + trim-and-fill) of every analysis on their own,
against those statistics, and the digest's palette PNGs against full-colour ones.

    python bench/pool.py [--trials 100] [--seed 1] [--repeat 3]

Prints both times (best of ``--repeat``) and the ratio metafor / ours.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.export_metafor import write_metafor_export  # noqa: E402
from reports.figures import DPI, figure_bytes  # noqa: E402
from reports.forest import _draw, forest_data, render_forest  # noqa: E402
from reports.pool import compute_analysis, pool_all  # noqa: E402
from reports.selection import all_analyses, latest_results, load_candidates  # noqa: E402
from reports.sequential import MonitoringPlan  # noqa: E402
from reports.small_study import small_study_effects  # noqa: E402
from store.context import AppContext, make_context  # noqa: E402
from store.models import Estimate, PooledResult, Trial  # noqa: E402
from store.settings import Settings  # noqa: E402

R_BENCH = r"""
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(args[1], stringsAsFactors = FALSE)
outdir <- args[2]
i <- 0
for (key in unique(dat$analysis)) {
  d <- dat[dat$analysis == key, ]
  res <- rma(yi = d$yi, sei = d$sei, slab = d$study, method = d$method[1], test = d$test[1])
  p <- predict(res)
  if (res$k > 1) {
    ci <- confint(res)
    l1 <- leave1out(res)
    cm <- cumul(res)
  }
  if (res$k >= 3 && length(unique(d$sei)) > 1) {
    eg <- regtest(rma(yi = d$yi, sei = d$sei, method = "FE"), model = "lm")
    tf <- trimfill(res)
  }
  i <- i + 1
  png(file.path(outdir, sprintf("forest_%03d.png", i)), width = 640, height = 400)
  forest(res, atransf = exp)
  dev.off()
}
"""

DRUGS = ("thalidomide", "lenalidomide", "bortezomib", "ixazomib")
SETTINGS = ("post_asct", "non_transplant", "mixed")


def seed_trials(ctx: AppContext, n: int, seed: int) -> int:
    rng = random.Random(seed)
    count = 0
    with ctx.sessions() as s:
        for i in range(n):
            drug = DRUGS[i % len(DRUGS)]
            setting = SETTINGS[rng.randrange(3)]
            trial = Trial(name=f"Synthetic {i:03d}", drug=drug, setting=setting,
                          is_strategy=rng.random() < 0.08)
            s.add(trial)
            s.flush()
            true_log_hr = rng.gauss(-0.4 if drug != "ixazomib" else -0.2, 0.2)
            for endpoint in ("PFS" if rng.random() < 0.7 else rng.choice(("EFS", "TTP")), "OS"):
                if endpoint == "OS" and rng.random() < 0.4:
                    continue
                for cut in range(rng.randint(1, 3)):
                    se = rng.uniform(0.08, 0.35)
                    y = (true_log_hr * (0.5 if endpoint == "OS" else 1)) + rng.gauss(0, se)
                    s.add(Estimate(
                        trial_id=trial.id, endpoint=endpoint, setting=setting, hr=math.exp(y),
                        ci_low=math.exp(y - 1.959964 * se), ci_high=math.exp(y + 1.959964 * se),
                        log_hr=y, se=se, data_cut=date(2005 + cut * 3 + i % 3, 1 + i % 12, 1),
                        verified=rng.random() < 0.9))
                    count += 1
        s.commit()
    return count


def run_ours(ctx: AppContext) -> tuple[float, int]:
    with ctx.sessions() as s:  # start from no snapshots, so every analysis is written
        for row in s.exec(__import__("sqlmodel").select(PooledResult)).all():
            s.delete(row)
        s.commit()
    start = time.perf_counter()
    pool_all(ctx)
    with ctx.sessions() as s:
        snaps = [p for p in latest_results(s) if p.k > 0]
    for snap in snaps:
        render_forest(snap, fmt="png")
    return time.perf_counter() - start, len(snaps)


def run_statistics(ctx: AppContext, plan: MonitoringPlan | None) -> float:
    """Every analysis' statistics alone (no database writes, no plots), with or without the
    sequential-monitoring view: what monitoring adds to a pooling run."""
    with ctx.sessions() as s:
        candidates = load_candidates(s)
    start = time.perf_counter()
    for analysis in all_analyses(candidates, None):
        compute_analysis(analysis, candidates, method="REML", ci="hksj", plan=plan)
    return time.perf_counter() - start


def run_small_study(ctx: AppContext) -> float:
    """Egger's test and trim-and-fill of every analysis on its own (the part of the statistics
    that ``reports.small_study`` adds), over the inputs the analyses select."""
    with ctx.sessions() as s:
        candidates = load_candidates(s)
    inputs = [o.inputs for o in (compute_analysis(a, candidates, method="REML", ci="hksj")
                                 for a in all_analyses(candidates, None)) if o.inputs]
    start = time.perf_counter()
    for rows in inputs:
        small_study_effects([r["yi"] for r in rows], [r["sei"] for r in rows], method="REML",
                            ci="hksj")
    return time.perf_counter() - start


def run_png(ctx: AppContext) -> tuple[float, int, float, int]:
    """Every analysis' forest plot as the digest's PNG (``reports.figures``: drawn, then a
    64-colour palette) against the full-colour PNG matplotlib writes: (seconds, bytes) each."""
    with ctx.sessions() as s:
        figures = [_draw(forest_data(p, None)) for p in latest_results(s) if p.k > 0]
    start = time.perf_counter()
    ours = sum(len(figure_bytes(fig, "png")) for fig in figures)
    mid = time.perf_counter()
    full = 0
    for fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        full += len(buf.getvalue())
    return mid - start, ours, time.perf_counter() - mid, full


def run_metafor(rscript: str, csv_path: Path, work: Path) -> float:
    script = work / "bench.R"
    script.write_text(R_BENCH)
    plots = work / "rplots"
    plots.mkdir(exist_ok=True)
    start = time.perf_counter()
    subprocess.run([rscript, str(script), str(csv_path), str(plots)], check=True,
                   capture_output=True, timeout=1800)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rscript = shutil.which("Rscript")
    if rscript is None:
        print("Rscript not found: the baseline needs R with metafor", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="mmlr-bench-pool-") as tmp:
        work = Path(tmp)
        settings = Settings(env="test", data_dir=work / "data",
                            database_url=f"sqlite:///{work / 'bench.sqlite3'}")
        ctx = make_context(settings)
        n_est = seed_trials(ctx, args.trials, args.seed)
        ours = []
        for _ in range(args.repeat):
            elapsed, n_analyses = run_ours(ctx)
            ours.append(elapsed)
        # Alternated, so both see the same machine load.
        plain, monitored, funnel, pngs = [], [], [], []
        for _ in range(args.repeat):
            plain.append(run_statistics(ctx, None))
            monitored.append(run_statistics(ctx, MonitoringPlan()))
            funnel.append(run_small_study(ctx))
            pngs.append(run_png(ctx))
        csv_path, _ = write_metafor_export(ctx, work / "export")
        theirs = [run_metafor(rscript, csv_path, work) for _ in range(args.repeat)]
        ctx.dispose()
    best_ours, best_r = min(ours), min(theirs)
    print(f"inputs: {args.trials} trials, {n_est} estimates, {n_analyses} analyses with data")
    print(f"ours    pool_all + {n_analyses} PNG forest plots: {best_ours:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"metafor one Rscript, rma+predict+confint+leave1out+cumul+regtest+trimfill+forest PNG: "
          f"{best_r:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in theirs)})")
    print(f"ratio metafor/ours: {best_r / best_ours:.2f}x")
    print(f"statistics of every analysis without / with sequential monitoring: "
          f"{min(plain):.2f} s / {min(monitored):.2f} s "
          f"(monitoring costs {min(monitored) / min(plain):.2f}x)")
    print(f"small-study effects of every analysis alone: {min(funnel):.2f} s "
          f"({100 * min(funnel) / min(monitored):.0f}% of the statistics with monitoring)")
    palette_s, palette_b = min(p[0] for p in pngs), pngs[0][1]
    full_s, full_b = min(p[2] for p in pngs), pngs[0][3]
    print(f"forest PNGs, palette (digest) / full colour: {palette_s:.2f} s / {full_s:.2f} s "
          f"({palette_s / full_s:.2f}x), {palette_b / 1024:.0f} KB / {full_b / 1024:.0f} KB "
          f"({palette_b / full_b:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
