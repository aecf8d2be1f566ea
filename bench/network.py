"""Benchmark of the network meta-analysis: our fit against R metafor's, and the page against
the database work it wraps.

    python bench/network.py [--networks 20] [--treatments 8] [--trials 40] [--requests 10]

1. ``--networks`` random connected networks of ``--treatments`` treatments and ``--trials``
   trials (a fifth of them three-arm, heterogeneity τ = 0.15), fitted by
   ``reports.network.network_meta_analysis`` (REML) and, in one Rscript, by metafor's
   ``rma.mv(yi, V, mods = X, random = ~ comp | study, rho = 1/2)``; R's time is measured inside
   R (start-up and ``library(metafor)`` excluded, reported apart). Both sides fit the same
   networks; the largest difference in the effects is printed as a check.
2. A throw-away SQLite database with the first network's trials stored as trials and verified
   estimates: ``GET /network`` (every network of the review fitted, plot and league table
   rendered) against its baseline ``reports.selection.load_candidates`` (reading the evidence).
Prints median or best times and the ratios. Uses the in-process TestClient (no network).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from timing import BENCH_PASSWORD, median_ms, working_folder

# The project first: this folder's own screening/ (the screening benchmark) must not stand in
# for the package when the web app imports screening.stopping.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

R_SCRIPT = r"""
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(args[1], stringsAsFactors = FALSE)
nets <- split(dat, dat$network)
fit <- function(d) {
  trts <- setdiff(sort(unique(c(d$treat, d$control))), d$ref[1])
  x <- matrix(0, nrow(d), length(trts), dimnames = list(NULL, trts))
  for (i in seq_len(nrow(d))) {
    if (d$treat[i] %in% trts) x[i, d$treat[i]] <- 1
    if (d$control[i] %in% trts) x[i, d$control[i]] <- -1
  }
  same <- outer(d$study, d$study, "==") * 1
  diag(same) <- 0
  V <- diag(d$sei^2, nrow(d)) + 0.5 * same * outer(d$sei, d$sei)
  d$comp <- paste(d$treat, d$control)
  res <- rma.mv(d$yi, V, mods = x, intercept = FALSE, random = ~ comp | study, rho = 1/2,
                data = d, method = "REML")
  data.frame(network = d$network[1], treatment = trts, estimate = as.vector(res$beta))
}
elapsed <- system.time(out <- do.call(rbind, lapply(nets, fit)))[["elapsed"]]
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("%.6f\n", elapsed))
"""


def _network(rng: np.random.Generator, treatments: int, trials: int) -> list[tuple]:
    """(study, treat, control, log HR, SE) rows of one random connected network; every
    contrast of a three-arm trial is against its first arm."""
    names = ["placebo"] + [f"drug{i}" for i in range(1, treatments)]
    effect = {n: (0.0 if n == "placebo" else float(rng.normal(-0.3, 0.2))) for n in names}
    order = [str(n) for n in rng.permutation(names)]
    arms = [[order[int(rng.integers(0, i))], order[i]] for i in range(1, treatments)]
    while len(arms) < trials:
        k = 3 if rng.random() < 0.2 else 2
        arms.append([str(a) for a in rng.choice(names, size=k, replace=False)])
    rows = []
    for n, trial in enumerate(arms, start=1):
        for arm in trial[1:]:
            se = float(rng.uniform(0.08, 0.35))
            y = effect[arm] - effect[trial[0]] + rng.normal(0, 0.15) + rng.normal(0, se)
            rows.append((f"T{n:03d}", arm, trial[0], float(y), se))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--treatments", type=int, default=8)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--keep", action="store_true",
                        help="keep the working folder (R input and output, the database)")
    args = parser.parse_args()
    with working_folder("network", keep=args.keep) as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from reports.network import Contrast, network_meta_analysis

    rng = np.random.default_rng(0)
    nets = [_network(rng, args.treatments, args.trials) for _ in range(args.networks)]
    contrasts = [[Contrast(*row) for row in rows] for rows in nets]

    def ours() -> list:
        return [network_meta_analysis(c, reference="placebo") for c in contrasts]

    best = min(median_ms(ours, 1) for _ in range(3)) / 1000
    fits = ours()

    inp, out, script = tmp / "in.csv", tmp / "out.csv", tmp / "fit.R"
    script.write_text(R_SCRIPT, encoding="utf-8")
    with inp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["network", "study", "treat", "control", "yi", "sei", "ref"])
        for i, rows in enumerate(nets):
            for study, treat, control, y, se in rows:
                w.writerow([i, study, treat, control, repr(y), repr(se), "placebo"])
    start = time.perf_counter()
    proc = subprocess.run(["Rscript", str(script), str(inp), str(out)], capture_output=True,
                          text=True, check=True)
    r_wall = time.perf_counter() - start
    r_fit = float(proc.stdout.strip().splitlines()[-1])
    diff = 0.0
    with out.open() as fh:
        for row in csv.DictReader(fh):
            res = fits[int(row["network"])]
            ours_est = res.relative(row["treatment"], "placebo").log_hr
            diff = max(diff, abs(ours_est - float(row["estimate"])))

    print(f"{args.networks} networks x {args.treatments} treatments x {args.trials} trials "
          f"({sum(len(n) for n in nets)} contrasts), REML")
    print(f"{'fit':40} {'seconds':>9}")
    print(f"{'metafor rma.mv (inside R, baseline)':40} {r_fit:9.3f}")
    print(f"{'reports.network (best of 3)':40} {best:9.3f}   ratio {best / r_fit:.2f}x")
    print(f"{'Rscript wall incl. start-up':40} {r_wall:9.3f}")
    print(f"largest |difference| in log HR: {diff:.1e}")

    _page(nets[0], args.requests, tmp)


def _page(rows: list[tuple], requests: int, tmp: Path) -> None:
    from fastapi.testclient import TestClient

    from reports.selection import load_candidates
    from screening.web.app import create_app
    from screening.web.auth import add_user
    from store.models import Estimate, Trial
    from store.settings import Settings

    settings = Settings(env="test", data_dir=tmp / "web", secret_key="b" * 48)
    app = create_app(settings)
    ctx = app.state.ctx
    with ctx.sessions() as session:
        done: set[str] = set()
        for study, treat, control, y, se in rows:
            if study in done:  # one contrast per trial, as the review stores it
                continue
            done.add(study)
            trial = Trial(name=study, drug=treat, regimen=treat,
                          comparator="placebo" if control == "placebo" else control,
                          setting="post_asct")
            session.add(trial)
            session.flush()
            assert trial.id is not None
            lo, hi = math.exp(y - 1.96 * se), math.exp(y + 1.96 * se)
            session.add(Estimate(trial_id=trial.id, endpoint="PFS", setting="post_asct",
                                 hr=math.exp(y), ci_low=lo, ci_high=hi, log_hr=y, se=se,
                                 verified=True))
        add_user(session, "bench@example.org", role="viewer", password=BENCH_PASSWORD)
        session.commit()
    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    assert client.post("/login", follow_redirects=False, data={
        "email": "bench@example.org", "password": BENCH_PASSWORD,
        "csrf_token": token.group(1)}).status_code == 303
    assert client.get("/network").status_code == 200

    def baseline() -> None:
        with ctx.sessions() as session:
            load_candidates(session)

    b = median_ms(baseline, requests)
    o = median_ms(lambda: client.get("/network?key=PFS/post_asct"), requests)
    print(f"GET /network ({len(done)} trials, {len({r[1] for r in rows} | {r[2] for r in rows})} "
          f"treatments), median of {requests}")
    print(f"{'load_candidates (baseline)':40} {b:9.1f} ms")
    print(f"{'GET /network':40} {o:9.1f} ms   ratio {o / b:.1f}x")
    ctx.dispose()


if __name__ == "__main__":
    main()
