"""The keyword prior flags only what the protocol asks for, and finds every demo trial."""

from __future__ import annotations

from pathlib import Path

from monitor.demo_corpus import read_labels, write_demo_corpus
from monitor.pubmed_xml import iter_records
from monitor.records import ParsedRecord
from screening.features import Document
from screening.prior import PRIOR_THRESHOLD, passes_gates, prior_score


def _doc(title: str, abstract: str = "", pts: tuple[str, ...] = ()) -> Document:
    return Document(title=title, abstract=abstract, publication_types=pts)


def test_every_gate_is_needed_for_a_flag() -> None:
    full = _doc("Lenalidomide maintenance after ASCT in multiple myeloma: "
                "a randomised phase 3 trial")
    assert prior_score(full) >= PRIOR_THRESHOLD and passes_gates(full)
    for missing in (
        _doc("Lenalidomide induction before ASCT in multiple myeloma: a randomised phase 3 trial"),
        _doc("Rituximab maintenance in follicular lymphoma: a randomised phase 3 trial"),
        _doc("Lenalidomide maintenance after ASCT in multiple myeloma: a cohort study"),
        _doc("Lenalidomide maintenance in myeloma: randomised trials reviewed", pts=("Review",)),
    ):
        assert not passes_gates(missing)
        assert prior_score(missing) < PRIOR_THRESHOLD


def test_capped_records_keep_their_relative_order() -> None:
    strong = _doc("Myeloma induction: randomised phase 3 trial of bortezomib before ASCT, PFS")
    weak = _doc("Myeloma in a single patient")
    assert prior_score(weak) < prior_score(strong) < PRIOR_THRESHOLD


def test_prior_on_the_demo_corpus_finds_all_eligible_with_few_false_flags(tmp_path: Path) -> None:
    files = write_demo_corpus(tmp_path)
    labels = read_labels(tmp_path)
    flagged, eligible_found, eligible = 0, 0, 0
    for f in files:
        if f.suffix != ".xml":
            continue
        for r in iter_records(f):
            if not isinstance(r, ParsedRecord):
                continue
            doc = Document(title=r.title, abstract=r.abstract or "",
                           mesh=tuple(m["descriptor"] for m in r.mesh),
                           keywords=tuple(r.keywords), publication_types=tuple(r.publication_types))
            is_flagged = prior_score(doc) >= PRIOR_THRESHOLD
            is_eligible = labels[r.pmid][1]
            flagged += is_flagged
            eligible += is_eligible
            eligible_found += is_flagged and is_eligible
    assert eligible >= 40 and eligible_found == eligible  # recall 1 on the demo corpus
    assert flagged <= 0.4 * len(labels)  # precision far above flag-everything
