"""`mmlr export {csv,ris,prisma,metafor}`."""

from __future__ import annotations

import csv
import io
import re
from functools import partial
from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli_env, run_cli
from sqlmodel import select

from reports.exports import CSV_COLUMNS, export
from reports.prisma import prisma_counts
from screening.health import stopping_supported
from store.citation import publication_key
from store.errors import ValidationError
from store.models import (
    FullTextAssessment,
    PooledResult,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
    User,
)

NASTY_TITLE = 'Lenalidomide, "maintenance"\nafter ASCT: Müller–Ødegård ≥ 65 years'


def seed(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(Record(pmid=3, title=NASTY_TITLE, journal="Blood, Journal of ASH", year=2012,
                     status="MEDLINE", score=0.912345678, flagged=True, decision="include",
                     doi="10.1182/blood-2011-11-374249", authors=["Ludwig H", "Ødegård B"],
                     abstract="Line one.\nLine two.", publication_types=[
                         "Randomized Controlled Trial", "Journal Article"],
                     nct_ids=["NCT00114101"], keywords=["maintenance"],
                     mesh=[{"descriptor": "Multiple Myeloma", "major": True, "qualifiers": []}],
                     language=["eng"]))
        s.add(Record(pmid=1, title="Excluded by curators", score=0.7, flagged=True,
                     decision="exclude", status="In-Process"))
        s.add(Record(pmid=2, title="Below threshold", score=0.01, flagged=False))
        s.add(Record(pmid=4, title="Not yet scored"))
        s.add(Record(pmid=5, title="Withdrawn", deleted=True, flagged=True, score=0.9,
                     decision="include"))
        s.add(Record(pmid=6, title="Maybe", score=0.6, flagged=True, decision="maybe"))
        s.add(RecordRevision(pmid=3, revision=1, content_hash="x"))
        s.add(RecordRevision(pmid=3, revision=2, content_hash="y"))
        trial = Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct")
        s.add(trial)
        s.flush()
        s.add(TrialReport(trial_id=trial.id, pmid=3, citation="McCarthy 2012"))
        s.add(TrialReport(trial_id=trial.id, pmid=None, citation="Holstein 2017"))
        s.commit()


def fulltext_rows(awaiting: int) -> dict[str, int]:
    """The full-text stage's PRISMA lines when nobody has assessed a full text yet: every
    report sought is awaiting, every reason has its line at 0."""
    from reports.prisma import prisma_reason
    from store.fulltext import REASONS

    return {"reports not retrieved": 0, "reports awaiting full-text assessment": awaiting,
            "reports assessed for eligibility": 0,
            "reports excluded after full-text assessment": 0,
            **{f"reports excluded: {prisma_reason(code)}": 0 for code in REASONS},
            "reports eligible after full-text assessment": 0,
            "of the reports eligible: not linked to a trial yet": 0}


def svg_desc(path: Path) -> str:
    """The flow in words: the ``<desc>`` of a PRISMA diagram."""
    import xml.etree.ElementTree as ET

    return ET.parse(path).getroot().findtext("{http://www.w3.org/2000/svg}desc") or ""


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_rows_quoting_and_non_ascii(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    out = tmp_path / "records.csv"
    assert export(ctx, "csv", out) == [out]
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["pmid"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    r3 = rows[2]
    assert r3["title"] == NASTY_TITLE  # commas, quotes, a newline and non-ASCII survive
    assert r3["journal"] == "Blood, Journal of ASH"
    assert (r3["year"], r3["status"], r3["score"], r3["decision"]) == (
        "2012", "MEDLINE", "0.912346", "include")
    assert r3["publication_types"] == "Randomized Controlled Trial; Journal Article"
    assert r3["doi"] == "10.1182/blood-2011-11-374249" and r3["flagged"] == "true"
    assert {r["pmid"]: r["screening"] for r in rows} == {
        "1": "excluded", "2": "not flagged", "3": "included", "4": "unscored",
        "5": "deleted", "6": "maybe"}
    assert rows[3]["score"] == "" and rows[3]["year"] == ""
    assert rows[4]["deleted"] == "true"
    raw = out.read_bytes()
    assert b'"Lenalidomide, ""maintenance""\nafter ASCT' in raw
    assert "Müller–Ødegård".encode() in raw


def test_csv_cells_a_spreadsheet_would_run_reach_it_as_text(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PubMed text is not ours: a title, journal or DOI starting like a formula is written
    with a leading apostrophe (OWASP CSV injection); numbers stay numbers."""
    with ctx.sessions() as s:
        s.add(Record(pmid=7, title='=HYPERLINK("http://example.invalid","x")',
                     journal="@SUM(A1)", doi="+1-cmd", score=0.5, year=2020,
                     publication_types=["-Journal Article"]))
        s.commit()
    out = tmp_path / "records.csv"
    export(ctx, "csv", out)
    (row,) = read_csv(out.read_text(encoding="utf-8"))
    assert row["title"] == '\'=HYPERLINK("http://example.invalid","x")'
    assert (row["journal"], row["doi"]) == ("'@SUM(A1)", "'+1-cmd")
    assert row["publication_types"] == "'-Journal Article"
    assert (row["score"], row["year"], row["pmid"]) == ("0.5", "2020", "7")


def test_screening_export_is_a_dataset_simulate_replays(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The decided records, labelled, in the schema `mmlr simulate` reads, with the same text
    the live classifier sees (title, abstract, MeSH, keywords, publication types, journal)."""
    from screening.service import record_document
    from screening.simulate import load_dataset, simulate

    seed(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=8, title="Thalidomide maintenance, a randomised trial",
                     abstract="Randomised.", decision="include", score=0.8,
                     publication_types=["Randomized Controlled Trial"]))
        s.add(Record(pmid=9, title="A review of everything", decision="exclude"))
        s.commit()
    out = tmp_path / "screening.csv"
    assert export(ctx, "screening", out) == [out]
    rows = read_csv(out.read_text(encoding="utf-8"))
    # included, excluded: yes; undecided, maybe and deleted (5, a withdrawn include): no
    assert [(r["record_id"], r["label_included"]) for r in rows] == [
        ("1", "0"), ("3", "1"), ("8", "1"), ("9", "0")]
    assert rows[1]["mesh"] == "Multiple Myeloma" and rows[1]["keywords"] == "maintenance"
    data = load_dataset(out)
    assert data.record_ids == [1, 3, 8, 9] and data.labels.tolist() == [0, 1, 1, 0]
    with ctx.sessions() as s:
        assert data.docs == [record_document(s.get(Record, pmid)) for pmid in (1, 3, 8, 9)]
    result = simulate(out, prior_ids=(3, 1), stop_recall=0.95)
    assert result.n_records == 4 and result.order[-1] in (8, 9)


def test_a_dataset_without_a_mesh_column_has_its_headings_in_keywords(tmp_path: Path) -> None:
    # Cohen 2006 and the SYNERGY sets carry MeSH headings in `keywords`
    from screening.simulate import load_dataset

    path = tmp_path / "published.csv"
    path.write_text("record_id,title,abstract,keywords,label_included\n"
                    "1,a,b,Humans; Myeloma,1\n2,c,d,,1\n3,e,f,Mice,0\n", encoding="utf-8")
    docs = load_dataset(path).docs
    assert docs[0].mesh == ("Humans", "Myeloma") and docs[0].keywords == ()
    assert docs[2].terms() == ["mesh:mice"]


def test_csv_to_stdout(ctx, capsys) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    assert export(ctx, "csv", None) == []
    rows = read_csv(capsys.readouterr().out)
    assert len(rows) == 6 and rows[2]["title"] == NASTY_TITLE


def test_csv_streams_more_rows_than_one_page(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add_all([Record(pmid=n, title=f"record {n}") for n in range(1, 2502)])
        s.commit()
    out = tmp_path / "many.csv"
    export(ctx, "csv", out)
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert [int(r["pmid"]) for r in rows] == list(range(1, 2502))


def _ris_records(ctx) -> None:  # type: ignore[no-untyped-def]
    """Records of the kinds PubMed holds besides journal articles, with the fields the
    parsers store for them (a GeneReviews chapter is stored as ``test_pubmed_xml`` reads
    it)."""
    with ctx.sessions() as s:
        s.add(Record(pmid=20301577, title="CACNA1C-Related Disorders", is_book=True,
                     journal="GeneReviews®", year=1993, pub_date="1993",
                     authors=["Napolitano C", "Priori SG"], publication_types=["Review"]))
        s.add(Record(pmid=20301000, title="Myeloma Handbook", is_book=True,
                     journal="Myeloma Handbook", year=2020, authors=["Smith AB"]))
        s.add(Record(pmid=31000001, title="Proceedings of the myeloma workshop", year=2019,
                     journal="Clinical Lymphoma, Myeloma & Leukemia",
                     journal_abbrev="Clin Lymphoma Myeloma Leuk", pub_date="2019 Sep-Oct",
                     publication_types=["Congress"], authors=["Myeloma XI Study Group"]))
        s.add(Record(pmid=31000002, title="Daratumumab maintenance: a preprint", year=2024,
                     journal="medRxiv", pub_date="2024-02-07",
                     publication_types=["Preprint"], authors=["McCarthy PL", "Ludwig"]))
        s.add(Record(pmid=31000003, title="Maintenance after ASCT: a review", year=2015,
                     journal="Haematologica", pub_date="2015 Mar",
                     publication_types=["Review", "Journal Article"],
                     authors=["van der Holt B", "San Miguel JF"]))
        s.commit()


def test_ris_entries(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    _ris_records(ctx)
    [path] = export(ctx, "ris", tmp_path / "records.ris")
    raw = path.read_bytes()
    # every line ends CR LF, as the RIS specification asks; none is a bare LF
    assert raw.count(b"\n") == raw.count(b"\r\n") > 0
    text = raw.decode("utf-8")
    entries = {int(e.split("AN  - ")[1].split("\r\n")[0]): e.strip().split("\r\n")
               for e in text.split("ER  - \r\n") if e.strip()}
    assert sorted(entries) == [1, 2, 3, 4, 6, 20301000, 20301577, 31000001, 31000002,
                               31000003]  # the deleted citation (5) is left out
    lines = entries[3]
    assert lines[0] == "TY  - JOUR"
    assert "TI  - Lenalidomide, \"maintenance\" after ASCT: Müller–Ødegård ≥ 65 years" in lines
    # "Last, Initials": without the comma a reference manager takes "Ludwig H" as a surname
    assert [line for line in lines if line.startswith("AU  - ")] == [
        "AU  - Ludwig, H.", "AU  - Ødegård, B."]
    assert "AB  - Line one. Line two." in lines  # one line per tag
    assert "DO  - 10.1182/blood-2011-11-374249" in lines and "PY  - 2012" in lines
    assert "T2  - Blood, Journal of ASH" in lines
    assert "UR  - https://pubmed.ncbi.nlm.nih.gov/3/" in lines
    assert "KW  - Multiple Myeloma" in lines and "M3  - Randomized Controlled Trial" in lines
    assert all(line[:2].isalnum() and line[2:6] == "  - " for e in entries.values()
               for line in e)
    # the type follows what PubMed says the record is
    types = {pmid: e[0] for pmid, e in entries.items()}
    assert types == {1: "TY  - JOUR", 2: "TY  - JOUR", 3: "TY  - JOUR", 4: "TY  - JOUR",
                     6: "TY  - JOUR", 20301000: "TY  - BOOK", 20301577: "TY  - CHAP",
                     31000001: "TY  - CONF", 31000002: "TY  - UNPB", 31000003: "TY  - JOUR"}
    chapter = entries[20301577]
    assert "T2  - GeneReviews®" in chapter  # a chapter's book
    chapter_authors = [line for line in chapter if line.startswith("AU  - ")]
    assert chapter_authors == ["AU  - Napolitano, C.", "AU  - Priori, S.G."]
    assert not any(line.startswith(("T2", "J2")) for line in entries[20301000])  # a book
    conference = entries[31000001]
    assert "AU  - Myeloma XI Study Group," in conference  # a group: all of it the surname
    assert "DA  - 2019///Sep-Oct" in conference
    assert "J2  - Clin Lymphoma Myeloma Leuk" in conference
    assert {"AU  - McCarthy, P.L.", "AU  - Ludwig,", "DA  - 2024/02/07/"} <= set(
        entries[31000002])
    assert {"AU  - van der Holt, B.", "AU  - San Miguel, J.F.", "DA  - 2015/03//"} <= set(
        entries[31000003])


def test_ris_notes_say_where_the_full_text_left_a_report(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A record included on its abstract but excluded on reading the full text must not
    reach a reference manager as plainly "included": its note gives the full-text verdict
    (and for an "other" reason, the assessor's words)."""
    from store.fulltext import assess
    from store.models import User

    seed(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=7, title="Included, then excluded for another reason",
                     decision="include"))
        s.add(Record(pmid=8, title="Included, full text eligible", decision="include"))
        s.add(Record(pmid=9, title="Included, full text not found", decision="include"))
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        s.flush()
        for pmid, verdict, reason, note in ((3, "excluded", "not_randomised", None),
                                            (7, "excluded", "other", "single arm"),
                                            (8, "eligible", None, None),
                                            (9, "not_retrieved", None, None)):
            assess(s, user=user, pmid=pmid, verdict=verdict, reason=reason, note=note,
                   screeners_per_record=1)
        s.commit()
    [path] = export(ctx, "ris", tmp_path / "records.ris")
    notes = {int(e.split("AN  - ")[1].split("\r\n")[0]):
             e.split("N1  - ")[1].split("\r\n")[0]
             for e in path.read_bytes().decode("utf-8").split("ER  - \r\n") if e.strip()}
    assert notes[3] == ("mmlr screening: included; full text: excluded: not a randomised "
                        "trial")
    assert notes[7] == "mmlr screening: included; full text: excluded: other reason: single arm"
    assert notes[8] == "mmlr screening: included; full text: eligible"
    assert notes[9] == "mmlr screening: included; full text: not retrieved"
    assert notes[6] == "mmlr screening: maybe; full text: awaiting assessment"
    assert notes[1] == "mmlr screening: excluded"  # never sought: no full-text words


def test_ris_notes_read_the_verdicts_of_every_page(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The verdicts are read a page of records at a time: a report past the first page
    still gets its own."""
    from store.fulltext import assess
    from store.models import User

    with ctx.sessions() as s:
        s.add_all(Record(pmid=pmid, title=f"r{pmid}", decision="include")
                  for pmid in range(1, 1202))
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        s.flush()
        for pmid in (1, 1001, 1201):
            assess(s, user=user, pmid=pmid, verdict="excluded", reason="population",
                   screeners_per_record=1)
        s.commit()
    [path] = export(ctx, "ris", tmp_path / "records.ris")
    excluded = [int(e.split("AN  - ")[1].split("\r\n")[0])
                for e in path.read_bytes().decode("utf-8").split("ER  - \r\n")
                if "full text: excluded" in e]
    assert excluded == [1, 1001, 1201]


@pytest.mark.parametrize(("printed", "ris"), [
    ("2012 Mar 29", "2012/03/29/"), ("2012 Mar 5", "2012/03/05/"), ("2012 Mar", "2012/03//"),
    ("2012", "2012///"), ("2024-02-07", "2024/02/07/"),
    # a season or a range keeps its words in RIS's "other" part, never a made-up month
    ("2019 Sep-Oct", "2019///Sep-Oct"), ("1998 Dec-1999 Jan", "1998///Dec-1999 Jan"),
    ("2012 Spring", "2012///Spring"), ("2012 Mar 5-12", "2012///Mar 5-12"),
    (None, None), ("", None), ("Spring", None),
])
def test_ris_date_keeps_what_pubmed_printed(printed: str | None, ris: str | None) -> None:
    from reports.exports import ris_date

    assert ris_date(printed) == ris


def test_ris_export_reads_back_with_an_independent_parser(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """rispy, a RIS reader that is not ours, reads every entry with its type, authors as
    surname and initials, and one value per tag."""
    import rispy

    seed(ctx)
    _ris_records(ctx)
    [path] = export(ctx, "ris", tmp_path / "records.ris")
    with path.open(encoding="utf-8", newline="") as fh:
        entries = {int(e["accession_number"]): e for e in rispy.load(fh)}
    assert len(entries) == 10
    article = entries[3]
    assert article["type_of_reference"] == "JOUR"
    assert article["authors"] == ["Ludwig, H.", "Ødegård, B."]
    assert [a.split(", ")[0] for a in article["authors"]] == ["Ludwig", "Ødegård"]
    assert article["secondary_title"] == "Blood, Journal of ASH"
    assert article["doi"] == "10.1182/blood-2011-11-374249"
    assert article["year"] == "2012"
    assert article["keywords"] == ["maintenance", "Multiple Myeloma"]
    assert article["title"] == ('Lenalidomide, "maintenance" after ASCT: Müller–Ødegård ≥ 65 '
                                "years")
    assert {pmid: e["type_of_reference"] for pmid, e in entries.items()
            if e["type_of_reference"] != "JOUR"} == {
        20301000: "BOOK", 20301577: "CHAP", 31000001: "CONF", 31000002: "UNPB"}
    assert entries[20301577]["secondary_title"] == "GeneReviews®"
    assert entries[31000002]["authors"] == ["McCarthy, P.L.", "Ludwig,"]
    # no value carries the line end into the reference manager
    assert not any("\r" in str(v) for e in entries.values() for v in e.values())


STOPPING = partial(stopping_supported, target_recall=0.95)  # what `mmlr export` passes


def test_prisma_counts_and_summary(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    written = export(ctx, "prisma", tmp_path / "prisma.csv", stopping=STOPPING)
    assert [p.name for p in written] == ["prisma.csv", "prisma.md", "prisma.svg"]
    rows = {r["stage"]: int(r["count"]) for r in read_csv(written[0].read_text())}
    assert rows == {
        "records identified (PubMed)": 6,  # 6 PMIDs: pmid 3's 2 later versions are no records
        "of the records identified: revised in PubMed after first retrieval": 1,  # pmid 3
        "duplicate records removed": 0,
        "records removed for other reasons (deleted from PubMed)": 1,
        "records screened": 3,  # pmids 1, 3 and 6: a person decided them
        # two decisions are no ground to stop: nothing is left unscreened yet
        "records not screened (screening stopped by the stopping rule)": 0,
        "records excluded by curators": 1,
        "records awaiting screening": 2,  # pmid 4 (unscored) and pmid 2 (below threshold)
        "of the records awaiting screening: below the flag threshold": 1,  # pmid 2
        "records included": 2,  # pmid 1 (include) + pmid 6 (maybe: the full text decides)
        **fulltext_rows(awaiting=2),
        # the other-methods column: no record was added by PMID, so it is this 0 line alone
        "other methods: records identified by PMID": 0,
        # pmid 3 is the trial's report, but its full text is not settled; the report
        # without a PMID never went through the flow: neither is an included report yet
        "trials included": 0,
        "of the trials included: in the previous version of the review": 0,
        "of the trials included: new": 0,
        "reports of included trials": 0,
        "of the reports: in the previous version of the review": 0,
        "of the reports: new": 0,
        "of the new reports: of trials in the previous version": 0,
    }
    # the flow adds up: identified = duplicates + not screened + deleted + awaiting +
    # screened, and screened = excluded + included
    assert rows["records identified (PubMed)"] == (
        rows["duplicate records removed"]
        + rows["records not screened (screening stopped by the stopping rule)"]
        + rows["records removed for other reasons (deleted from PubMed)"]
        + rows["records awaiting screening"]
        + rows["records screened"])
    assert _flow_adds_up(rows)
    md = written[1].read_text()
    assert "| records included | 2 |" in md
    # each line adds up, and only the trials are called included (the 2 records passed
    # title/abstract screening: they are the reports sought for the full text)
    assert ("Identification: 6 records from PubMed, each PMID once (1 of them revised in "
            "PubMed after first retrieval: counted once, not removed). Removed before "
            "screening: 0 duplicate records, 0 records not screened (screening stopped by the "
            "prioritised-order stopping test (Callaghan & Müller-Hansen 2020) on the "
            "classifier's ranking), 1 deleted citation.") in md
    assert ("Screening: 2 awaiting a screening decision (of which 1 below the classifier's "
            "flag threshold, not read by a person: the stopping test does not support "
            "stopping yet); 3 screened: 1 excluded by curators (none by automation tools), 2 "
            "included (or marked maybe) for the full text.") in md
    assert ("2 awaiting a screening decision (of which 1 below the classifier's flag "
            "threshold, not read by a person)") in svg_desc(written[2])
    assert ("Included: 0 trials with 0 reports (0 trials with 0 reports from the previous "
            "version of the review; 0 new trials and 0 new reports).") in md
    assert "Included: 2 records" not in md
    assert ("Full text: 2 reports sought; 0 not retrieved, 2 awaiting assessment; 0 assessed: "
            "0 eligible, 0 excluded.") in md


#: "1 trials", "1 new studies", "1 deleted citations": a count of one with a plural noun.
_ONE_PLURAL = re.compile(
    r"(?<![\d,.])1 (?:\([^)]*\) )?(?:\w+ )?(?:records|trials|studies|reports|citations|"
    r"retrievals)\b")


def test_prisma_summaries_count_one_thing_in_the_singular(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A flow with one deleted citation and one trial, said in words in prisma.md and in
    the diagram's description (what a screen reader reads), has no "1 trials"."""
    from store.fulltext import assess

    seed(ctx)
    with ctx.sessions() as s:  # the trial's report with a PMID is found eligible
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        s.flush()
        assess(s, user=user, pmid=3, verdict="eligible", screeners_per_record=1)
        s.commit()
    written = export(ctx, "prisma", tmp_path / "prisma.csv", stopping=STOPPING)
    md, desc = written[1].read_text(), svg_desc(written[2])
    assert "1 deleted citation." in md
    assert "Included: 1 trial with 1 report (" in md
    assert "1 record deleted from PubMed" in desc
    assert "Included: 1 study (randomised trial) with 1 report (" in desc
    assert not _ONE_PLURAL.findall(md), _ONE_PLURAL.findall(md)
    assert not _ONE_PLURAL.findall(desc), _ONE_PLURAL.findall(desc)


def test_prisma_splits_the_included_trials_into_the_previous_version_and_new(
        ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PRISMA 2020's flow for updated reviews: the seed evidence is the previous version;
    a trial added since, and a later report linked to a seed trial, are new."""
    from monitor.bootstrap import load_seed_evidence

    with ctx.sessions() as s:
        load_seed_evidence(s)
        s.commit()
        seeded_trials = len(s.exec(select(Trial)).all())
        rows_of_reports = s.exec(select(TrialReport)).all()
        # a report is a publication: TOURMALINE-MM3 and -MM4 share one (its DOI)
        seeded_reports = len({publication_key(r.pmid, r.citation) for r in rows_of_reports})
        assert seeded_reports == len(rows_of_reports) - 1
        assert seeded_trials > 10
        first = s.exec(select(Trial).order_by(Trial.id)).first()
        assert first is not None
        first.name = "Renamed by a curator"  # still the previous version's trial
        new = Trial(name="NEW-MM 1", drug="ixazomib", setting="post_asct")
        s.add(new)
        s.flush()
        s.add(TrialReport(trial_id=new.id, pmid=90000001, citation="New 2026"))
        s.add(TrialReport(trial_id=first.id, pmid=90000002, citation="Update 2026"))
        # both screened here and found eligible: the flow carries them to the last box
        for pmid in (90000001, 90000002):
            s.add(Record(pmid=pmid, title=f"report {pmid}", decision="include"))
            s.add(FullTextAssessment(pmid=pmid, kind="verdict", verdict="eligible"))
        s.commit()
        rows = {stage: n for stage, n, _ in prisma_counts(s)}
    assert rows["of the new reports: of trials in the previous version"] == 1
    assert rows["trials included"] == seeded_trials + 1
    assert rows["of the trials included: in the previous version of the review"] \
        == seeded_trials
    assert rows["of the trials included: new"] == 1
    assert rows["reports of included trials"] == seeded_reports + 2
    assert rows["of the reports: in the previous version of the review"] == seeded_reports
    assert rows["of the reports: new"] == 2
    svg = next(p for p in export(ctx, "prisma", tmp_path / "p.csv") if p.suffix == ".svg")
    assert (f"{seeded_trials + 1} studies (randomised trials) with {seeded_reports + 2} "
            f"reports ({seeded_trials} studies with {seeded_reports} reports from the "
            "previous version of the review; 1 new study and 2 new reports).") \
        in svg_desc(svg)


def test_prisma_into_a_folder(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = export(ctx, "prisma", tmp_path)
    assert [p.name for p in written] == ["prisma.csv", "prisma.md", "prisma.svg"]
    assert "0 records screened;" in written[2].read_text()  # an empty review
    with ctx.sessions() as s:
        assert all(n == 0 for _, n, _ in prisma_counts(s))


def test_unknown_kind_and_unwritable_path(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="unknown export 'bibtex'") as err:
        export(ctx, "bibtex", None)
    assert "ris, csv, prisma, metafor" in err.value.one_line()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValidationError, match="cannot write the export to") as err:
        export(ctx, "csv", blocker / "sub" / "records.csv")
    assert "--out" in err.value.one_line()


def test_a_replaced_export_keeps_its_permissions(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A private file (0600) replaced by an export stays private (it became 0644, the umask's
    mode); a new file gets the umask's mode."""
    import os
    import stat

    seed(ctx)
    private = tmp_path / "records.csv"
    private.write_text("previous export\n")
    private.chmod(0o600)
    export(ctx, "csv", private)
    assert private.read_text() != "previous export\n"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    old_umask = os.umask(0o022)
    try:
        export(ctx, "csv", tmp_path / "new.csv")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644


def test_a_failed_export_leaves_no_half_file(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    out = tmp_path / "records.csv"
    out.write_text("previous export\n")
    # a database failure midway through the export must not replace the previous file
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with ctx.engine.begin() as conn:
        conn.execute(text("DROP TABLE record_revisions"))
    with pytest.raises(DBAPIError):
        export(ctx, "prisma", out)
    assert out.read_text() == "previous export\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_metafor_delegates(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from conftest import need

    need(importlib.util.find_spec("reports.export_metafor") is not None,
         "reports.export_metafor (H3) is missing")
    with ctx.sessions() as s:
        s.add(PooledResult(analysis_key="lenalidomide/pfs/post_asct", analysis_label="Len PFS",
                           k=2, estimate=-0.7, ci_low=-0.9, ci_high=-0.5, settings={"ci": "hksj"},
                           inputs=[{"trial": "CALGB 100104", "estimate_id": 1, "yi": -0.73,
                                    "sei": 0.12},
                                   {"trial": "IFM 2005-02", "estimate_id": 2, "yi": -0.69,
                                    "sei": 0.10}]))
        s.commit()
    written = export(ctx, "metafor", tmp_path / "metafor")
    assert written and all(p.exists() for p in written)
    assert all(tmp_path / "metafor" in p.parents for p in written)
    table = next(p for p in written if p.suffix == ".csv").read_text()
    assert "CALGB 100104" in table and "IFM 2005-02" in table


def test_only_keeps_the_record_exports_to_a_subset(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--only included|eligible|reports`: what was sought, what the full text kept, and the
    included studies' references (records linked to a trial); deleted records never."""
    from store.fulltext import assess
    from store.models import User

    seed(ctx)  # 3 included and a report of CALGB 100104, 6 maybe, 5 included but deleted
    with ctx.sessions() as s:
        s.add(Record(pmid=8, title="Included, full text eligible", decision="include"))
        s.add(Record(pmid=9, title="Excluded, yet linked to the trial", decision="exclude"))
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        s.flush()
        assess(s, user=user, pmid=8, verdict="eligible", reason=None, note=None,
               screeners_per_record=1)
        assess(s, user=user, pmid=3, verdict="excluded", reason="not_randomised", note=None,
               screeners_per_record=1)
        trial = s.exec(select(Trial)).one()
        s.add(TrialReport(trial_id=trial.id, pmid=9, citation="a later report"))
        s.commit()

    def ris_pmids(only: str) -> list[int]:
        [path] = export(ctx, "ris", tmp_path / f"{only}.ris", only=only)
        return [int(n) for n in re.findall(r"^AN  - (\d+)", path.read_text(encoding="utf-8"),
                                           re.M)]

    def csv_pmids(only: str) -> list[int]:
        [path] = export(ctx, "csv", tmp_path / f"{only}.csv", only=only)
        return [int(r["pmid"]) for r in read_csv(path.read_text(encoding="utf-8"))]

    for pmids in (ris_pmids, csv_pmids):
        assert pmids("included") == [3, 6, 8]
        assert pmids("eligible") == [8]
        assert pmids("reports") == [3, 9]
    with pytest.raises(ValidationError, match="--only applies to the record exports, not to "
                                              "'prisma'"):
        export(ctx, "prisma", tmp_path / "p.csv", only="included")
    with pytest.raises(ValidationError, match="--only 'all' is not a subset of records"):
        export(ctx, "ris", tmp_path / "x.ris", only="all")
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "x.ris").exists()


def test_cli_export_only(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("export", "csv", "--only", "eligible", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [",".join(CSV_COLUMNS)]  # nothing assessed yet
    bad = run_cli("export", "sof", "--only", "reports", env=env)
    assert_one_line_error(bad, code=2)  # a usage error, as argparse's own (it was 1)
    assert "--only applies to the record exports, not to 'sof'" in bad.stderr
    usage = run_cli("export", "ris", "--only", "everything", env=env)
    assert usage.returncode == 2 and "invalid choice: 'everything'" in usage.stderr


def test_cli_export_csv(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("export", "csv", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == ",".join(CSV_COLUMNS)
    bad = run_cli("export", "csv", "--out", "/proc/nope/records.csv", env=env)
    assert_one_line_error(bad)
    assert bad.stderr.startswith("mmlr: error: cannot write the export to /proc/nope/records.csv")


@pytest.mark.parametrize(("kind", "name"), [
    ("csv", "{long}.csv"), ("csv", "{long}/records.csv"), ("prisma", "{long}.csv"),
    ("metafor", "{long}")])
def test_cli_export_to_a_name_too_long_is_one_line(db_url: str, tmp_path: Path, kind: str,
                                                   name: str) -> None:
    # Path.is_dir() raised ENAMETOOLONG where other errors of --out were one line: an
    # internal error
    out = tmp_path / name.format(long="a" * 300)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("export", kind, "--out", str(out), env=env)
    what, hint = {"metafor": ("metafor export", "--out takes a folder that mmlr can create or "
                                                "write to")}.get(kind, (
        "export", "--out takes a new file, a regular file to replace or a folder; without "
                  "--out the export goes to stdout"))
    assert_one_line_error(
        proc, f"mmlr: error: cannot write the {what} to {out}: File name too long ({hint})")
    # nothing written, no temporary file left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("a", ".a"))]


def test_cli_export_for_excel_starts_with_a_byte_order_mark(db_url: str,
                                                            tmp_path: Path) -> None:
    """--excel: the CSV starts with U+FEFF (Excel then reads UTF-8, "Müller" not "MÃ¼ller"),
    to a file and to stdout, and reads back the same under utf-8-sig; without it, no mark;
    a RIS or metafor export refuses it in one line."""
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    for kind in ("csv", "sof", "prisma", "screening"):
        excel, plain = tmp_path / f"{kind}-excel.csv", tmp_path / f"{kind}.csv"
        for flags, out in ((["--excel"], excel), ([], plain)):
            proc = run_cli("export", kind, *flags, "--out", str(out), env=env)
            assert proc.returncode == 0, proc.stderr
        assert not plain.read_bytes().startswith(b"\xef\xbb\xbf"), kind
        assert excel.read_bytes() == b"\xef\xbb\xbf" + plain.read_bytes(), kind
    piped = run_cli("export", "csv", "--excel", env=env)
    assert piped.stdout.startswith("\ufeff" + ",".join(CSV_COLUMNS))
    for kind in ("ris", "metafor"):
        bad = run_cli("export", kind, "--excel", env=env)
        assert_one_line_error(bad, code=2)
        assert f"--excel applies to the CSV exports, not to '{kind}'" in bad.stderr


def seed_stoppable(ctx) -> None:  # type: ignore[no-untyped-def]
    """400 records screened in queue order, every include among the first five and a long
    run of excludes after the last one: the stopping test supports stopping with the ten
    low-score records left."""
    from datetime import UTC, datetime, timedelta

    from store.models import Decision

    start = datetime(2026, 1, 1, tzinfo=UTC)
    with ctx.sessions() as s:
        for i in range(400):
            decision = ("include" if i < 5 else "exclude") if i < 390 else None
            s.add(Record(pmid=5000 + i, title=f"r {i}", score=1 - i / 1000, flagged=i < 5,
                         decision=decision, first_seen_at=start - timedelta(days=1)))
            if decision:
                s.add(Decision(pmid=5000 + i, decision=decision, rank_shown=1,
                               created_at=start + timedelta(minutes=i)))
        s.commit()


def test_prisma_counts_the_classifiers_exclusions_once_the_stopping_test_supports_them(
        ctx, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed_stoppable(ctx)
    with ctx.sessions() as s:
        assert STOPPING(s)
        without = {stage: n for stage, n, _ in prisma_counts(s)}
    # no stopping check given: nothing counts as excluded by automation
    assert without["records not screened (screening stopped by the stopping rule)"] == 0
    assert without["records awaiting screening"] == 10 and _flow_adds_up(without)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    (tmp_path / "out").mkdir()
    proc = run_cli("export", "prisma", "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["stage"]: int(r["count"])
            for r in read_csv((tmp_path / "out" / "prisma.csv").read_text())}
    assert rows["records not screened (screening stopped by the stopping rule)"] == 10
    assert rows["records screened"] == 390  # a person screened every one of them
    assert rows["records awaiting screening"] == 0
    assert rows["of the records awaiting screening: below the flag threshold"] == 0
    assert _flow_adds_up(rows)
    desc = svg_desc(tmp_path / "out" / "prisma.svg")
    assert "10 records not screened (screening stopped by the stopping rule)" in desc
    assert "excluded: 385 by curators, none by automation tools" in desc
    assert "of which below" not in desc


def test_cli_out_with_a_trailing_slash_is_a_new_folder(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("export", "prisma", "--out", f"{tmp_path / 'new' / 'deeper'}/", env=env)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "new" / "deeper"
    assert folder.is_dir()  # not a file named "deeper"
    assert sorted(p.name for p in folder.iterdir()) == ["prisma.csv", "prisma.md", "prisma.svg"]
    (tmp_path / "plain").write_text("x")
    bad = run_cli("export", "csv", "--out", f"{tmp_path / 'plain'}/", env=env)
    assert_one_line_error(bad)
    assert "is not a folder" in bad.stderr and (tmp_path / "plain").read_text() == "x"


def test_prisma_counts_voted_low_score_records_as_awaiting(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Dual screening: a low-score record with one include vote and no resolved decision is
    not 'excluded by automation' (a curator wants it), it awaits its second vote."""
    from store.models import Decision

    seed(ctx)
    with ctx.sessions() as s:
        s.add(Decision(pmid=2, decision="include", kind="vote"))
        s.commit()
        rows = {stage: n for stage, n, _ in prisma_counts(s, automation_stops=True)}
        notes = {stage: note for stage, _, note in prisma_counts(s, automation_stops=True)}
    assert rows["records not screened (screening stopped by the stopping rule)"] == 0
    # A count of 0 is not presented as the stopping test's finding.
    assert notes["records not screened (screening stopped by the stopping rule)"].startswith(
        "none: no record below")
    assert rows["records awaiting screening"] == 2  # pmids 2 (one vote) and 4
    assert rows["records screened"] == (rows["records excluded by curators"]
                                        + rows["records included"])


# ----------------------------------------------------------------------------- dual screening
@pytest.fixture
def dual(ctx):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(ctx, settings=ctx.settings.model_copy(update={"screeners_per_record": 2}))


def seed_votes(ctx) -> None:  # type: ignore[no-untyped-def]
    """On top of ``seed``: pmid 2 (low score) in conflict, pmid 4 (unscored) with one
    screener who changed their vote, an imported vote without a user on pmid 6."""
    from store.models import Decision, User

    with ctx.sessions() as s:
        a, b = User(email="a@example.org", role="curator"), User(email="b@example.org",
                                                                 role="curator")
        s.add_all([a, b])
        s.flush()
        s.add_all([Decision(pmid=2, user_id=a.id, decision="include", kind="vote"),
                   Decision(pmid=2, user_id=b.id, decision="exclude", kind="vote"),
                   Decision(pmid=4, user_id=a.id, decision="include", kind="vote"),
                   Decision(pmid=4, user_id=a.id, decision="maybe", kind="vote"),
                   Decision(pmid=6, user_id=None, decision="maybe", kind="vote")])
        s.commit()


def test_csv_under_dual_screening_adds_state_and_screeners(ctx, dual, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from reports.exports import DUAL_CSV_COLUMNS

    seed(ctx)
    seed_votes(ctx)
    [single_path] = export(ctx, "csv", tmp_path / "single.csv")
    [dual_path] = export(dual, "csv", tmp_path / "dual.csv")
    single, rows = (read_csv(p.read_text(encoding="utf-8")) for p in (single_path, dual_path))
    assert list(single[0]) == list(CSV_COLUMNS)
    assert list(rows[0]) == list(DUAL_CSV_COLUMNS) == [*CSV_COLUMNS, "screening_state",
                                                       "screeners"]
    # the single-screening columns say the same in both
    assert [{k: r[k] for k in CSV_COLUMNS} for r in rows] == single
    assert {r["pmid"]: (r["screening_state"], r["screeners"]) for r in rows} == {
        "1": ("resolved", "0"),  # decided, no vote rows (e.g. under single screening)
        "2": ("conflict", "2"),
        "3": ("resolved", "0"),
        "4": ("awaiting_second", "1"),  # one person, two votes
        "5": ("resolved", "0"),
        "6": ("resolved", "0"),  # a vote without a user is nobody's
    }


def test_csv_under_dual_screening_counts_votes_on_every_page(dual, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from store.models import Decision, User

    with dual.sessions() as s:
        s.add_all([Record(pmid=n, title=f"record {n}") for n in range(1, 1202)])
        users = [User(email=f"{n}@example.org", role="curator") for n in range(2)]
        s.add_all(users)
        s.flush()
        # the last record of the first page and the first of the second (1000 rows a page)
        for pmid in (1000, 1001):
            s.add_all([Decision(pmid=pmid, user_id=u.id, decision=d, kind="vote")
                       for u, d in zip(users, ("include", "exclude"), strict=True)])
        s.add(Decision(pmid=1201, user_id=users[0].id, decision="include", kind="vote"))
        s.commit()
    [path] = export(dual, "csv", tmp_path / "records.csv")
    rows = {r["pmid"]: (r["screening_state"], r["screeners"])
            for r in read_csv(path.read_text(encoding="utf-8"))}
    assert len(rows) == 1201
    assert rows["1000"] == rows["1001"] == ("conflict", "2")
    assert rows["1201"] == ("awaiting_second", "1")
    assert rows["999"] == rows["1002"] == ("unscreened", "0")


def test_export_state_follows_the_dual_screening_rule() -> None:
    from reports.exports import dual_state
    from screening.agreement import record_state

    for decision in (None, "include", "exclude", "maybe"):
        for screeners in range(4):
            assert dual_state(decision, screeners) == record_state(decision, screeners)


def _flow_adds_up(rows: dict[str, int]) -> bool:
    """Every box that is a sum of others equals it (``prisma_identities``), and records
    screened is what a person screened or has still to: curators' exclusions, conflicts,
    the awaiting records and the records included."""
    from reports.prisma import prisma_identities

    identities = prisma_identities([(stage, n, "") for stage, n in rows.items()])
    return all(whole == parts for _, whole, parts in identities) and rows[
        "records screened"] == sum(
        n for stage, n in rows.items()
        if stage.startswith(("records excluded", "records in conflict"))
        or stage == "records included")


def test_prisma_under_dual_screening_has_a_conflict_line(ctx, dual, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    seed_votes(ctx)
    written = export(dual, "prisma", tmp_path / "prisma.csv")
    table = read_csv(written[0].read_text())
    rows = {r["stage"]: int(r["count"]) for r in table}
    assert rows == {
        "records identified (PubMed)": 6,  # 6 PMIDs: pmid 3's 2 later versions are no records
        "of the records identified: revised in PubMed after first retrieval": 1,  # pmid 3
        "duplicate records removed": 0,
        "records removed for other reasons (deleted from PubMed)": 1,
        "records screened": 4,  # pmids 1, 3, 6, and 2 (in conflict: both screened it)
        "records not screened (screening stopped by the stopping rule)": 0,  # pmid 2: votes
        "records excluded by curators": 1,
        "records in conflict awaiting resolution": 1,  # pmid 2
        "records awaiting screening": 1,  # pmid 4 (one screener)
        "of the records awaiting screening: below the flag threshold": 0,  # pmid 2 has votes
        "records included": 2,  # pmid 1 + pmid 6 (maybe: on to the full text)
        **fulltext_rows(awaiting=2),
        # the other-methods column: no record was added by PMID, so it is this 0 line alone
        "other methods: records identified by PMID": 0,
        # pmid 3 is the trial's report, but its full text is not settled; the report
        # without a PMID never went through the flow: neither is an included report yet
        "trials included": 0,
        "of the trials included: in the previous version of the review": 0,
        "of the trials included: new": 0,
        "reports of included trials": 0,
        "of the reports: in the previous version of the review": 0,
        "of the reports: new": 0,
        "of the new reports: of trials in the previous version": 0,
    }
    assert _flow_adds_up(rows)
    stages = [r["stage"] for r in table]
    # screened twice: a box beside the records screened, after the curators' exclusions
    assert stages.index("records in conflict awaiting resolution") \
        == stages.index("records excluded by curators") + 1
    assert stages.index("records awaiting screening") < stages.index("records screened")
    md = written[1].read_text()
    assert "| records in conflict awaiting resolution | 1 |" in md
    assert ("1 awaiting a screening decision; 4 screened: 1 excluded by curators (none by "
            "automation tools), 1 in conflict awaiting resolution, 2 included (or marked "
            "maybe) for the full text.") in md
    # single screening, same database: no conflict line, the conflict is awaiting screening
    with ctx.sessions() as s:
        single = {stage: n for stage, n, _ in prisma_counts(s)}
    assert "records in conflict awaiting resolution" not in single
    assert single["records awaiting screening"] == 2 and _flow_adds_up(single)
    [single_md] = [p for p in export(ctx, "prisma", tmp_path / "single.csv")
                   if p.suffix == ".md"]
    assert "2 awaiting a screening decision; 3 screened" in single_md.read_text()


# ----------------------------------------------------------------------------- --out
def _char_device(path: Path) -> Path:
    """A character device node (a /dev/full of our own: a test must not risk the real one)."""
    import os
    import stat

    from conftest import need

    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, AttributeError):
        need(False, "creating a device node needs CAP_MKNOD")
    return path


def _fifo(path: Path) -> Path:
    import os

    os.mkfifo(path)
    return path


def _symlink(path: Path) -> Path:
    target = path.with_name("target.csv")
    target.write_text("the link's target\n")
    path.symlink_to(target)
    return path


def _socket(path: Path) -> Path:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    return path


@pytest.mark.parametrize(("make", "kind"), [
    (_symlink, "symbolic link"), (_fifo, "named pipe"), (_char_device, "character device"),
    (_socket, "socket"), (lambda p: (p.mkdir(), p)[1], "folder"),
])
def test_an_out_that_is_not_a_regular_file_is_refused_and_left_alone(
        ctx, tmp_path: Path, make, kind: str) -> None:  # type: ignore[no-untyped-def]
    import os

    seed(ctx)
    folder = tmp_path / "out"
    folder.mkdir()
    # In the folder, so a folder named records.csv is met as the file, not as where it goes.
    out = make(folder / "records.csv")
    before = os.lstat(out)
    with pytest.raises(ValidationError) as err:
        export(ctx, "csv", folder)
    line = err.value.one_line()
    assert f"cannot write the export to {out}: it is a {kind}, not a regular file" in line
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)  # never replaced
    if kind == "symbolic link":
        assert out.resolve().read_text() == "the link's target\n"
    assert not list(folder.glob(".*.tmp"))  # no temporary left behind


def test_a_link_beside_the_csv_stops_the_export_before_anything_is_written(
        ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _symlink(tmp_path / "prisma.md")
    with pytest.raises(ValidationError, match=r"prisma\.md: it is a symbolic link"):
        export(ctx, "prisma", tmp_path / "prisma.csv")
    assert not (tmp_path / "prisma.csv").exists() and (tmp_path / "prisma.md").is_symlink()


@pytest.mark.parametrize("below", ["records.csv", "sub/records.csv"])
def test_an_out_below_a_file_says_the_file_is_not_a_folder(ctx, tmp_path: Path,
                                                           below: str) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValidationError) as err:
        export(ctx, "csv", blocker / below)
    line = err.value.one_line()
    assert f"cannot write the export to {blocker / below}: {blocker} is not a folder" in line
    assert "File exists" not in line and blocker.read_text() == "x"


def test_cli_export_to_a_device_or_a_link_is_one_line_and_replaces_nothing(
        db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    device = _char_device(tmp_path / "full")
    proc = run_cli("export", "ris", "--out", str(device), env=env)
    assert_one_line_error(proc, f"{device}: it is a character device, not a regular file")
    assert device.is_char_device()
    link = _symlink(tmp_path / "link.csv")
    proc = run_cli("export", "csv", "--out", str(link), env=env)
    assert_one_line_error(proc, f"{link}: it is a symbolic link, not a regular file")
    assert link.is_symlink() and link.read_text() == "the link's target\n"


@pytest.mark.parametrize(("kind", "name", "side"), [
    ("sof", "sof.md", "Markdown summary"), ("sof", "sof.MD", "Markdown summary"),
    ("prisma", "flow.md", "Markdown summary"), ("prisma", "flow.svg", "flow diagram")])
def test_an_out_named_like_a_side_file_is_refused_before_anything_is_written(
        ctx, tmp_path: Path, kind: str, name: str, side: str) -> None:  # type: ignore[no-untyped-def]
    # The side file was written second under the same name: the CSV was lost, exit 0
    out = tmp_path / "out" / name
    out.parent.mkdir()
    with pytest.raises(ValidationError) as err:
        export(ctx, kind, out)
    line = err.value.one_line()
    assert f"--out {out}: the {kind} export writes its {side} to " in line
    assert f"e.g. --out {out.with_suffix('.csv')}" in line
    assert not list(out.parent.iterdir())


def test_cli_export_sof_to_a_markdown_name_is_one_line(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    out = tmp_path / "sof.md"
    proc = run_cli("export", "sof", "--out", str(out), env=env)
    assert_one_line_error(proc, f"--out {out}: the sof export writes its Markdown summary to "
                                f"{out}, which would replace the CSV",
                          f"give the CSV a .csv name, e.g. --out {tmp_path / 'sof.csv'}")
    assert not out.exists()


def test_cli_export_out_dash_is_standard_output(db_url: str, tmp_path: Path) -> None:
    # "--out -" wrote a file named "-" in the working folder, and nothing to stdout
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    work = tmp_path / "work"
    work.mkdir()
    plain = run_cli("export", "csv", env=env, cwd=work)
    dashed = run_cli("export", "csv", "--out", "-", env=env, cwd=work)
    assert dashed.returncode == 0, dashed.stderr
    assert dashed.stdout == plain.stdout and dashed.stdout.startswith("pmid,title,")
    folder = run_cli("export", "metafor", "--out", "-", env=env, cwd=work)
    assert_one_line_error(folder, "--out - is standard output, and the metafor export is a "
                                  "folder of files", "name a folder", code=2)
    digest = run_cli("digest", "--out", "-", env=env, cwd=work)
    assert_one_line_error(digest, "--out - (standard output) is not taken by mmlr digest",
                          code=2)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(("kind", "flags"), [("ris", []), ("csv", ["--excel"])])
def test_an_export_to_stdout_is_utf8_whatever_the_locale(ctx, settings, kind: str,  # type: ignore[no-untyped-def]
                                                         flags: list[str]) -> None:
    """Under a Windows code page (PYTHONIOENCODING=cp1252, a redirected stdout there) the
    RIS wrote "Zieli\\u0144ska" as eleven letters and --excel's byte order mark as six, exit
    0: an export is a file for another program, UTF-8 always."""
    import os
    import subprocess
    import sys

    seed(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=7, title="Zielińska maintenance", authors=["Zielińska A"],
                     score=0.8, flagged=True))
        s.commit()
    env = {**cli_env(MMLR_DATA_DIR=str(settings.data_dir),
                     MMLR_DATABASE_URL=settings.database_url or ""),
           "PYTHONIOENCODING": "cp1252"}
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "export", kind, *flags],
                          env=env, capture_output=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode("utf-8")  # raises on the cp1252 bytes it was
    assert "Zielińska" in text and "\\u0144" not in text and "Ødegård" in text
    assert proc.stdout.startswith(b"\xef\xbb\xbf") == (flags == ["--excel"])


@pytest.mark.parametrize(("name", "shown"), [
    ("Ludwig H", "Ludwig, H."), ("McCarthy PL", "McCarthy, P.L."),
    ("van der Holt B", "van der Holt, B."), ("Ludwig", "Ludwig,"),
    ("Smith, J", "Smith, J."), ("Smith, John", "Smith, John"),  # no doubled comma
    # a group's name ending in what looks like initials stays whole
    ("Cancer and Leukemia Group B", "Cancer and Leukemia Group B,"),
    ("Myeloma XI", "Myeloma XI,"), ("NCIC CTG", "NCIC CTG,"), ("Myeloma UK", "Myeloma UK,"),
    ("Intergroupe Francophone du Myélome IFM", "Intergroupe Francophone du Myélome IFM,"),
    # surname particles are people's, not groups' (PubMed records of myeloma authors)
    ("de la Rubia J", "de la Rubia, J."), ("Fernández de Larrea C", "Fernández de Larrea, C."),
    ("de Groot TM", "de Groot, T.M."), ("Du S", "Du, S."), ("du Bois A", "du Bois, A."),
    ("De Luca F", "De Luca, F."), ("Caron de Fromentel C", "Caron de Fromentel, C."),
    ("van de Donk NWCJ", "van de Donk, N.W.C.J."), ("van de Donk, NWCJ", "van de Donk, N.W.C.J."),
])
def test_ris_authors_and_groups(name: str, shown: str) -> None:
    from reports.exports import ris_author

    assert ris_author(name) == shown


def test_cli_export_says_how_many_records_it_wrote(ctx, db_url: str,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    """On a database with no records `mmlr export ris --out eo/` wrote a 0-byte records.ris
    without a word, as if it had failed or the review held nothing by design; a record export
    now says how many records it wrote, the file still the last line."""
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("export", "ris", "--out", f"{tmp_path / 'eo'}/", env=env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "eo" / "records.ris"
    assert proc.stderr.splitlines() == ["0 records written: nothing matched", str(out)]
    assert out.read_bytes() == b""
    only = run_cli("export", "csv", "--only", "included", "--out", str(tmp_path / "i.csv"),
                   env=env)
    assert only.stderr.splitlines()[0] == "0 records written: nothing matched --only included"
    piped = run_cli("export", "screening", env=env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.splitlines() == [
        "0 records written to standard output: nothing matched"]
    assert piped.stdout.startswith("record_id,pmid,")

    seed(ctx)  # six records, one of them deleted from PubMed (not in RIS)
    for kind, said in (("ris", "5 records written"), ("csv", "6 records written"),
                       ("screening", "2 records written")):
        proc = run_cli("export", kind, "--out", str(tmp_path / f"x.{kind}"), env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines() == [said, str(tmp_path / f"x.{kind}")], kind
    one = run_cli("export", "csv", "--only", "reports", env=env)
    assert one.stderr.splitlines() == ["1 record written to standard output"]
    # the exports of no records keep their lines as they were: the files written
    prisma = run_cli("export", "prisma", "--out", str(tmp_path / "p.csv"), env=env)
    assert prisma.stderr.splitlines() == [str(tmp_path / f"p.{s}") for s in ("csv", "md", "svg")]


def test_cli_metafor_export_of_nothing_pooled_leaves_no_folder(db_url: str,
                                                               tmp_path: Path) -> None:
    """Refused for want of pooled analyses, the metafor export had already made its --out
    folder (and its parents), and left them empty."""
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    out = tmp_path / "new" / "metafor"
    proc = run_cli("export", "metafor", "--out", str(out), env=env)
    assert_one_line_error(proc, "no pooled analyses to export", "run `mmlr pool` first")
    assert not (tmp_path / "new").exists()
    # a folder that cannot be made is still named first, before the database is read
    (tmp_path / "file").write_text("x")
    bad = run_cli("export", "metafor", "--out", str(tmp_path / "file" / "m"), env=env)
    assert_one_line_error(bad, f"{tmp_path / 'file'} is not a folder")
