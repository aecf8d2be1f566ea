"""Parse throughput: monitor.pubmed_xml.iter_records vs Bio.Entrez.read(validate=False).

Same input for both: every PubmedArticleSet file of ../shared/data/pubmed that Bio.Entrez can
parse offline (MANIFEST.tsv column "Bio.Entrez.read...": ok), read into memory first so disk
I/O is not measured. For fairness Entrez's result is turned into the same fields we extract
(PMID, title, abstract with labels, authors, journal, year, create date, DOI, PMC, languages,
publication types, MeSH with qualifiers, keywords, status, CommentsCorrections).

    python bench/parse.py [--repeat N] [--shared ../shared]

Prints records/s for both and the ratio (goal: >= 5x).
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import io
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INLINE = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")


def _plain(value: Any) -> str:
    return " ".join(INLINE.sub("", str(value)).split())


def entrez_fields(article: Any) -> dict[str, Any]:
    """The fields ParsedRecord holds, taken from one Bio.Entrez PubmedArticle."""
    citation = article["MedlineCitation"]
    art = citation["Article"]
    data = article.get("PubmedData", {})
    sections = []
    for text in art.get("Abstract", {}).get("AbstractText", []):
        label = text.attributes.get("Label")
        body = _plain(text)
        if body:
            sections.append(f"{label}: {body}" if label else body)
    authors = []
    for author in art.get("AuthorList", []):
        if "CollectiveName" in author:
            authors.append(_plain(author["CollectiveName"]))
        elif "LastName" in author:
            authors.append(f"{author['LastName']} {author.get('Initials', '')}".strip())
    ids = {i.attributes.get("IdType"): str(i) for i in data.get("ArticleIdList", [])}
    doi = next((str(e) for e in art.get("ELocationID", [])
                if e.attributes.get("EIdType") == "doi"), ids.get("doi"))
    history = {h.attributes.get("PubStatus"): h for h in data.get("History", [])}
    created = None
    for status in ("entrez", "pubmed"):
        if status in history:
            h = history[status]
            created = date(int(h["Year"]), int(h["Month"]), int(h["Day"]))
            break
    pub_date = art["Journal"]["JournalIssue"].get("PubDate", {})
    year_text = pub_date.get("Year") or pub_date.get("MedlineDate", "")[:4]
    return {
        "pmid": int(citation["PMID"]),
        "title": _plain(art.get("ArticleTitle", "")),
        "abstract": "\n\n".join(sections) or None,
        "authors": authors,
        "journal": _plain(art["Journal"].get("Title", "")),
        "year": int(year_text) if str(year_text).isdigit() else None,
        "create_date": created,
        "doi": doi,
        "pmc": ids.get("pmc"),
        "language": [str(x) for x in art.get("Language", [])],
        "publication_types": [str(p) for p in art.get("PublicationTypeList", [])],
        "mesh": [
            {"descriptor": str(m["DescriptorName"]),
             "major": m["DescriptorName"].attributes.get("MajorTopicYN") == "Y",
             "qualifiers": [{"name": str(q), "major": q.attributes.get("MajorTopicYN") == "Y"}
                            for q in m.get("QualifierName", [])]}
            for m in citation.get("MeshHeadingList", [])
        ],
        "keywords": [_plain(k) for kl in citation.get("KeywordList", []) for k in kl],
        "status": citation.attributes.get("Status"),
        "comments": [(c.attributes.get("RefType"), str(c.get("PMID", "")))
                     for c in citation.get("CommentsCorrectionsList", [])],
    }


def load_bodies(shared: Path) -> list[bytes]:
    pubmed = shared / "data" / "pubmed"
    bodies = []
    with (pubmed / "MANIFEST.tsv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            ok = row["Bio.Entrez.read(validate=False)_biopython1.88_offline"].startswith("ok")
            if row["root"] == "PubmedArticleSet" and ok:
                raw = (pubmed / row["path"]).read_bytes()
                bodies.append(gzip.decompress(raw) if row["path"].endswith(".gz") else raw)
    return bodies


def run_ours(bodies: list[bytes]) -> int:
    from monitor.pubmed_xml import iter_records

    return sum(1 for body in bodies for _ in iter_records(body))


def run_entrez(bodies: list[bytes]) -> int:
    from Bio import Entrez

    count = 0
    for body in bodies:
        document = Entrez.read(io.BytesIO(body), validate=False)
        for article in document["PubmedArticle"]:
            entrez_fields(article)
            count += 1
        count += len(document.get("PubmedBookArticle", []))
    return count


def timed(func: Any, bodies: list[bytes], repeat: int) -> tuple[int, float]:
    gc.collect()
    start = time.perf_counter()
    records = 0
    for _ in range(repeat):
        records += func(bodies)
    return records, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    bodies = load_bodies(args.shared)
    megabytes = sum(map(len, bodies)) / 1e6
    run_ours(bodies[:3])
    run_entrez(bodies[:3])  # warm-up: imports, DTD lookups
    n_entrez, t_entrez = timed(run_entrez, bodies, args.repeat)
    n_ours, t_ours = timed(run_ours, bodies, args.repeat)
    if n_ours != n_entrez:
        raise SystemExit(f"record counts differ: ours {n_ours}, Entrez {n_entrez}")
    ours_rate, entrez_rate = n_ours / t_ours, n_entrez / t_entrez
    print(f"input: {len(bodies)} files, {n_ours // args.repeat} records, {megabytes:.1f} MB, "
          f"x{args.repeat}")
    print(f"Bio.Entrez.read + fields : {entrez_rate:9.0f} records/s  ({t_entrez:.2f} s)")
    print(f"iter_records             : {ours_rate:9.0f} records/s  ({t_ours:.2f} s)")
    print(f"ratio                    : {ours_rate / entrez_rate:9.1f}x  (goal >= 5x)")


if __name__ == "__main__":
    main()
