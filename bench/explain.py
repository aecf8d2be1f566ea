"""Benchmark of the record page's "Why this score": what the per-app model cache saves.

    python bench/explain.py [--dataset cohen2006_ADHD] [--views 30]

Trains the default model (``train_model``, 5-fold ensemble) on a labelled screening dataset
from ../shared/data/screening, serialises it as ``mmlr screen`` stores it, then times in the
same process, per record-page view:
- baseline: load the artifact (``ScreeningModel.from_bytes``) + ``explain_record`` — what
  every page view would pay without the cache;
- ``explain_record`` on a loaded model (names the vocabulary each time);
- ours: a cache hit (``ModelCache.get``, a kept ``Explainer``) + ``Explainer.explain``;
- for scale, ``model.decision`` of one record (scoring alone).
Prints median milliseconds and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "screening"


def _median_ms(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm-up
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cohen2006_ADHD")
    parser.add_argument("--views", type=int, default=30)
    args = parser.parse_args()

    from screening.config import ScreeningConfig
    from screening.explain import explain_record
    from screening.model import ScreeningModel, train_model
    from screening.simulate import load_dataset
    from screening.web.explanations import ModelCache
    from store.models import ModelVersion

    data = load_dataset(DATA / f"{args.dataset}.csv.gz")
    config = ScreeningConfig()
    start = time.perf_counter()
    model, _ = train_model(data.docs, data.labels, config)
    train_s = time.perf_counter() - start
    blob = model.to_bytes()
    mv = ModelVersion(id=1, name=config.name, config=config.to_dict(), artifact=blob,
                      threshold=model.threshold)
    cache = ModelCache()
    cache.get(mv)
    docs = data.docs

    def uncached(i: int) -> None:
        m = ScreeningModel.from_bytes(blob, config=config, threshold=model.threshold)
        explain_record(m, docs[i % len(docs)])

    def loaded(i: int) -> None:
        explain_record(model, docs[i % len(docs)])

    def cached(i: int) -> None:
        explainer = cache.get(mv)
        assert explainer is not None
        explainer.explain(docs[i % len(docs)])

    def score_only(i: int) -> None:
        model.decision([docs[i % len(docs)]])

    base = _median_ms(uncached, args.views)
    mid = _median_ms(loaded, args.views)
    ours = _median_ms(cached, args.views)
    score = _median_ms(score_only, args.views)
    print(f"dataset {args.dataset}: {len(docs)} records, {data.n_included} includes; "
          f"trained in {train_s:.1f} s; artifact {len(blob) / 1e6:.2f} MB; "
          f"{len(model.classifier.members)} fold models")
    print(f"load + explain (no cache): {base:8.1f} ms")
    print(f"explain_record, loaded:    {mid:8.1f} ms   ratio {base / mid:.1f}x faster")
    print(f"cache hit + explain:       {ours:8.1f} ms   ratio {base / ours:.1f}x faster")
    print(f"score one record:          {score:8.1f} ms   explain/score {ours / score:.1f}x")
    print(f"artifact loads by the cache: {cache.loads}")


if __name__ == "__main__":
    main()
