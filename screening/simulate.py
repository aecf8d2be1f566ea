"""`mmlr simulate`: replay a labelled screening dataset through our active learner.

Starting from one include and one exclude (given as ``record_id`` values, or drawn with the
seed), the learner screens in model order, retraining as configured
(``ScreeningConfig.batch_size``), until every include is found; the metrics are those of
``screening.metrics``. The whole run is deterministic for a given seed and configuration.

With a stopping target (``--stop-recall``) it also reports where the queue's stopping test
(``screening.stopping.first_stop``) would have let the review stop, asked after every record
as the live banner is, and the recall actually reached there: a team can check the test's
claim on its own labelled data before relying on it.
"""

from __future__ import annotations

import csv
import gzip
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from screening.config import ScreeningConfig
from screening.features import Document, FeatureSet
from screening.metrics import order_metrics
from screening.model import make_classifier, make_query
from screening.stopping import first_stop, recall_text
from store.errors import ValidationError
from store.ids import is_ascii_number
from store.infile import input_file_problem
from store.settings import share_problem
from store.spreadsheet import CsvLines

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("record_id", "title", "abstract", "label_included")
#: The columns a record's features are read from (``_read_rows``), in the order errors name them.
TEXT_COLUMNS = ("title", "abstract", "keywords", "mesh", "publication_types", "journal")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class LabelledDataset:
    name: str
    record_ids: list[int]
    docs: list[Document]
    labels: np.ndarray
    # Where the records came from, for errors about the dataset as a whole (unknown when a
    # dataset is built in code, e.g. the benchmark's replicates).
    path: Path | None = None
    text_columns: tuple[str, ...] = ()

    @property
    def n_included(self) -> int:
        return int(self.labels.sum())


def _split_terms(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(t.strip() for t in value.split(";") if t.strip())


def _terms(row: dict[str, str]) -> dict[str, tuple[str, ...]]:
    if "mesh" in row:
        return {"mesh": _split_terms(row.get("mesh")),
                "keywords": _split_terms(row.get("keywords"))}
    return {"mesh": _split_terms(row.get("keywords"))}


def dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def load_dataset(path: Path) -> LabelledDataset:
    """Read a screening CSV (optionally gzipped); raise ValidationError naming what is wrong."""
    path = Path(path)
    # (a folder used to be reported as missing, a name too long for the file system was an
    # internal error)
    if (problem := input_file_problem(path)) is not None:
        raise ValidationError(f"dataset {path} {problem}",
                              hint="give the path of a CSV (or .csv.gz) file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"dataset {path} cannot be read: {exc.strerror or exc}") from None
    is_gzip = raw[:2] == _GZIP_MAGIC
    if path.suffix.lower() == ".gz" and not is_gzip:
        # Read as text anyway, it would fail later with a message about columns or UTF-8
        # that hides the real problem: the file is not what its name says.
        raise ValidationError(f"dataset {path} is not gzip (its name ends in .gz)",
                              hint="gzip the CSV, or drop .gz from its name")
    if is_gzip:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise ValidationError(
                f"dataset {path} cannot be read: damaged gzip data "
                f"({str(exc) or exc.__class__.__name__})",
                hint="download or compress the dataset again") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"dataset {path} is not UTF-8 text",
                              hint="save it as UTF-8 CSV") from None
    records = CsvLines(text)
    try:
        return _read_rows(path, records)
    except csv.Error as exc:
        # Python's csv refuses a field over csv.field_size_limit() (131072 characters): in a
        # screening dataset that is an unclosed quote swallowing the rows after it, not an
        # abstract, so the limit stays and the line where that row starts is named.
        raise ValidationError(
            f"dataset {path}, line {records.start}: not valid CSV ({exc})",
            hint="look for an unclosed quote in the record starting on that line") from None


def _read_rows(path: Path, records: CsvLines) -> LabelledDataset:
    columns = next(records, [])
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValidationError(
            f"dataset {path} lacks required column(s) {', '.join(missing)}",
            hint=f"columns needed: {', '.join(REQUIRED_COLUMNS)}")
    ids: list[int] = []
    docs: list[Document] = []
    labels: list[int] = []
    seen: set[int] = set()
    for cells in records:
        # The file line the record starts on, as an editor numbers it: an abstract with
        # newlines makes a record span several lines, so counting records would name the
        # wrong one.
        lineno = records.start
        # As csv.DictReader read them: a short record's missing cells are None to .get.
        row = dict(zip(columns, cells, strict=False))
        rid, label = (row.get("record_id") or "").strip(), (row.get("label_included") or "").strip()
        if not is_ascii_number(rid):
            raise ValidationError(f"{path}:{lineno}: record_id {rid!r} is not a whole number")
        if label not in ("0", "1", "0.0", "1.0"):
            raise ValidationError(
                f"{path}:{lineno}: label_included {label!r} for record_id {rid} is not 0 or 1",
                hint="every record needs a label for a simulation")
        if int(rid) in seen:
            raise ValidationError(f"{path}:{lineno}: record_id {rid} appears twice")
        seen.add(int(rid))
        ids.append(int(rid))
        labels.append(int(float(label)))
        docs.append(Document(
            title=row.get("title") or "", abstract=row.get("abstract") or "",
            # Published datasets (Cohen 2006 and most SYNERGY sets) put MeSH headings in
            # ``keywords``; mmlr's own export (``mmlr export screening``) has both columns.
            **_terms(row), publication_types=_split_terms(row.get("publication_types")),
            journal=row.get("journal") or "",
        ))
    y = np.asarray(labels, dtype=int)
    if int(y.sum()) < 2 or int((y == 0).sum()) < 1:
        raise ValidationError(
            f"dataset {path} has {int(y.sum())} includes and {int((y == 0).sum())} excludes in "
            "label_included", hint="a simulation needs at least 2 includes and 1 exclude")
    return LabelledDataset(dataset_name(path), ids, docs, y, path=path,
                           text_columns=tuple(c for c in TEXT_COLUMNS if c in columns))


@dataclass
class SimulationResult:
    dataset: str
    n_records: int
    n_included: int
    recall_at_10: float
    recall_at_25: float
    wss_95: float
    wss_100: float
    n_95: int
    n_100: int
    seconds: float
    seed: int = 0
    prior_ids: tuple[int, int] = (0, 0)
    order: list[int] = field(default_factory=list, repr=False)  # record_ids after the priors
    stop: StopPoint | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset, "n_records": self.n_records,
            "n_included": self.n_included, "recall_at_10": round(self.recall_at_10, 6),
            "recall_at_25": round(self.recall_at_25, 6), "wss_95": round(self.wss_95, 6),
            "wss_100": round(self.wss_100, 6), "n_95": self.n_95, "n_100": self.n_100,
            "seconds": round(self.seconds, 3),
            # what replays the run: `mmlr simulate --seed S --prior-ids POS,NEG`
            "seed": self.seed, "prior_ids": [int(self.prior_ids[0]), int(self.prior_ids[1])],
        }
        if self.stop is not None:  # only when asked: the keys above are a fixed interface
            out.update(self.stop.to_json())
        return out

    def describe(self) -> str:
        text = (
            f"{self.dataset}: {self.n_records} records, {self.n_included} includes "
            f"(priors {self.prior_ids[0]},{self.prior_ids[1]}; seed {self.seed})\n"
            f"recall@10% {self.recall_at_10:.3f}  recall@25% {self.recall_at_25:.3f}\n"
            f"WSS@95 {self.wss_95:.3f}  WSS@100 {self.wss_100:.3f}\n"
            f"records screened to 95% recall: {self.n_95}; to 100%: {self.n_100}\n"
        )
        if self.stop is not None:
            text += self.stop.describe(self.n_records - 2) + "\n"
        return text + f"{self.seconds:.1f} s"


@dataclass(frozen=True)
class StopPoint:
    """Where the stopping test first allowed stopping in a replay. ``n_stop`` counts the
    records screened after the two priors (as ``n_95`` does); ``recall`` is of *all*
    includes, the prior one too, because that is what the test claims."""

    target: float
    n_stop: int
    recall: float
    stopped: bool  # False: the test never allowed stopping before the last record

    def to_json(self) -> dict[str, Any]:
        return {"stop_recall_target": self.target, "n_stop": self.n_stop,
                "recall_at_stop": round(self.recall, 6), "stopped": self.stopped}

    def describe(self, n: int) -> str:
        if not self.stopped:
            return (f"stopping test ({recall_text(self.target)} target): never allowed "
                    "stopping before the last record")
        verdict = "met" if self.recall >= self.target - 1e-12 else "MISSED"
        return (f"stopping test ({recall_text(self.target)} target): stop after "
                f"{self.n_stop} records "
                f"({self.n_stop / n:.1%} of {n}); recall there {self.recall:.3f} "
                f"(target {verdict})")


def stop_point(labels: Sequence[int], target: float) -> StopPoint:
    """The stopping test replayed over ``labels``: every record's label in screening order,
    the two priors first (the test's samples start after them: the model did not choose
    them)."""
    y = np.asarray(labels, dtype=np.int64)
    t = first_stop(y, target_recall=target, start=2)
    screened = len(y) if t is None else t
    return StopPoint(target=target, n_stop=screened - 2,
                     recall=float(y[:screened].sum()) / float(y.sum()), stopped=t is not None)


def choose_priors(data: LabelledDataset, seed: int,
                  prior_ids: Sequence[int] | None = None) -> tuple[int, int]:
    """Indices of the prior include and exclude (given by record_id, or drawn with the seed)."""
    index = {rid: i for i, rid in enumerate(data.record_ids)}
    if prior_ids is not None:
        if len(prior_ids) != 2:
            raise ValidationError(
                "prior ids must be two record_id values: one include, one exclude")
        pos_id, neg_id = int(prior_ids[0]), int(prior_ids[1])
        for rid in (pos_id, neg_id):
            if rid not in index:
                raise ValidationError(f"prior record_id {rid} is not in dataset {data.name}")
        if data.labels[index[pos_id]] != 1:
            raise ValidationError(f"prior record_id {pos_id} is not an include in {data.name}")
        if data.labels[index[neg_id]] != 0:
            raise ValidationError(f"prior record_id {neg_id} is not an exclude in {data.name}")
        return index[pos_id], index[neg_id]
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(data.labels == 1)
    neg = np.flatnonzero(data.labels == 0)
    return int(rng.choice(pos)), int(rng.choice(neg))


def run_active_learning(data: LabelledDataset, priors: tuple[int, int],
                        config: ScreeningConfig, *, progress: bool = False) -> list[int]:
    """Indices of the records in the order the learner screens them (priors excluded)."""
    X = FeatureSet.from_config(config.features).fit_transform(data.docs)
    # Checked before the progress bar starts, whose exit would print a blank line first.
    _require_features(data, X.shape[1])
    y = data.labels
    labelled = np.zeros(len(y), dtype=bool)
    labelled[list(priors)] = True
    total_pos = int(y.sum())
    found = int(y[labelled].sum())
    order: list[int] = []
    query = make_query(config)
    rng = np.random.default_rng(config.seed)
    bar = _progress_bar(progress, data.name, total_pos)
    # The loop fits hundreds of small models on matrices we built ourselves (finite, valid
    # parameters): sklearn's per-call validation would be a third of the run time.
    with bar if bar is not None else _nullcontext(), \
            sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        task = bar.add_task("includes found", total=total_pos, completed=found) if bar else None
        while found < total_pos and not labelled.all():
            train = np.flatnonzero(labelled)
            pool = np.flatnonzero(~labelled)
            clf = make_classifier(config).fit(X[train], y[train])
            scores = clf.decision(X[pool])
            batch = pool[query(scores, config.batch_size(len(train)), rng)]
            for idx in batch:
                labelled[idx] = True
                order.append(int(idx))
                found += int(y[idx])
                if found >= total_pos:
                    break
            if bar is not None and task is not None:
                bar.update(task, completed=found)
    return order


def _require_features(data: LabelledDataset, n_features: int) -> None:
    """Refuse a dataset whose text yields no feature: sklearn's "Found array with 0
    feature(s)" from the first fit was an internal error."""
    if n_features:
        return
    where = f"dataset {data.path}" if data.path is not None else f"dataset {data.name}"
    read = f" (columns read: {', '.join(data.text_columns)})" if data.text_columns else ""
    raise ValidationError(
        f"{where} gives no words to learn from{read}: every record's text is empty or "
        "has only one-letter words",
        hint="fill title and abstract with the records' text")


def screening_sequence(n_records: int, priors: tuple[int, int], order: list[int]) -> list[int]:
    """Every record index in the order a reviewer following the learner screens them: the
    two priors, the learner's order, then the records it never had to show (the learner stops
    once every include is found, so these are all excludes; their order does not matter)."""
    seen = {*priors, *order}
    return [*priors, *order, *(i for i in range(n_records) if i not in seen)]


def _progress_bar(enabled: bool, name: str, total: int) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from store.progress import progress_bar

    return progress_bar(TextColumn(f"simulating {name}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("includes"))


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def simulate(path: Path, *, seed: int = 0, prior_ids: Sequence[int] | None = None,
             progress: bool = False, config: ScreeningConfig | None = None,
             stop_recall: float | None = None) -> SimulationResult:
    """Replay ``path`` from two priors; see the module docstring. ``stop_recall`` adds the
    stopping test's stop point at that recall target (in [0.5, 1))."""
    problem = share_problem(stop_recall, "0.95") if stop_recall is not None else None
    if problem:  # the rule of MMLR_STOPPING_RECALL
        raise ValidationError(f"a stopping recall target {problem}")
    if seed < 0:  # numpy's generators take none (ValueError deep inside choose_priors)
        raise ValidationError(f"seed {seed} is negative", hint="--seed takes a whole number ≥ 0")
    config = (config or ScreeningConfig()).validate()
    data = load_dataset(Path(path))
    started = time.perf_counter()
    priors = choose_priors(data, seed, prior_ids)
    order = run_active_learning(data, priors, config, progress=progress)
    seconds = time.perf_counter() - started
    labels = [int(data.labels[i]) for i in order]
    m = order_metrics(labels, n=len(data.labels) - 2, p=data.n_included - 1)
    log.info("simulated %s (seed %s): WSS@95 %.3f in %.1f s", data.name, seed, m.wss_95, seconds)
    stop = None
    if stop_recall is not None:  # after the clock: the replay's time is the learner's
        sequence = screening_sequence(len(data.labels), priors, order)
        stop = stop_point([int(data.labels[i]) for i in sequence], stop_recall)
    return SimulationResult(
        dataset=data.name, n_records=len(data.labels), n_included=data.n_included,
        recall_at_10=m.recall_at_10, recall_at_25=m.recall_at_25, wss_95=m.wss_95,
        wss_100=m.wss_100, n_95=m.n_95, n_100=m.n_100, seconds=seconds, seed=seed,
        prior_ids=(data.record_ids[priors[0]], data.record_ids[priors[1]]),
        order=[data.record_ids[i] for i in order], stop=stop,
    )
