"""The resumable result cache shared by the screening benchmarks: one JSON file of results by
key (git-ignored, under bench/results/), written after every finished job, so an interrupted
run resumes where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

Job = TypeVar("Job")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def run_cached(path: Path, todo: Sequence[Job], worker: Callable[[Job], tuple[str, Any]],
               jobs: int, describe: Callable[[str, Any], str]) -> None:
    """Run ``worker`` on each job (in ``jobs`` processes), storing each result under the key
    it returns as soon as it arrives (written to a temporary file, then renamed: a run killed
    mid-write leaves the previous cache intact) and printing ``describe(key, result)``."""
    cache = load(path)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for key, res in pool.map(worker, todo):
            cache[key] = res
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
            tmp.replace(path)
            print(describe(key, res), flush=True)
