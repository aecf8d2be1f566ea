"""Benchmark: mmlr's active learner vs ASReview's default model (ELAS u4) on every dataset.

    python bench/screening/run_benchmark.py [--datasets A,B] [--seeds 5] [--tools mmlr,asreview]
    python bench/screening/run_benchmark.py --report     # table from the cached results

For each dataset of ../shared/data/screening and each seed, both tools start from the same two
priors (drawn by ``screening.simulate.choose_priors`` with the seed) and run through their own
``simulate`` command as a subprocess, so wall time is measured the same way for both. ASReview is
installed from PyPI into a separate venv outside the repository (a peer to measure, never a
dependency). Its labelling order is read from the project's ``results.db`` and scored with OUR
metric definitions (``screening.metrics``). Every (tool, dataset, seed) result is cached in
bench/results/screening.json (git-ignored), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from screening.metrics import order_metrics  # noqa: E402
from screening.simulate import choose_priors, load_dataset  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "screening"
RESULTS = ROOT / "bench" / "results" / "screening.json"
VENV = Path(os.environ.get("MMLR_BENCH_ASREVIEW_VENV",
                           Path.home() / ".cache" / "mmlr-bench" / "asreview-venv"))
ASREVIEW_SPEC = "asreview>=2,<4"
#: `mmlr simulate --json` rounds metrics to 6 decimals, ASReview's are scored unrounded: a
#: difference this small is the rounding of an identical screening order, i.e. a tie.
TIE = 5e-6
METRICS = ("wss_95", "wss_100", "recall_at_10", "recall_at_25", "n_95", "n_100", "wall")


def ensure_asreview() -> Path:
    exe = VENV / "bin" / "asreview"
    if not exe.exists():
        print(f"creating {VENV} and installing {ASREVIEW_SPEC} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", ASREVIEW_SPEC], check=True)
    return exe


def load_cache() -> dict[str, dict]:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return {}


def save_result(key: str, result: dict) -> dict[str, dict]:
    """Merge one result into the cache file under an exclusive lock: several benchmark
    processes (e.g. one per tool) may run at once and must not overwrite each other."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = load_cache()
        cache[key] = result
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        tmp.replace(RESULTS)
    return cache


def run_mmlr(path: Path, seed: int, prior_ids: tuple[int, int]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLR_")}
    env["MMLR_DATA_DIR"] = tempfile.mkdtemp(prefix="mmlr-bench-")
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "simulate", str(path), "--seed", str(seed),
         "--prior-ids", f"{prior_ids[0]},{prior_ids[1]}", "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    result = json.loads(out.stdout)
    result["wall"] = wall
    return result


def run_asreview(path: Path, seed: int, prior_idx: tuple[int, int], labels: list[int]) -> dict:
    exe = ensure_asreview()
    with tempfile.TemporaryDirectory(prefix="asreview-bench-") as tmp:
        csv_path = Path(tmp) / (path.name.removesuffix(".gz"))
        csv_path.write_bytes(gzip.decompress(path.read_bytes()))
        project = Path(tmp) / "sim.asreview"
        started = time.perf_counter()
        subprocess.run(
            [str(exe), "simulate", str(csv_path), "--prior-idx", str(prior_idx[0]),
             str(prior_idx[1]), "--seed", str(seed), "-o", str(project)],
            check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - started
        with zipfile.ZipFile(project) as zf:
            zf.extract("results.db", tmp)
        con = sqlite3.connect(Path(tmp) / "results.db")
        rows = con.execute("SELECT r.record_id, r.label FROM results r "
                           "ORDER BY r.time, r.rowid").fetchall()
        con.close()
    priors = set(prior_idx)
    order = [rid for rid, _ in rows if rid not in priors]
    # ASReview's record_id is the 0-based row; check its labels agree with ours.
    for rid, label in rows:
        if int(label) != labels[rid]:
            raise RuntimeError(f"ASReview label of row {rid} differs from the dataset's")
    seq = [labels[i] for i in order]
    m = order_metrics(seq, n=len(labels) - 2, p=sum(labels) - 1)
    return {"wss_95": m.wss_95, "wss_100": m.wss_100, "recall_at_10": m.recall_at_10,
            "recall_at_25": m.recall_at_25, "n_95": m.n_95, "n_100": m.n_100, "wall": wall,
            "n_records": len(labels), "n_included": sum(labels)}


def mmlr_tag() -> str:
    """Short fingerprint of the default configuration: cached mmlr results of another
    configuration are not reused."""
    from screening.config import ScreeningConfig

    blob = json.dumps(ScreeningConfig().to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def tool_key(tool: str) -> str:
    return f"mmlr@{mmlr_tag()}" if tool == "mmlr" else tool


def _run_task(task: tuple[str, Path, int, tuple[int, int], tuple[int, int], list[int], str]
              ) -> None:
    tool, path, seed, pos_neg, prior_ids, labels, key = task
    if key in load_cache():  # re-read: another process may have done it
        return
    if tool == "mmlr":
        res = run_mmlr(path, seed, prior_ids)
    else:
        res = run_asreview(path, seed, pos_neg, labels)
    res["priors"] = list(prior_ids)
    save_result(key, res)
    print(f"{key}: WSS@95 {res['wss_95']:.3f} n100 {res['n_100']} {res['wall']:.1f}s",
          flush=True)


def run(datasets: list[Path], seeds: int, tools: list[str], jobs: int = 1) -> dict[str, dict]:
    """Seeds in the outer loop: an interrupted run has every dataset for the first seeds.
    ``jobs`` > 1 runs that many simulations at once (each is its own subprocess)."""
    tasks = []
    loaded = {path: load_dataset(path) for path in datasets}
    for seed in range(seeds):
        for path, data in loaded.items():
            labels = [int(v) for v in data.labels]
            pos, neg = choose_priors(data, seed)
            prior_ids = (data.record_ids[pos], data.record_ids[neg])
            for tool in tools:
                key = f"{tool_key(tool)}|{data.name}|{seed}"
                tasks.append((tool, path, seed, (pos, neg), prior_ids, labels, key))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(_run_task, tasks))
    return load_cache()


def report(cache: dict[str, dict], datasets: list[str]) -> str:
    mine, peer = tool_key("mmlr"), tool_key("asreview")
    lines = [
        f"mmlr configuration {mine.split('@')[1]}; ASReview {ASREVIEW_SPEC} default model "
        "(ELAS u4); means over the seeds both tools finished.",
        "",
        "| dataset | seeds | WSS@95 mmlr | WSS@95 ASR | Δ | WSS@100 mmlr | WSS@100 ASR | "
        "recall@10 mmlr | recall@10 ASR | n100 mmlr | n100 ASR | wall s mmlr | wall s ASR | "
        "time ratio |",
        "|" + " --- |" * 14,
    ]
    means: dict[str, list[float]] = {}
    keys = ("m95", "a95", "d95", "m100", "a100", "mr10", "ar10", "mn", "an", "mw", "aw", "tr")

    def fmt(vals: list[float]) -> str:
        return " | ".join(f"{v:.1f}" if i in (7, 8) else f"{v:.2f}" if i in (9, 10, 11)
                          else f"{v:.3f}" for i, v in enumerate(vals))

    for name in datasets:
        seeds = sorted(s for s in range(100)
                       if f"{mine}|{name}|{s}" in cache and f"{peer}|{name}|{s}" in cache)
        if not seeds:
            continue
        agg = {}
        for tool in (mine, peer):
            rows = [cache[f"{tool}|{name}|{s}"] for s in seeds]
            agg[tool] = {m: mean(float(r[m]) for r in rows) for m in METRICS}
        a, b = agg[mine], agg[peer]
        d95 = a["wss_95"] - b["wss_95"]
        d95 = 0.0 if abs(d95) < TIE else d95
        vals = [a["wss_95"], b["wss_95"], d95, a["wss_100"], b["wss_100"], a["recall_at_10"],
                b["recall_at_10"], a["n_100"], b["n_100"], a["wall"],
                b["wall"], a["wall"] / b["wall"]]
        for key, v in zip(keys, vals, strict=True):
            means.setdefault(key, []).append(v)
        lines.append(f"| {name} | {len(seeds)} | {fmt(vals)} |")
    if means:
        n = len(means["m95"])
        lines.append(f"| **mean of {n}** | | {fmt([mean(means[k]) for k in keys])} |")
        better = sum(1 for d in means["d95"] if d >= 0)  # ties were set to 0.0 above
        fewer = sum(1 for x, y in zip(means["mn"], means["an"], strict=True) if x <= y)
        lines.append("")
        lines.append(f"WSS@95 ≥ ASReview on {better}/{n} datasets; records to 100% ≤ ASReview "
                     f"on {fewer}/{n}; total wall time ratio mmlr/ASReview "
                     f"{sum(means['mw']) / sum(means['aw']):.2f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="", help="comma-separated names (default: all)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tools", default="mmlr,asreview")
    parser.add_argument("--report", action="store_true", help="only print the table")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="simulations at once (wall times then include the contention)")
    args = parser.parse_args()
    paths = sorted(DATA.glob("*.csv.gz"), key=lambda p: p.stat().st_size)
    if args.datasets:
        wanted = set(args.datasets.split(","))
        paths = [p for p in paths if p.name.removesuffix(".csv.gz") in wanted]
    names = [p.name.removesuffix(".csv.gz") for p in paths]
    if not args.report:
        run(paths, args.seeds, args.tools.split(","), args.jobs)
    print(report(load_cache(), names))


if __name__ == "__main__":
    main()
