"""Which trials of the review a record may report (``store.trial_match``), and where that is
used: the record page (suggestions and the form that links a record to a trial), the queue's
badge, ``trial_matches`` in GET /api/records and the digest's "possible reports" section —
over the real app, database and digest builder."""

from __future__ import annotations

import itertools
from typing import Any

import lxml.html
import pytest
import test_web
from sqlmodel import col, select
from test_web import as_role, csrf_from, db

from reports.digest import build_digest
from store.models import AuditLog, Decision, Record, Trial, TrialReport
from store.trial_match import (
    MatchMemo,
    TrialIndex,
    _record_key,
    name_parts,
    name_tokens,
    registry_ids_in_text,
    registry_key,
    unlinked_strong_matches,
)

app = test_web.app
users = test_web.users

NCT = "NCT00114101"


def _trial(trial_id: int, name: str, registry: list[str] | None = None) -> Trial:
    return Trial(id=trial_id, name=name, drug="lenalidomide", setting="post_asct",
                 registry_ids=registry or [])


def _stored_calgb(session: Any) -> Trial:
    trial = Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct",
                  registry_ids=[NCT])
    session.add(trial)
    session.flush()
    return trial


def _index(*trials: Trial, reports: list[tuple[int, int]] | None = None,
           backlinks: list[tuple[int, dict[str, Any]]] | None = None) -> TrialIndex:
    return TrialIndex(list(trials), reports or [], backlinks or [])


def _match(index: TrialIndex, *, pmid: int = 1, title: str = "", abstract: str = "",
           nct_ids: list[str] | None = None,
           links: list[dict[str, Any]] | None = None) -> dict[str, tuple[bool, tuple[str, ...]]]:
    found = index.match(pmid=pmid, title=title, abstract=abstract, nct_ids=nct_ids or [],
                        comments_corrections=links or [])
    return {m.trial_name: (m.strong, m.reasons) for m in found}


# ----------------------------------------------------------------------------- names and ids
def test_names_compare_on_letter_and_digit_runs() -> None:
    assert name_tokens("CALGB-100104") == name_tokens("calgb 100104") == "calgb 100104"
    assert name_tokens("CALGB100104") == "calgb 100104"
    assert name_tokens("NCIC CTG MY.10") == "ncic ctg my 10"
    assert name_tokens("MM-015") != name_tokens("MM-15")
    assert name_parts("HOVON-65/GMMG-HD4") == ["hovon 65 gmmg hd 4", "hovon 65", "gmmg hd 4"]
    assert name_parts("MRC Myeloma IX") == ["mrc myeloma 9"]
    # one word without a digit would match prose: not used ("S0232" has a digit: used)
    assert name_parts("MAIA") == []
    assert name_parts("S0232") == ["s 0232"]


def test_roman_numerals_from_2_to_39_are_their_arabic_value() -> None:
    assert name_tokens("MRC Myeloma IX") == name_tokens("MRC Myeloma 9") == "mrc myeloma 9"
    assert name_tokens("Myeloma XI") == name_tokens("myeloma-11") == "myeloma 11"
    assert name_tokens("DSMM XIV") == "dsmm 14"
    # the number keeps the token's place: next to digits or punctuation it is still one token
    assert name_tokens("GMMG-MM VI") == name_tokens("GMMG-MM6") == "gmmg mm 6"
    assert name_tokens("ix2 2ix (XXXIX).") == "9 2 2 9 39"
    # digit runs are still compared as written: no numeral is "015"
    assert name_tokens("MM-015") != name_tokens("MM-15") == name_tokens("MM-XV")
    assert name_tokens("MM-015") == "mm 015"
    # single letters are not numbers; nor are non-canonical runs or words containing i, v, x
    assert name_tokens("I V X") == "i v x"
    assert name_tokens("GMMG-MM V") == "gmmg mm v" != name_tokens("GMMG-MM5")
    assert name_tokens("IIII IC XL xxxx IIX VX ixazomib vivid civil mix") == (
        "iiii ic xl xxxx iix vx ixazomib vivid civil mix")

    def roman(n: int) -> str:
        ones = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"]
        return "X" * (n // 10) + ones[n % 10]

    # every run of the letters i, v, x of up to 8 letters: exactly the canonical II..XXXIX
    # of two letters or more are numbers (V and X, five and ten, are one letter: letters)
    numerals = {roman(n).lower(): str(n) for n in range(2, 40) if n not in (5, 10)}
    assert len(numerals) == 36 and max(map(len, numerals)) == 7
    for size in range(1, 9):
        for run in map("".join, itertools.product("ivx", repeat=size)):
            assert name_tokens(f"Myeloma {run.upper()}") == f"myeloma {numerals.get(run, run)}"
    # a one-word numeral is no more specific than a one-word name: not looked for in text
    assert name_parts("XI") == []
    assert name_parts("DSMM XIV/XV") == ["dsmm 14 15", "dsmm 14"]


def test_roman_and_arabic_trial_names_match_each_other_in_text() -> None:
    roman = _index(_trial(1, "MRC Myeloma IX"), _trial(2, "Myeloma XI"))
    assert _match(roman, title="Thalidomide maintenance: MRC Myeloma 9 long-term") == {
        "MRC Myeloma IX": (True, ("trial name in the title",))}
    assert set(_match(roman, title="Lenalidomide maintenance (Myeloma 11): final")) == {
        "Myeloma XI"}
    assert _match(roman, abstract="as in the Myeloma-11 trial") == {
        "Myeloma XI": (False, ("trial name in the abstract",))}
    arabic = _index(_trial(1, "MRC Myeloma 9"), _trial(2, "Myeloma 11"))
    assert set(_match(arabic, title="The MRC Myeloma IX trial")) == {"MRC Myeloma 9"}
    assert set(_match(arabic, title="Results of Myeloma XI")) == {"Myeloma 11"}
    # another number is another trial, whichever way either is written
    for title in ("Myeloma X", "Myeloma 10", "Myeloma 1", "Myeloma I", "Myeloma XII",
                  "Myeloma 110", "Myeloma 011"):
        assert _match(roman, title=f"Results of {title}") == {}, title
        assert _match(arabic, title=f"Results of {title}") == {}, title
    assert _match(_index(_trial(1, "MM-015")), title="MM-15 and MM-XV") == {}
    assert set(_match(_index(_trial(1, "MM-15")), title="the MM-XV trial")) == {"MM-15"}
    # a duration is not a trial's number, however the name writes it
    for title in ("Lenalidomide in myeloma: 11-year follow-up", "Myeloma XI years on",
                  "Myeloma 11 months after transplant", "myeloma, 9-years results of MRC"):
        assert _match(roman, title=title) == {}, title
        assert _match(arabic, title=title) == {}, title


def test_numerals_in_prose_match_only_a_whole_name() -> None:
    """"phase II", "stage III", "IV bortezomib", "XX karyotype" become numbers on both sides,
    so they match only a trial whose whole name they spell."""
    index = _index(_trial(1, "IFM 2009"), _trial(2, "TOURMALINE-MM2"), _trial(3, "GMMG-MM5"),
                   _trial(4, "Total Therapy 2"), _trial(5, "Myeloma XI"),
                   _trial(6, "HOVON-65/GMMG-HD4"), _trial(7, "EMN02/HO95"))
    title = ("A phase II study of IV bortezomib then ixazomib maintenance in stage III/IV "
             "multiple myeloma (IFM II, TOURMALINE phase II, MM V): XI centres, HD IV arm")
    abstract = ("In this phase II trial (IFM), patients with ISS stage II or III myeloma "
                "received IV melphalan as total therapy. GMMG phase V; "
                "EMN II; HOVON II. I am told V and X; vi, xi, xx and xiv are numerals.")
    assert _match(index, title=title, abstract=abstract) == {}
    # the same prose with the names in it: those, and only those, match
    assert set(_match(index, title="Phase II TOURMALINE-MM II and Total Therapy II")) == {
        "TOURMALINE-MM2", "Total Therapy 2"}
    assert set(_match(index, title="GMMG-HD IV: phase III")) == {"HOVON-65/GMMG-HD4"}


def test_registry_ids_are_found_in_text_and_spelled_one_way() -> None:
    text = ("Registered at ClinicalTrials.gov (nct00114101) and EudraCT 2004-001234-56; "
            "see also EUCTR2005-000123-12-GB. Enrolled 2004-01-02 to 2006-12-31.")
    assert registry_ids_in_text(text) == ["NCT00114101", "2004-001234-56", "2005-000123-12"]
    assert registry_key("EUCTR2004-001234-56-IT") == "2004-001234-56"
    assert registry_key(" isrctn12345678 ") == "ISRCTN12345678"
    assert registry_ids_in_text("NCT001141012 is not an id") == []


# ----------------------------------------------------------------------------- matching
def test_each_signal_gives_its_reason_and_strength() -> None:
    calgb = _trial(1, "CALGB 100104", [NCT])
    ifm = _trial(2, "IFM 2005-02", ["EUCTR2004-001234-56-FR"])
    hovon = _trial(3, "HOVON-65/GMMG-HD4")
    index = _index(calgb, ifm, hovon, reports=[(1, 500), (2, 600)],
                   backlinks=[(600, {"ref_type": "UpdateIn", "pmid": 77})])

    assert _match(index, nct_ids=[NCT.lower()]) == {
        "CALGB 100104": (True, (f"registration {NCT} listed in the record",))}
    assert _match(index, abstract="EudraCT number 2004-001234-56.") == {
        "IFM 2005-02": (True, ("registration 2004-001234-56 named in the abstract",))}
    assert _match(index, title="Ten-year follow-up of CALGB-100104") == {
        "CALGB 100104": (True, ("trial name in the title",))}
    # a review citing trials by name in its abstract: weak
    assert _match(index, abstract="Trials such as GMMG-HD4 and CALGB100104 showed ...") == {
        "CALGB 100104": (False, ("trial name in the abstract",)),
        "HOVON-65/GMMG-HD4": (False, ("trial name in the abstract",))}
    assert _match(index, links=[{"ref_type": "UpdateOf", "pmid": 500}]) == {
        "CALGB 100104": (True, ("an update of PMID 500, a report of the trial",))}
    assert _match(index, links=[{"ref_type": "CommentOn", "pmid": 600}]) == {
        "IFM 2005-02": (False, ("a comment on PMID 600, a report of the trial",))}
    # the report's own PubMed link points at the new record
    assert _match(index, pmid=77) == {"IFM 2005-02": (True, (
        "an update of PMID 600, a report of the trial (PubMed's link from that report)",))}
    # a PMID stored as text still counts; a malformed link is no signal and no crash
    assert set(_match(index, links=[{"ref_type": "UpdateOf", "pmid": "500"},
                                    {"ref_type": "UpdateOf", "pmid": "n/a"},
                                    {"ref_type": "UpdateOf"}])) == {"CALGB 100104"}
    # no signal: nothing, and a link to a PMID that is no report is no signal
    assert _match(index, title="Lenalidomide maintenance in myeloma",
                  links=[{"ref_type": "UpdateOf", "pmid": 999}]) == {}


def test_strong_matches_come_first_and_linked_trials_are_left_out() -> None:
    index = _index(_trial(1, "CALGB 100104", [NCT]), _trial(2, "IFM 2005-02"),
                   reports=[(2, 42)])
    found = index.match(pmid=9, title="After CALGB 100104", abstract="Unlike IFM 2005-02, ...",
                        nct_ids=[NCT])
    assert [(m.trial_name, m.strong) for m in found] == [("CALGB 100104", True),
                                                        ("IFM 2005-02", False)]
    assert found[0].reasons == (f"registration {NCT} listed in the record",
                                "trial name in the title")
    # the digest's pass reads only the strong signals, and finds the same strong matches
    assert index.match(pmid=9, title="After CALGB 100104", abstract="Unlike IFM 2005-02, ...",
                       nct_ids=[NCT], strong_only=True) == found[:1]
    # PMID 42 is already a report of the IFM trial: only CALGB is suggested
    assert [m.trial_name for m in index.match(
        pmid=42, title="IFM 2005-02 and CALGB 100104", abstract="")] == ["CALGB 100104"]


def test_longest_name_wins_where_two_names_overlap() -> None:
    index = _index(_trial(1, "MRC Myeloma IX"), _trial(2, "Myeloma IX"))
    assert set(_match(index, title="Final results of the MRC Myeloma IX trial")) == {
        "MRC Myeloma IX"}
    assert set(_match(index, title="In the Myeloma IX study")) == {"Myeloma IX"}


def test_the_words_of_a_name_found_are_not_read_again() -> None:
    index = _index(_trial(1, "ABC 12"), _trial(2, "12 XYZ"))
    assert set(_match(index, title="ABC 12 XYZ")) == {"ABC 12"}
    assert set(_match(index, title="ABC 12 and 12 XYZ, ABC-12")) == {"ABC 12", "12 XYZ"}
    assert set(_match(index, abstract="the 12 XYZ trial")) == {"12 XYZ"}


def test_the_memo_answers_as_the_index_and_forgets_what_changed() -> None:
    index = _index(_trial(1, "CALGB 100104", [NCT]), _trial(2, "IFM 2005-02"))
    memo = MatchMemo(size=2)
    first = Record(pmid=1, title="CALGB 100104 at 10 years", abstract="Unlike IFM 2005-02")
    listed = Record(pmid=2, title="A trial", nct_ids=[NCT])
    for record in (first, listed, first, listed):
        assert memo.matches(index, record) == index.match_record(record)
    assert (memo.hits, memo.misses) == (2, 2)
    # a record whose text changed is read again; the answer is the new text's
    first.abstract = "Nothing else"
    assert [m.reasons for m in memo.matches(index, first)] == [("trial name in the title",)]
    assert memo.misses == 3
    # other trials: nothing remembered counts (the same record is read again)
    bigger = _index(_trial(1, "CALGB 100104", [NCT]), _trial(3, "A TRIAL 7"))
    assert memo.matches(bigger, listed) == bigger.match_record(listed)
    assert memo.misses == 4
    # at most `size` records are kept, the least recently shown dropped first
    third = Record(pmid=3, title="Third")
    memo.matches(bigger, first)
    memo.matches(bigger, third)
    memo.matches(bigger, listed)
    assert (memo.hits, memo.misses) == (2, 7)
    # the lists handed out are the caller's: changing one changes nothing remembered
    memo.matches(bigger, listed).clear()
    assert memo.matches(bigger, listed) == bigger.match_record(listed) != []


def test_the_memo_keys_records_apart_wherever_their_fields_end() -> None:
    """The memo keeps a digest of a record's fields, not the fields: records whose texts run
    the same once joined, whichever separator one might pick, are still different keys, and
    a record matched again is a hit."""
    index = _index(_trial(1, "CALGB 100104", [NCT]))
    alike = [
        Record(pmid=1, title="a|b", abstract="c"),
        Record(pmid=1, title="a", abstract="b|c"),
        Record(pmid=1, title="ab", abstract="c"),
        Record(pmid=1, title="a", abstract="bc"),
        Record(pmid=1, title="a", abstract=None),
        Record(pmid=1, title="a", abstract=""),
        Record(pmid=1, title="a", nct_ids=["NCT1", "NCT2"]),
        Record(pmid=1, title="a", nct_ids=["NCT1NCT2"]),
        Record(pmid=11, title="1a"),
        Record(pmid=1, title="1a"),
    ]
    assert len({_record_key(r) for r in alike}) == len(alike)
    memo = MatchMemo()
    for record in alike:
        memo.matches(index, record)
    assert (memo.hits, memo.misses) == (0, len(alike))
    memo.matches(index, Record(pmid=1, title="a", abstract="b|c"))
    assert (memo.hits, memo.misses) == (1, len(alike))


def test_an_index_of_the_same_trials_has_the_same_signature() -> None:
    one = _index(_trial(1, "CALGB 100104", [NCT]), reports=[(1, 42)],
                 backlinks=[(42, {"ref_type": "UpdateIn", "pmid": 43})])
    same = _index(_trial(1, "CALGB 100104", [NCT]), reports=[(1, 42)],
                  backlinks=[(42, {"ref_type": "UpdateIn", "pmid": 43})])
    assert one.signature == same.signature
    for other in (_index(_trial(1, "CALGB 100104", [NCT]), reports=[(1, 42)]),
                  _index(_trial(1, "CALGB 100104", [NCT])),
                  _index(_trial(1, "CALGB 100104")),
                  _index(_trial(1, "CALGB 100105", [NCT]), reports=[(1, 42)],
                         backlinks=[(42, {"ref_type": "UpdateIn", "pmid": 43})])):
        assert other.signature != one.signature


def test_unlinked_strong_matches_skip_excluded_deleted_and_linked(ctx: Any) -> None:
    with ctx.sessions() as s:
        trial = _stored_calgb(s)
        for pmid, extra in [(1, {}), (2, {"decision": "exclude"}), (3, {"deleted": True}),
                            (4, {"decision": "include"}), (5, {})]:
            s.add(Record(pmid=pmid, title=f"Record {pmid}", nct_ids=[NCT], **extra))
        s.add(Record(pmid=6, title="Weak only", abstract="as in CALGB 100104"))
        s.add(TrialReport(trial_id=trial.id, pmid=5, citation="linked"))
        s.commit()
        found = {r.pmid: [m.trial_name for m in ms] for r, ms in unlinked_strong_matches(s)}
    assert found == {1: ["CALGB 100104"], 4: ["CALGB 100104"]}


# ----------------------------------------------------------------------------- web
@pytest.fixture
def review(app: Any) -> dict[str, int]:
    """Two trials of the review and three records: an update of one (listing its
    registration), a review naming it in the abstract only, and an unrelated record."""
    with db(app) as s:
        calgb = Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct")
        other = Trial(name="IFM 2005-02", drug="lenalidomide", setting="post_asct")
        s.add(calgb)
        s.add(other)
        s.flush()
        s.add(TrialReport(trial_id=calgb.id, pmid=28826616, citation="Holstein SA et al. 2017"))
        s.add(Record(pmid=90000011, title="Lenalidomide maintenance: final analysis of "
                     "CALGB 100104 <i>update</i>", abstract="Long-term follow-up.",
                     nct_ids=[NCT], authors=["Holstein SA", "Doe J"],
                     journal_abbrev="Lancet Haematol", year=2026, score=0.4))
        s.add(Record(pmid=90000012, title="Maintenance therapy: a review",
                     abstract="CALGB 100104 and IFM 2005-02 showed ...", score=0.9))
        s.add(Record(pmid=90000013, title="Unrelated", abstract="Nothing here.", score=0.2))
        s.commit()
        return {"calgb": int(calgb.id or 0), "ifm": int(other.id or 0)}


def _section(html: str) -> Any:
    (node,) = lxml.html.fromstring(html).xpath('//section[@id="trials"]')
    return node


def test_record_page_suggests_the_trial_with_a_prefilled_form(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    html = as_role(app, users, "curator").get("/records/90000011").text
    section = _section(html)
    (match,) = section.xpath('.//li[contains(@class, "trial-match")]')
    assert match.get("data-trial") == str(review["calgb"]) and "strong" in match.get("class")
    # the trial has no registration yet: its name in the title is the signal
    assert " ".join(match.text_content().split()) == "CALGB 100104 — trial name in the title"
    (form,) = section.xpath('.//form[@id="link-trial-form"]')
    selected = form.xpath('.//select[@name="trial_id"]/option[@selected]')
    assert [o.get("value") for o in selected] == [str(review["calgb"])]
    assert form.xpath('.//select[@name="kind"]/option[@selected]/@value') == ["update"]
    assert form.xpath('.//input[@name="citation"]/@value') == [
        "Holstein SA et al. Lancet Haematol 2026"]
    assert form.xpath('.//input[@name="add_registry"]/@checked') == ["checked"]
    # weak matches are shown as weak; a record with none says so
    weak = _section(as_role(app, users, "viewer").get("/records/90000012").text)
    assert [" ".join(li.text_content().split()) for li in weak.xpath(".//li")] == [
        "CALGB 100104 (weak) — trial name in the abstract",
        "IFM 2005-02 (weak) — trial name in the abstract"]
    assert not weak.xpath(".//form")  # a viewer gets no form
    # a curator's form does not propose a weak match: no trial chosen, closed
    weak_form = _section(as_role(app, users, "curator").get("/records/90000012").text)
    assert weak_form.xpath('.//select[@name="trial_id"]/option[@selected]/@value') == []
    assert weak_form.xpath('.//select[@name="kind"]/option[@selected]/@value') == ["primary"]
    assert weak_form.xpath('.//details[contains(@class, "link-trial")]/@open') == []
    none = _section(as_role(app, users, "viewer").get("/records/90000013").text)
    assert none.xpath('.//p[contains(@class, "no-trial-match")]')


def test_linking_adds_the_report_and_the_registration(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000011").text)
    form = {"csrf_token": token, "trial_id": str(review["calgb"]), "kind": "update",
            "citation": "Holstein SA et al. Lancet Haematol 2026;13:e1-9", "year": "2026",
            "add_registry": "1"}
    response = curator.post("/records/90000011/reports", data=form, follow_redirects=False)
    assert response.status_code == 303
    with db(app) as s:
        report = s.exec(select(TrialReport).where(TrialReport.pmid == 90000011)).one()
    assert response.headers["location"] == \
        f"/trials/{review['calgb']}?report={report.id}#add-estimate"
    page = curator.get(response.headers["location"]).text
    assert (f"PMID 90000011 added to CALGB 100104 as its update report. Registration added "
            f"to the trial: {NCT}. Enter its hazard ratios below.") in page
    # the form below is set to the report just added, whose numbers the curator enters
    extraction = lxml.html.fromstring(page).xpath('//form[contains(@class, "extraction-form")]')
    assert extraction[0].xpath('.//select[@name="report_id"]/option[@selected]/@value') == [
        str(report.id)]
    with db(app) as s:
        assert (report.trial_id, report.kind, report.year, report.citation) == (
            review["calgb"], "update", 2026, form["citation"])
        assert s.get(Trial, review["calgb"]).registry_ids == [NCT]  # type: ignore[union-attr]
        actions = [a.action for a in s.exec(select(AuditLog).order_by(col(AuditLog.id)))]
        assert actions[-2:] == ["report.add", "trial.edit"]
    # now a report of the trial: listed as such, no longer suggested for it
    section = _section(curator.get("/records/90000011").text)
    assert "CALGB 100104 — update:" in " ".join(section.text_content().split())
    assert not section.xpath('.//li[contains(@class, "trial-match")]')
    # the same link again is refused, next to the field, and nothing is added
    again = curator.post("/records/90000011/reports", data=form, follow_redirects=False)
    assert again.status_code == 400
    assert "Trial PMID 90000011 is already a report of CALGB 100104" in again.text
    with db(app) as s:
        assert len(s.exec(select(TrialReport).where(TrialReport.pmid == 90000011)).all()) == 1


def test_linking_refuses_bad_input_and_the_viewer(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000013").text)
    bad = curator.post("/records/90000013/reports", data={
        "csrf_token": token, "trial_id": "", "kind": "sequel", "citation": "",
        "year": "26"}, follow_redirects=False)
    assert bad.status_code == 400
    text = " ".join(lxml.html.fromstring(bad.text).text_content().split())
    assert "Trial is required: choose a trial of the review" in text
    missing = curator.post("/records/90000013/reports", data={
        "csrf_token": token, "trial_id": "999", "citation": "X 2026"}, follow_redirects=False)
    assert missing.status_code == 400 and "Trial 999 does not exist" in missing.text
    kind = curator.post("/records/90000013/reports", data={
        "csrf_token": token, "trial_id": str(review["ifm"]), "kind": "sequel",
        "citation": "X 2026"}, follow_redirects=False)
    assert kind.status_code == 400 and "must be one of primary, update" in kind.text
    # what was typed is kept in the form
    assert lxml.html.fromstring(kind.text).xpath(
        '//form[@id="link-trial-form"]//input[@name="citation"]/@value') == ["X 2026"]
    unknown = curator.post("/records/123/reports", data={"csrf_token": token},
                           follow_redirects=False)
    assert unknown.status_code == 404 and "record PMID 123 is not in the database" in unknown.text
    viewer = as_role(app, users, "viewer")
    token = csrf_from(viewer.get("/records/90000013").text)
    denied = viewer.post("/records/90000013/reports", data={
        "csrf_token": token, "trial_id": str(review["ifm"]), "citation": "X 2026"},
        follow_redirects=False)
    assert denied.status_code == 403
    with db(app) as s:
        assert s.exec(select(TrialReport).where(TrialReport.pmid == 90000013)).all() == []


def test_queue_badge_and_api_field(app: Any, users: dict[str, str],
                                   review: dict[str, int]) -> None:
    page = as_role(app, users, "viewer").get("/").text
    row = page.split('data-pmid="90000011"')[1].split("</tr>")[0]
    assert "report of CALGB 100104?" in row
    # weak matches (a review naming trials) get no badge
    assert "report of" not in page.split('data-pmid="90000012"')[1].split("</tr>")[0]
    api = test_web.api_as(app, users, "viewer").get("/api/records").json()
    by_pmid = {r["pmid"]: r["trial_matches"] for r in api["records"]}
    assert by_pmid[90000011] == [{"trial_id": review["calgb"], "trial": "CALGB 100104",
                                  "reasons": ["trial name in the title"],
                                  "strong": True}]
    assert [m["strong"] for m in by_pmid[90000012]] == [False, False]
    assert by_pmid[90000013] == []
    # the queue page and the API keep the matches of the records they showed (MatchMemo)
    memo = app.state.trial_matches
    hits = memo.hits
    again = test_web.api_as(app, users, "viewer").get("/api/records").json()
    assert again == api and memo.hits == hits + len(api["records"])


# ----------------------------------------------------------------------------- digest
def test_digest_lists_new_possible_reports_once(ctx: Any) -> None:
    with ctx.sessions() as s:
        trial_id = _stored_calgb(s).id
        s.add(Record(pmid=90000021, title="Overall survival in CALGB 100104 <b>x</b>",
                     journal_abbrev="Blood", year=2026))
        s.add(Record(pmid=90000022, title="A review", abstract="CALGB 100104 ..."))
        s.commit()
    first = build_digest(ctx)
    doc = lxml.html.fromstring(first.html)
    rows = doc.xpath('//div[@id="trial-reports"]//tr[@class="trial-report"]')
    assert [r.get("data-pmid") for r in rows] == ["90000021"]  # the weak one is not listed
    assert " ".join(rows[0].text_content().split()).endswith(
        "Trial CALGB 100104: trial name in the title")
    assert "<b>x</b>" not in first.html and "&lt;b&gt;x&lt;/b&gt;" in first.html
    assert "1 possible report of a trial in the review" in first.subject
    assert "POSSIBLE REPORTS OF TRIALS IN THE REVIEW (1)" in first.text
    assert "Trial CALGB 100104: trial name in the title" in first.text
    assert first.summary["trial_match_keys"] == [f"90000021:{trial_id}"]

    # announced once: the next digest (built because of a decision) does not repeat it,
    # but lists a new record that lists the registration
    with ctx.sessions() as s:
        s.add(Decision(pmid=90000022, decision="exclude"))
        s.add(Record(pmid=90000023, title="Quality of life", nct_ids=[NCT]))
        s.commit()
    second = build_digest(ctx)
    assert second.id != first.id
    assert second.summary["new_trial_reports_total"] == 1
    assert [r["pmid"] for r in second.summary["new_trial_reports"]] == [90000023]
    assert second.summary["new_trial_reports"][0]["trials"][0]["reasons"] == [
        f"registration {NCT} listed in the record"]

    # nothing new at all: no new digest; linking a record is no news either
    with ctx.sessions() as s:
        s.add(TrialReport(trial_id=trial_id, pmid=90000023, citation="QoL"))
        s.commit()
    assert build_digest(ctx).id == second.id
    third_summary = second.summary
    assert 'id="trial-reports"' in second.html and third_summary["trial_match_keys"] == [
        f"90000021:{trial_id}", f"90000023:{trial_id}"]


def test_digest_without_matches_has_no_section(ctx: Any) -> None:
    with ctx.sessions() as s:
        s.add(Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct"))
        s.add(Record(pmid=90000031, title="Unrelated"))
        s.commit()
    digest = build_digest(ctx)
    assert 'id="trial-reports"' not in digest.html
    assert "POSSIBLE REPORTS" not in digest.text
    assert digest.summary["new_trial_reports_total"] == 0


# ----------------------------------------------------------------------------- new trial
def test_trial_name_is_read_from_the_title_parentheses() -> None:
    from screening.web.trials import trial_name_from_title

    assert trial_name_from_title("Lenalidomide maintenance (CALGB 100104): final") == (
        "CALGB 100104")
    assert trial_name_from_title("Ixazomib after ASCT (TOURMALINE-MM3): a trial") == (
        "TOURMALINE-MM3")
    assert trial_name_from_title("Maintenance after ASCT (ASCT) in myeloma (Myeloma XI)") == (
        "Myeloma XI")
    assert trial_name_from_title("Progression-free survival (PFS) with lenalidomide") == ""
    assert trial_name_from_title(None) == ""


def test_new_trial_form_guesses_drug_setting_and_comparator() -> None:
    from screening.web.trials import new_trial_values

    def guess(title: str, abstract: str | None = None) -> tuple[str, str, str]:
        v = new_trial_values(Record(pmid=1, title=title, abstract=abstract))
        return v["drug"], v["setting"], v["comparator"]

    assert guess("Thalidomide-interferon vs. observation in transplant-ineligible "
                 "patients") == ("thalidomide", "non_transplant", "observation")
    assert guess("Lenalidomide after high-dose melphalan") == ("lenalidomide", "post_asct", "")
    # the title names no population: the abstract decides; both named: the curator does
    assert guess("Daratumumab maintenance", "Patients after autologous stem-cell "
                 "transplantation were randomly assigned") == ("daratumumab", "post_asct", "")
    assert guess("Maintenance in patients eligible or not eligible for transplant after "
                 "ASCT or MP") == ("", "", "")


def test_new_trial_from_a_record_links_it_as_the_primary_report(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    with db(app) as s:
        s.add(Record(pmid=90000014, title="Ixazomib maintenance versus placebo after ASCT "
                     "(SYN-MM03): a phase 3 trial",
                     nct_ids=["NCT09912345"], authors=["Roe R"], journal="Blood", year=2025))
        s.commit()
    curator = as_role(app, users, "curator")
    record_page = lxml.html.fromstring(curator.get("/records/90000014").text)
    assert record_page.xpath('//p[@class="new-trial-from-record"]/a/@href') == [
        "/trials/new?from_pmid=90000014"]
    form_page = curator.get("/trials/new?from_pmid=90000014")
    doc = lxml.html.fromstring(form_page.text)
    assert doc.xpath('//input[@name="name"]/@value') == ["SYN-MM03"]
    assert doc.xpath('//input[@name="registry_ids"]/@value') == ["NCT09912345"]
    assert doc.xpath('//input[@name="drug"]/@value') == ["ixazomib"]
    assert doc.xpath('//select[@name="setting"]/option[@selected]/@value') == ["post_asct"]
    assert doc.xpath('//input[@name="comparator"]/@value') == ["placebo"]
    assert doc.xpath('//input[@name="from_pmid"]/@value') == ["90000014"]
    token = csrf_from(form_page.text)
    # a refused form keeps the record (and creates nothing)
    bad = curator.post("/trials/new", data={"csrf_token": token, "name": "SYN-MM03",
                                            "drug": "", "setting": "post_asct",
                                            "from_pmid": "90000014"}, follow_redirects=False)
    assert bad.status_code == 400
    assert lxml.html.fromstring(bad.text).xpath('//input[@name="from_pmid"]/@value') == [
        "90000014"]
    created = curator.post("/trials/new", data={
        "csrf_token": token, "name": "SYN-MM03", "drug": "ixazomib", "setting": "post_asct",
        "registry_ids": "NCT09912345", "from_pmid": "90000014"}, follow_redirects=False)
    assert created.status_code == 303
    page = curator.get(created.headers["location"]).text
    assert ("Trial SYN-MM03 created. PMID 90000014 is its primary report: complete its "
            "citation below.") in page
    with db(app) as s:
        trial = s.exec(select(Trial).where(Trial.name == "SYN-MM03")).one()
        report = s.exec(select(TrialReport).where(TrialReport.pmid == 90000014)).one()
        assert (report.trial_id, report.kind, report.citation, report.year) == (
            trial.id, "primary", "Roe R Blood 2025", 2025)
    # an unknown record is a clear 404, not a trial without its report
    missing = curator.post("/trials/new", data={
        "csrf_token": token, "name": "Other 1", "drug": "ixazomib", "setting": "post_asct",
        "from_pmid": "123"}, follow_redirects=False)
    assert missing.status_code == 404 and "record PMID 123 is not in the database" in missing.text
    with db(app) as s:
        assert s.exec(select(Trial).where(Trial.name == "Other 1")).first() is None


def test_the_same_trial_cannot_be_entered_twice(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    """A trial entered twice is pooled twice: a registration belongs to one trial, and the
    primary report of a trial is not made the primary report of a new one."""
    with db(app) as s:
        calgb = s.get(Trial, review["calgb"])
        assert calgb is not None
        calgb.registry_ids = [NCT]
        s.add(calgb)
        s.add(TrialReport(trial_id=review["ifm"], pmid=90000011, kind="primary",
                          citation="x"))
        third = Trial(name="HOVON 65", drug="bortezomib", setting="post_asct")
        s.add(third)
        s.commit()
        third_id = third.id
    curator = as_role(app, users, "curator")
    # the record page no longer offers a new trial from the IFM trial's primary report
    page = lxml.html.fromstring(curator.get("/records/90000011").text)
    assert page.xpath('//p[contains(@class, "new-trial-from-record")]/a') == []
    assert "primary report of IFM 2005-02" in page.xpath(
        'string(//p[contains(@class, "new-trial-from-record")])')
    token = csrf_from(curator.get("/trials/new").text)
    form = {"csrf_token": token, "name": "CALGB 100104 (again)", "drug": "lenalidomide",
            "setting": "post_asct", "registry_ids": NCT.lower()}
    again = curator.post("/trials/new", data=form, follow_redirects=False)
    assert again.status_code == 400
    assert (f"{NCT} is already the registration of CALGB 100104: a trial entered twice"
            " is pooled twice") in again.text
    primary = curator.post("/trials/new", data={**form, "registry_ids": "",
                                                "from_pmid": "90000011"},
                           follow_redirects=False)
    assert primary.status_code == 400
    assert "PMID 90000011 is already the primary report of IFM 2005-02" in primary.text
    # editing another trial to take the registration is refused the same way
    edit = curator.post(f"/trials/{review['ifm']}/edit", data={
        "csrf_token": token, "name": "IFM 2005-02", "drug": "lenalidomide",
        "setting": "post_asct", "registry_ids": NCT}, follow_redirects=False)
    assert edit.status_code == 400 and "already the registration of CALGB 100104" in edit.text
    # adding a record's registration to a trial is refused when another trial has it
    link = curator.post("/records/90000011/reports", data={
        "csrf_token": token, "trial_id": str(third_id), "kind": "update",
        "citation": "X 2026", "add_registry": "1", "confirm_other_trial": "1"},
        follow_redirects=False)
    assert link.status_code == 400 and "already the registration of CALGB 100104" in link.text
    with db(app) as s:
        assert len(s.exec(select(Trial)).all()) == 3
        assert s.get(Trial, review["ifm"]).registry_ids in ([], None)  # type: ignore[union-attr]
        assert len(s.exec(select(TrialReport).where(TrialReport.pmid == 90000011)).all()) == 1
    # the trial itself keeps its registration when edited
    keep = curator.post(f"/trials/{review['calgb']}/edit", data={
        "csrf_token": token, "name": "CALGB 100104", "drug": "lenalidomide",
        "setting": "post_asct", "registry_ids": NCT}, follow_redirects=False)
    assert keep.status_code == 303


def test_adding_a_report_that_screening_did_not_pass_says_so(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    """Its numbers will be pooled once verified, yet PRISMA does not count it as included:
    the curator is told, not refused (the seed evidence's reports were never screened here)."""
    with db(app) as s:
        s.get(Record, 90000012).decision = "exclude"  # type: ignore[union-attr]
        s.add(Record(pmid=90000014, title="Included", decision="include"))
        s.commit()
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get(f"/trials/{review['ifm']}").text)

    def add(pmid: int) -> str:
        done = curator.post(f"/trials/{review['ifm']}/reports", data={
            "csrf_token": token, "pmid": str(pmid), "kind": "update", "citation": "X 2026"},
            follow_redirects=False)
        assert done.status_code == 303
        return curator.get(done.headers["location"]).text

    assert ("PMID 90000013 has no title/abstract decision yet: screen it on its record page "
            "(/records/90000013), then assess its full text, so that the PRISMA flow counts it "
            "as included.") in add(90000013)
    assert "PMID 90000012 was excluded at title/abstract screening" in add(90000012)
    page = add(90000014)
    assert "Report added." in page and "title/abstract" not in page
    # included at title/abstract, its full text not assessed yet: not counted either
    assert ("PMID 90000014 has no settled full-text verdict yet: the PRISMA flow counts it "
            "as included only once its full text is settled eligible") in page
    # the record page's link says the same
    linked = curator.post("/records/90000011/reports", data={
        "csrf_token": token, "trial_id": str(review["calgb"]), "kind": "update",
        "citation": "X 2026"}, follow_redirects=False)
    assert "PMID 90000011 has no title/abstract decision yet" in curator.get(
        linked.headers["location"]).text


def test_trial_page_refuses_a_pmid_the_trial_has_already(
        app: Any, users: dict[str, str], review: dict[str, int]) -> None:
    curator = as_role(app, users, "curator")
    url = f"/trials/{review['calgb']}"
    token = csrf_from(curator.get(url).text)
    form = {"csrf_token": token, "pmid": "90000011", "citation": "Holstein SA 2026",
            "year": "2026", "kind": "update"}
    assert curator.post(url + "/reports", data=form, follow_redirects=False).status_code == 303
    again = curator.post(url + "/reports", data=form, follow_redirects=False)
    assert again.status_code == 400
    text = " ".join(lxml.html.fromstring(again.text).text_content().split())
    assert "PMID 90000011 is already a report of CALGB 100104" in text
    # the seed report's PMID too; another trial may still cite the same PMID, when the
    # curator confirms it reports that trial too
    form["pmid"] = "28826616"
    assert curator.post(url + "/reports", data=form).status_code == 400
    other = f"/trials/{review['ifm']}/reports"
    assert curator.post(other, data=form, follow_redirects=False).status_code == 400
    assert curator.post(other, data={**form, "confirm_other_trial": "1"},
                        follow_redirects=False).status_code == 303
    with db(app) as s:
        rows = s.exec(select(TrialReport.trial_id, TrialReport.pmid)).all()
    assert sorted(rows) == sorted([(review["calgb"], 28826616), (review["calgb"], 90000011),
                                   (review["ifm"], 28826616)])
