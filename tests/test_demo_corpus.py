"""The synthetic demo corpus: enough records, clearly synthetic, deterministic, the right mix,
and real PubMed XML structure (Bio.Entrez validates it against the bundled 2025 DTD)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from monitor.demo_corpus import (
    DOI_PREFIX,
    FIRST_PMID,
    JOURNAL,
    LABELS_FILE,
    MIX,
    SEED_TRIAL_PMIDS,
    SYNTHETIC_KEYWORD,
    read_labels,
    write_demo_corpus,
)
from monitor.pubmed_xml import parse_all
from monitor.records import ParsedRecord


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    dest = tmp_path_factory.mktemp("demo") / "nested" / "corpus"
    return dest, write_demo_corpus(dest)


def _records(paths: list[Path]) -> list[ParsedRecord]:
    return [r for p in paths for r in parse_all(p).records]


def test_size_pmids_and_files(corpus: tuple[Path, list[Path]]) -> None:
    dest, paths = corpus
    records = _records(paths)
    assert len(records) >= 180
    pmids = [r.pmid for r in records]
    assert len(set(pmids)) == len(pmids)
    assert min(pmids) == FIRST_PMID
    assert sorted(pmids) == list(range(FIRST_PMID, FIRST_PMID + len(pmids)))
    assert len(paths) >= 9  # one file per month: several files for the replay server
    assert sorted(p.name for p in dest.iterdir()) == sorted([*(p.name for p in paths), LABELS_FILE])
    for path in paths:
        month = path.stem.removeprefix("pubmed-demo-")
        assert {f"{r.create_date:%Y-%m}" for r in parse_all(path).records} == {month}


def test_every_record_is_marked_synthetic(corpus: tuple[Path, list[Path]]) -> None:
    for record in _records(corpus[1]):
        assert record.journal == JOURNAL, record.pmid
        assert SYNTHETIC_KEYWORD in record.keywords, record.pmid
        assert record.doi == f"{DOI_PREFIX}{record.pmid}", record.pmid
        assert not record.title.lower().startswith("[synthetic")  # titles feed the classifier
    raw = corpus[1][0].read_text(encoding="utf-8")
    assert "not a real publication" in raw


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path,
                                                  corpus: tuple[Path, list[Path]]) -> None:
    again = write_demo_corpus(tmp_path / "again")
    dest, first = corpus
    assert [p.name for p in again] == [p.name for p in first]
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (dest / LABELS_FILE).read_bytes() == (tmp_path / "again" / LABELS_FILE).read_bytes()
    other = write_demo_corpus(tmp_path / "other", seed=7)
    assert b"".join(p.read_bytes() for p in other) != b"".join(p.read_bytes() for p in first)


def test_category_mix_and_labels(corpus: tuple[Path, list[Path]]) -> None:
    dest, paths = corpus
    records = {r.pmid: r for r in _records(paths)}
    labels = read_labels(dest)
    assert set(labels) == set(records)
    counts = Counter(category for category, _ in labels.values())
    assert counts == {category: n for category, (n, _) in MIX.items()}
    eligible = [pmid for pmid, (_, ok) in labels.items() if ok]
    assert len(eligible) == MIX["maintenance_rct"][0] >= 40
    assert all(labels[p][0] == "maintenance_rct" for p in eligible)
    # Both settings and all six drugs appear among the eligible trials.
    text = " ".join(records[p].title.lower() for p in eligible)
    for drug in ("thalidomide", "lenalidomide", "bortezomib", "ixazomib", "daratumumab",
                 "carfilzomib"):
        assert drug in text, drug
    assert "after autologous transplantation" in text and "transplant-ineligible" in text
    # Create dates spread over ~10 months of 2025.
    months = Counter(r.create_date.month for r in records.values() if r.create_date)
    assert all(r.create_date and r.create_date.year == 2025 for r in records.values())
    assert len(months) >= 9


def test_new_records_look_like_real_unindexed_records(corpus: tuple[Path, list[Path]]) -> None:
    dest, paths = corpus
    labels = read_labels(dest)
    rcts = [r for r in _records(paths) if labels[r.pmid][0] == "maintenance_rct"]
    unindexed = [r for r in rcts if r.status in ("Publisher", "In-Process")]
    indexed = [r for r in rcts if r.status == "MEDLINE"]
    assert len(unindexed) >= 5 and len(indexed) >= 20
    for record in unindexed:
        assert record.mesh == []
        assert "Randomized Controlled Trial" not in record.publication_types
        assert record.nct_ids  # registration stays in the abstract text
    for record in indexed:
        assert "Randomized Controlled Trial" in record.publication_types
        assert any(m["descriptor"] == "Multiple Myeloma" and m["major"] for m in record.mesh)
        assert record.abstract and record.abstract.startswith("BACKGROUND: ")
    # Recent records are the unindexed ones, as in PubMed.
    assert max(r.create_date for r in indexed) <= max(r.create_date for r in unindexed)


def test_links_retraction_and_errata(corpus: tuple[Path, list[Path]]) -> None:
    dest, paths = corpus
    labels = read_labels(dest)
    records = {r.pmid: r for r in _records(paths)}
    (notice,) = [r for r in records.values() if r.is_retraction_notice]
    (target,) = [c["pmid"] for c in notice.comments_corrections if c["ref_type"] == "RetractionOf"]
    assert labels[target] == ("maintenance_rct", True)
    assert records[target].create_date < notice.create_date
    links = [c for r in records.values() for c in r.comments_corrections]
    cited = {c["pmid"] for c in links if c["ref_type"] == "CommentOn"}
    assert cited & set(SEED_TRIAL_PMIDS)  # letters about the real seed trials
    assert len(cited & set(labels)) >= 3  # and about our synthetic RCTs
    errata = [c for c in links if c["ref_type"] == "ErratumFor"]
    assert len(errata) == 2 and all(labels[c["pmid"]][1] for c in errata)


def test_bio_entrez_validates_the_structure(corpus: tuple[Path, list[Path]]) -> None:
    from Bio import Entrez

    total = 0
    for path in corpus[1]:
        with path.open("rb") as handle:
            # validate=True raises on any element the PubMed 2025 DTD does not allow.
            document = Entrez.read(handle, validate=True)
        total += len(document["PubmedArticle"])
    assert total == len(_records(corpus[1]))
