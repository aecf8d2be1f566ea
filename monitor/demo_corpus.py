"""A synthetic PubMed corpus for ``mmlr demo`` and the tests: records that *we* write.

No real abstract is reused: every title and abstract is assembled from templates in this module
with seeded variation (drug, setting, sample size, hazard ratio...). The same seed gives
byte-identical files.

How a record is marked synthetic (so nobody mistakes it for literature) without giving the
classifier a free hint about eligibility -- every record, eligible or not, carries all of:

* PMIDs from 90000001 up (far above real PMIDs, ~41.7 M in 2026);
* journal "mmlr Synthetic Demo Journal" (ISO abbreviation "mmlr Synth Demo J");
* the keyword "synthetic-demo-record";
* DOIs under 10.5555 (the prefix reserved for examples), e.g. 10.5555/mmlr-demo.90000001;
* ``<CopyrightInformation>`` "Synthetic record written for the mmlr demo; not a real
  publication." (not part of the parsed abstract text).

Every record is in volume (year - 2020), issue (month) of that journal, with printed pages
abbreviated as PubMed prints them ("904-11", even PMIDs) or an article number ("e3", odd
PMIDs), so the demo's citations and RIS export show both forms.

Titles are *not* prefixed, because the classifier reads titles.

Layout written by :func:`write_demo_corpus`: one PubmedArticleSet file per month of create
date (``pubmed-demo-2025-02.xml`` ... ``-11.xml``, ten months), and ``labels.csv`` beside them
with the ground truth ``pmid,category,eligible,drug,setting`` (eligible = a randomised trial of
maintenance therapy in multiple myeloma, the review's inclusion criterion).

The mix: maintenance RCTs in myeloma (post-ASCT and non-transplant, six drugs; recent ones
still Publisher/In-Process without MeSH or the RCT publication type, as real new records
are), induction, transplant and consolidation trials, reviews and meta-analyses of maintenance,
observational cohorts, case reports, editorials/letters (some commenting on our synthetic
RCTs or on the real seed trials' PMIDs), other myeloma topics, maintenance RCTs in other
haematological cancers (hard negatives), an erratum and a retraction notice for one synthetic
RCT.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from lxml import etree

FIRST_PMID = 90000001
JOURNAL = "mmlr Synthetic Demo Journal"
JOURNAL_ABBREV = "mmlr Synth Demo J"
SYNTHETIC_KEYWORD = "synthetic-demo-record"
SYNTHETIC_NOTE = "Synthetic record written for the mmlr demo; not a real publication."
DOI_PREFIX = "10.5555/mmlr-demo."
LABELS_FILE = "labels.csv"
START, END = date(2025, 2, 1), date(2025, 11, 30)

#: PMIDs of real seed maintenance trials (see ../shared/data/trials/trials.csv); a few
#: synthetic letters comment on them so the citation alerts have something real to point at.
SEED_TRIAL_PMIDS = (28826616, 25184862, 20418244, 16873668, 16525139, 20876454)

DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">'
)

#: category -> (number of records, eligible)
MIX: dict[str, tuple[int, bool]] = {
    "maintenance_rct": (45, True),
    "induction_trial": (24, False),
    "transplant_trial": (12, False),
    "consolidation_trial": (12, False),
    "maintenance_review": (14, False),
    "observational": (16, False),
    "case_report": (14, False),
    "editorial": (14, False),
    "myeloma_other": (8, False),
    "other_heme_maintenance_rct": (24, False),
    "erratum": (2, False),
    "retraction_notice": (1, False),
}

DRUGS = {
    # name: (MeSH descriptor, class phrase)
    "thalidomide": ("Thalidomide", "immunomodulatory drug"),
    "lenalidomide": ("Lenalidomide", "immunomodulatory drug"),
    "bortezomib": ("Bortezomib", "proteasome inhibitor"),
    "ixazomib": ("Ixazomib", "oral proteasome inhibitor"),
    "daratumumab": ("Daratumumab", "anti-CD38 monoclonal antibody"),
    "carfilzomib": ("Carfilzomib", "proteasome inhibitor"),
}
SURNAMES = (
    "Andersen", "Baptiste", "Castellano", "Dubois", "Eriksson", "Fernández", "Gallagher",
    "Haddad", "Ishikawa", "Jørgensen", "Kowalczyk", "Lindqvist", "Moreau-Petit", "Nakamura",
    "Okafor", "Papadopoulos", "Quintero", "Rossi", "Schäfer", "Tanaka", "Ueda", "Vásquez",
    "Weber", "Xu", "Yılmaz", "Zielińska", "O'Neill", "Van der Berg", "Søndergaard", "Çelik",
)
INITIALS = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T")
COLLECTIVE = "mmlr Synthetic Myeloma Study Group"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class DemoRecord:
    """One synthetic record before it becomes XML."""

    category: str
    eligible: bool
    create: date
    title: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)
    mesh: list[tuple[str, bool, list[tuple[str, bool]]]] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    nct: str | None = None
    status: str = "MEDLINE"
    drug: str = ""
    setting: str = ""
    links: list[tuple[str, int, str]] = field(default_factory=list)
    pmid: int = 0


# --------------------------------------------------------------------------- text templates


def _pct(rng: random.Random, low: float, high: float) -> str:
    return f"{rng.uniform(low, high):.1f}%"


def _p_value(hr: float, lo: float, hi: float) -> str:
    """Two-sided P from a hazard ratio and its 95% CI (normal approximation on the log scale)."""
    se = (math.log(hi) - math.log(lo)) / (2 * 1.959964)
    p = math.erfc(abs(math.log(hr)) / se / math.sqrt(2))
    return "P<0.001" if p < 0.001 else f"P={p:.3f}"


def _hr(rng: random.Random, low: float, high: float, n: int) -> tuple[float, float, float]:
    """A hazard ratio with a 95% CI whose width shrinks with the sample size."""
    hr = rng.uniform(low, high)
    se = 2.0 / math.sqrt(max(n, 40) * 0.6)
    return hr, math.exp(math.log(hr) - 1.96 * se), math.exp(math.log(hr) + 1.96 * se)


def _maintenance_rct(rng: random.Random, rec: DemoRecord, index: int) -> None:
    drug = rng.choice(list(DRUGS))
    mesh_name, drug_class = DRUGS[drug]
    setting = "post_asct" if index % 3 != 2 else "non_transplant"
    control = rng.choice(("placebo", "observation", "no maintenance"))
    n = rng.randrange(120, 900, 2)
    hr, lo, hi = _hr(rng, 0.42, 0.82, n)
    os_hr, os_lo, os_hi = _hr(rng, 0.70, 1.05, n)
    median_m, median_c = rng.randint(30, 60), rng.randint(14, 29)
    trial = f"SYN-MM{index + 1:02d}"
    population = (
        "patients with newly diagnosed multiple myeloma who had undergone high-dose melphalan "
        "and autologous stem-cell transplantation"
        if setting == "post_asct"
        else "transplant-ineligible patients with newly diagnosed multiple myeloma who "
        "responded to initial therapy"
    )
    rec.drug, rec.setting = drug, setting
    follow = rng.choice(("", "", "Long-term follow-up of ", "Updated analysis of "))
    design = (
        "a double-blind, randomised, placebo-controlled trial" if control == "placebo"
        else rng.choice(("a randomised, open-label, phase 3 trial",
                         "a multicentre randomised phase 3 trial"))
    )
    where = "after autologous transplantation" if setting == "post_asct" else (
        "in transplant-ineligible patients")
    rec.title = (
        f"{follow}{drug} maintenance versus {control} {where} with multiple myeloma "
        f"({trial}): {design}."
    )
    rec.title = rec.title[0].upper() + rec.title[1:]
    rec.sections = [
        ("BACKGROUND", f"Whether continuous {drug_class} therapy prolongs remission in "
                       f"{population} remains debated. We assessed {drug} maintenance in the "
                       f"{trial} trial."),
        ("METHODS", f"In this trial, {n} {population} were randomly assigned (1:1) to {drug} "
                    f"maintenance until progression or to {control}. The primary endpoint was "
                    f"progression-free survival (PFS); overall survival was secondary."),
        ("RESULTS", f"After a median follow-up of {rng.randint(28, 96)} months, median PFS was "
                    f"{median_m} months with {drug} and {median_c} months with {control} "
                    f"(hazard ratio {hr:.2f}, 95% CI {lo:.2f}-{hi:.2f}; {_p_value(hr, lo, hi)}). "
                    f"The hazard ratio for death was {os_hr:.2f} (95% CI {os_lo:.2f}-{os_hi:.2f}). "
                    f"Grade 3 or 4 adverse events occurred in {_pct(rng, 20, 60)} of patients "
                    f"receiving maintenance."),
        ("CONCLUSIONS", f"{drug.capitalize()} maintenance improved progression-free survival "
                        f"compared with {control}; the effect on overall survival was "
                        f"{'significant' if os_hi < 1 else 'not significant'}."),
    ]
    rec.nct = f"NCT099{rng.randint(0, 99999):05d}"
    rec.sections[1] = (rec.sections[1][0], rec.sections[1][1] + f" (Registered: {rec.nct}.)")
    rec.publication_types = ["Journal Article", "Randomized Controlled Trial",
                             "Clinical Trial, Phase III", "Multicenter Study"]
    rec.mesh = [
        ("Multiple Myeloma", True, [("drug therapy", True), ("mortality", False)]),
        (mesh_name, False, [("administration & dosage", False), ("therapeutic use", True)]),
        ("Maintenance Chemotherapy", True, [("methods", False)]),
        ("Humans", False, []), ("Progression-Free Survival", False, []),
    ]
    if setting == "post_asct":
        rec.mesh.append(("Transplantation, Autologous", False, []))
    rec.keywords = ["maintenance", drug, "multiple myeloma"]


def _induction(rng: random.Random, rec: DemoRecord, index: int) -> None:
    regimens = ("bortezomib, lenalidomide and dexamethasone", "lenalidomide and dexamethasone",
                "daratumumab plus bortezomib, thalidomide and dexamethasone",
                "carfilzomib, lenalidomide and dexamethasone",
                "bortezomib, cyclophosphamide and dexamethasone")
    a, b = rng.sample(regimens, 2)
    n = rng.randrange(100, 700, 2)
    rec.title = f"{a.capitalize()} versus {b} as induction for newly diagnosed multiple myeloma."
    rec.sections = [
        ("BACKGROUND", "The depth of response after induction predicts outcome in myeloma."),
        ("METHODS", f"We randomly assigned {n} patients to four to six cycles of {a} or {b} "
                    f"before transplantation. The primary endpoint was the rate of very good "
                    f"partial response or better after induction."),
        ("RESULTS", f"The response rate was {_pct(rng, 55, 90)} versus {_pct(rng, 40, 75)}; "
                    f"minimal residual disease negativity was {_pct(rng, 10, 45)} versus "
                    f"{_pct(rng, 5, 30)}."),
        ("CONCLUSIONS", f"Induction with {a} produced deeper responses than {b}."),
    ]
    rec.publication_types = ["Journal Article", "Randomized Controlled Trial"]
    rec.mesh = [("Multiple Myeloma", True, [("drug therapy", True)]),
                ("Induction Chemotherapy", False, []), ("Humans", False, [])]
    rec.keywords = ["induction", "multiple myeloma"]


def _transplant(rng: random.Random, rec: DemoRecord, index: int) -> None:
    comparison = rng.choice((
        "single versus tandem autologous transplantation",
        "early versus delayed autologous stem-cell transplantation",
        "melphalan 200 mg/m2 versus melphalan 140 mg/m2 conditioning",
    ))
    n = rng.randrange(150, 800, 2)
    hr, lo, hi = _hr(rng, 0.65, 1.05, n)
    rec.title = f"{comparison.capitalize()} in multiple myeloma: a randomised trial."
    rec.sections = [
        ("BACKGROUND", "The best use of high-dose therapy in the era of novel agents is unclear."),
        ("METHODS", f"{n} eligible patients were randomised to {comparison}."),
        ("RESULTS", f"Progression-free survival favoured the intensive strategy (hazard ratio "
                    f"{hr:.2f}, 95% CI {lo:.2f}-{hi:.2f}); treatment-related mortality was "
                    f"{_pct(rng, 0.5, 3)}."),
        ("CONCLUSIONS", "Transplant strategy should be individualised."),
    ]
    rec.publication_types = ["Journal Article", "Randomized Controlled Trial"]
    rec.mesh = [("Multiple Myeloma", True, [("therapy", True)]),
                ("Hematopoietic Stem Cell Transplantation", True, []), ("Humans", False, [])]


def _consolidation(rng: random.Random, rec: DemoRecord, index: int) -> None:
    drug = rng.choice(("bortezomib", "carfilzomib", "daratumumab"))
    n = rng.randrange(100, 500, 2)
    rec.title = (f"Two cycles of {drug}-based consolidation after autologous transplantation "
                 f"for multiple myeloma: a randomised comparison.")
    rec.sections = [
        ("BACKGROUND", "Consolidation aims to deepen response after transplantation."),
        ("METHODS", f"{n} patients were randomised to a fixed course of {drug}-based "
                    f"consolidation or none; all patients then followed the same maintenance."),
        ("RESULTS", f"Complete response increased from {_pct(rng, 15, 35)} to "
                    f"{_pct(rng, 30, 55)} after consolidation."),
        ("CONCLUSIONS", "Short consolidation improved the depth of response."),
    ]
    rec.publication_types = ["Journal Article", "Randomized Controlled Trial"]
    rec.mesh = [("Multiple Myeloma", True, [("drug therapy", True)]),
                ("Consolidation Chemotherapy", True, []), ("Humans", False, [])]


def _review(rng: random.Random, rec: DemoRecord, index: int) -> None:
    drug = rng.choice(list(DRUGS))
    kind = rng.choice(("systematic review and meta-analysis", "narrative review",
                       "network meta-analysis"))
    k = rng.randint(4, 16)
    rec.title = f"{drug.capitalize()} maintenance in multiple myeloma: a {kind}."
    rec.sections = [("", f"We summarise {k} randomised trials of {drug} maintenance after "
                         f"induction or transplantation in multiple myeloma. Pooled "
                         f"progression-free survival favoured maintenance; overall survival "
                         f"and second primary malignancies are discussed.")]
    rec.publication_types = (["Journal Article", "Systematic Review", "Meta-Analysis"]
                             if "meta" in kind else ["Journal Article", "Review"])
    rec.mesh = [("Multiple Myeloma", True, [("drug therapy", True)]),
                ("Maintenance Chemotherapy", False, []), ("Humans", False, [])]
    rec.keywords = ["maintenance", "meta-analysis" if "meta" in kind else "review"]


def _observational(rng: random.Random, rec: DemoRecord, index: int) -> None:
    drug = rng.choice(("lenalidomide", "bortezomib", "ixazomib"))
    n = rng.randint(80, 2400)
    rec.title = (f"Real-world outcomes of {drug} maintenance after transplantation: "
                 f"a {rng.choice(('registry', 'retrospective multicentre', 'population-based'))}"
                 f" cohort study.")
    rec.sections = [
        ("OBJECTIVE", f"To describe duration and outcomes of {drug} maintenance in routine care."),
        ("METHODS", f"We identified {n} patients in a registry and analysed time to next "
                    f"treatment."),
        ("RESULTS", f"Median duration of maintenance was {rng.randint(12, 40)} months; "
                    f"{_pct(rng, 10, 40)} stopped early because of toxicity."),
        ("CONCLUSIONS", "Outcomes in routine care resemble those of trials."),
    ]
    rec.publication_types = ["Journal Article", "Observational Study"]
    rec.mesh = [("Multiple Myeloma", True, [("drug therapy", False)]),
                ("Retrospective Studies", False, []), ("Humans", False, [])]


def _case_report(rng: random.Random, rec: DemoRecord, index: int) -> None:
    event = rng.choice(("progressive multifocal leukoencephalopathy", "severe cutaneous reaction",
                        "late-onset neutropenia", "second primary malignancy",
                        "extramedullary relapse"))
    drug = rng.choice(list(DRUGS))
    rec.title = f"{event.capitalize()} during {drug} maintenance for myeloma: a case report."
    rec.sections = [("", f"We describe a {rng.randint(45, 80)}-year-old patient who developed "
                         f"{event} while receiving {drug} maintenance, and review its management.")]
    rec.publication_types = ["Case Reports", "Journal Article"]
    rec.mesh = [("Multiple Myeloma", False, [("drug therapy", False)]), ("Humans", False, [])]


def _editorial(rng: random.Random, rec: DemoRecord, index: int) -> None:
    topic = rng.choice(("how long should maintenance last", "maintenance beyond two years",
                        "minimal residual disease to guide maintenance",
                        "maintenance for high-risk disease"))
    rec.title = f"Myeloma maintenance: {topic}?"
    rec.sections = []
    rec.publication_types = [rng.choice(("Editorial", "Comment", "Letter")), "Journal Article"]
    rec.mesh = [("Multiple Myeloma", True, [("therapy", False)]), ("Humans", False, [])]


def _myeloma_other(rng: random.Random, rec: DemoRecord, index: int) -> None:
    topic = rng.choice(("zoledronic acid and skeletal events", "vertebroplasty for painful lesions",
                        "renal impairment at diagnosis", "frailty scores in older patients"))
    rec.title = f"{topic.capitalize()} in multiple myeloma."
    rec.sections = [("", f"This study examines {topic} in {rng.randint(60, 900)} patients with "
                         f"multiple myeloma treated at several centres.")]
    rec.publication_types = ["Journal Article"]
    rec.mesh = [("Multiple Myeloma", True, [("complications", False)]), ("Humans", False, [])]


def _other_heme(rng: random.Random, rec: DemoRecord, index: int) -> None:
    disease, drug = rng.choice((
        ("follicular lymphoma", "rituximab"), ("mantle-cell lymphoma", "rituximab"),
        ("acute myeloid leukaemia", "oral azacitidine"),
        ("chronic lymphocytic leukaemia", "lenalidomide"),
        ("diffuse large B-cell lymphoma", "lenalidomide"),
        ("Hodgkin lymphoma", "brentuximab vedotin"),
    ))
    n = rng.randrange(150, 1000, 2)
    hr, lo, hi = _hr(rng, 0.45, 0.85, n)
    rec.title = (f"{drug.capitalize()} maintenance versus observation in {disease}: "
                 f"a randomised trial.")
    rec.sections = [
        ("BACKGROUND", f"Relapse remains common in {disease} after first remission."),
        ("METHODS", f"{n} patients in remission were randomised to {drug} maintenance or "
                    f"observation; the primary endpoint was progression-free survival."),
        ("RESULTS", f"Maintenance prolonged progression-free survival (hazard ratio {hr:.2f}, "
                    f"95% CI {lo:.2f}-{hi:.2f})."),
        ("CONCLUSIONS", f"{drug.capitalize()} maintenance benefits patients with {disease}."),
    ]
    rec.publication_types = ["Journal Article", "Randomized Controlled Trial"]
    rec.mesh = [("Maintenance Chemotherapy", True, []), ("Humans", False, [])]
    rec.keywords = ["maintenance", disease]


BUILDERS = {
    "maintenance_rct": _maintenance_rct, "induction_trial": _induction,
    "transplant_trial": _transplant, "consolidation_trial": _consolidation,
    "maintenance_review": _review, "observational": _observational,
    "case_report": _case_report, "editorial": _editorial, "myeloma_other": _myeloma_other,
    "other_heme_maintenance_rct": _other_heme,
}


# --------------------------------------------------------------------------- corpus plan


def _status_for(rng: random.Random, created: date) -> str:
    """Recent records are often not yet indexed (no MeSH, no RCT publication type)."""
    age = (END - created).days
    if age < 60:
        return rng.choice(("Publisher", "In-Process", "In-Process", "MEDLINE"))
    if age < 150:
        return rng.choice(("Publisher", "In-Process", "MEDLINE", "MEDLINE"))
    return "MEDLINE"


def build_corpus(seed: int = 2012) -> list[DemoRecord]:
    """The records, in create-date order, with PMIDs assigned."""
    rng = random.Random(seed)
    span = (END - START).days
    records: list[DemoRecord] = []
    for category, (count, eligible) in MIX.items():
        if category in ("erratum", "retraction_notice"):
            continue
        for index in range(count):
            created = START + timedelta(days=rng.randrange(span - 3))
            rec = DemoRecord(category=category, eligible=eligible, create=created)
            BUILDERS[category](rng, rec, index)
            records.append(rec)
    records.sort(key=lambda r: (r.create, r.category, r.title))
    for offset, rec in enumerate(records):
        rec.pmid = FIRST_PMID + offset
        rec.status = _status_for(rng, rec.create)
    rcts = [r for r in records if r.category == "maintenance_rct"]
    _add_links(rng, records, rcts)
    late = [_erratum(rcts[3], END - timedelta(days=15)),
            _erratum(rcts[10], END - timedelta(days=9)),
            _retraction(rcts[1], END - timedelta(days=6))]
    for offset, rec in enumerate(late, start=len(records)):
        rec.pmid = FIRST_PMID + offset
        rec.status = "MEDLINE" if rec.category == "erratum" else "In-Process"
    return records + late


def _add_links(rng: random.Random, records: list[DemoRecord], rcts: list[DemoRecord]) -> None:
    """Editorials comment on earlier synthetic RCTs; two comment on real seed trials."""
    editorials = [r for r in records if r.category == "editorial"]
    for number, editorial in enumerate(editorials):
        if number < 2:
            target = SEED_TRIAL_PMIDS[number]
            editorial.links.append(("CommentOn", target, "Seed trial report."))
            continue
        earlier = [r for r in rcts if r.create < editorial.create]
        if earlier:
            target_rec = rng.choice(earlier)
            editorial.links.append(("CommentOn", target_rec.pmid,
                                    f"{JOURNAL_ABBREV}. {target_rec.create.year}."))
            target_rec.links.append(("CommentIn", editorial.pmid,
                                     f"{JOURNAL_ABBREV}. {editorial.create.year}."))


def _erratum(target: DemoRecord, created: date) -> DemoRecord:
    rec = DemoRecord(category="erratum", eligible=False, create=created)
    rec.title = f"Erratum: {target.title}"
    rec.publication_types = ["Published Erratum"]
    rec.links = [("ErratumFor", target.pmid, f"{JOURNAL_ABBREV}. {target.create.year}.")]
    return rec


def _retraction(target: DemoRecord, created: date) -> DemoRecord:
    rec = DemoRecord(category="retraction_notice", eligible=False, create=created)
    rec.title = f"Retraction notice: {target.title}"
    rec.sections = [("", "This article has been retracted at the request of the authors "
                         "because the data could not be verified (synthetic demo notice).")]
    rec.publication_types = ["Journal Article", "Retraction Notice"]
    rec.links = [("RetractionOf", target.pmid, f"{JOURNAL_ABBREV}. {target.create.year}.")]
    return rec


# --------------------------------------------------------------------------- XML


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str):  # type: ignore[no-untyped-def]
    elem = etree.SubElement(parent, tag, attrib)
    if text is not None:
        elem.text = text
    return elem


def _date(parent: etree._Element, tag: str, day: date, *, pad: bool, **attrib: str) -> None:
    elem = _sub(parent, tag, **attrib)
    _sub(elem, "Year", str(day.year))
    _sub(elem, "Month", f"{day.month:02d}" if pad else str(day.month))
    _sub(elem, "Day", f"{day.day:02d}" if pad else str(day.day))
    if not pad:
        _sub(elem, "Hour", "6")
        _sub(elem, "Minute", "0")


def _authors(rng: random.Random, parent: etree._Element, pmid: int) -> None:
    author_list = _sub(parent, "AuthorList", CompleteYN="Y")
    for position in range(rng.randint(2, 7)):
        author = _sub(author_list, "Author", ValidYN="Y")
        _sub(author, "LastName", SURNAMES[(pmid * 7 + position * 11) % len(SURNAMES)])
        initials = "".join(rng.sample(INITIALS, rng.choice((1, 2))))
        _sub(author, "ForeName", " ".join(initials))
        _sub(author, "Initials", initials)
    if pmid % 5 == 0:
        author = _sub(author_list, "Author", ValidYN="Y")
        _sub(author, "CollectiveName", COLLECTIVE)


def _article_xml(rng: random.Random, rec: DemoRecord) -> etree._Element:
    indexed = rec.status == "MEDLINE"
    article = etree.Element("PubmedArticle")
    cit = _sub(article, "MedlineCitation", Status=rec.status, Owner="NLM",
               IndexingMethod="Automated" if indexed else "Curated")
    _sub(cit, "PMID", str(rec.pmid), Version="1")
    if indexed:
        _date(cit, "DateCompleted", rec.create + timedelta(days=40), pad=True)
    art = _sub(cit, "Article", PubModel="Print-Electronic")
    journal = _sub(art, "Journal")
    _sub(journal, "ISSN", "0000-0000", IssnType="Electronic")
    issue = _sub(journal, "JournalIssue", CitedMedium="Internet")
    _sub(issue, "Volume", str(rec.create.year - 2020))
    _sub(issue, "Issue", str(rec.create.month))
    pub = _sub(issue, "PubDate")
    if rec.pmid % 17 == 0:  # a few bimonthly issues, as MedlineDate strings
        month = rec.create.month
        _sub(pub, "MedlineDate",
             f"{rec.create.year} {MONTHS[month - 1]}-{MONTHS[min(month, 11)]}")
    else:
        _sub(pub, "Year", str(rec.create.year))
        _sub(pub, "Month", MONTHS[rec.create.month - 1])
    _sub(journal, "Title", JOURNAL)
    _sub(journal, "ISOAbbreviation", JOURNAL_ABBREV)
    _sub(art, "ArticleTitle", rec.title)
    if not rec.pmid % 2:
        # Printed pages, the end page abbreviated as PubMed prints it ("1203-11"); the odd
        # PMIDs are numbered articles (their pii below, as e-only journals do).
        first = str(100 + rec.pmid % 1900)
        last = str(int(first) + 3 + rec.pmid % 9)
        # PubMed drops the leading digits the end page shares with the start page.
        common = 0
        while len(first) == len(last) and common < len(first) and first[common] == last[common]:
            common += 1
        _sub(_sub(art, "Pagination"), "MedlinePgn", f"{first}-{last[common:]}")
    doi = f"{DOI_PREFIX}{rec.pmid}"
    if rec.pmid % 2:  # real records often list a pii before the doi
        _sub(art, "ELocationID", f"e{rec.pmid % 100000}", EIdType="pii", ValidYN="Y")
    _sub(art, "ELocationID", doi, EIdType="doi", ValidYN="Y")
    abstract = _sub(art, "Abstract")
    for label, text in rec.sections:
        if label:
            _sub(abstract, "AbstractText", text, Label=label, NlmCategory=label)
        else:
            _sub(abstract, "AbstractText", text)
    _sub(abstract, "CopyrightInformation", SYNTHETIC_NOTE)
    _authors(rng, art, rec.pmid)
    _sub(art, "Language", "eng")
    if rec.nct and indexed:
        bank = _sub(_sub(art, "DataBankList", CompleteYN="Y"), "DataBank")
        _sub(bank, "DataBankName", "ClinicalTrials.gov")
        _sub(_sub(bank, "AccessionNumberList"), "AccessionNumber", rec.nct)
    types = _sub(art, "PublicationTypeList")
    # Unindexed records carry only what the publisher sent: no trial-design publication types.
    shown = rec.publication_types if indexed or rec.category in (
        "erratum", "retraction_notice") else ["Journal Article"]
    for publication_type in shown:
        _sub(types, "PublicationType", publication_type)
    info = _sub(cit, "MedlineJournalInfo")
    _sub(info, "Country", "England")
    _sub(info, "MedlineTA", JOURNAL_ABBREV)
    _sub(info, "NlmUniqueID", "900000000")
    if rec.links:
        links = _sub(cit, "CommentsCorrectionsList")
        for ref_type, pmid, source in rec.links:
            link = _sub(links, "CommentsCorrections", RefType=ref_type)
            _sub(link, "RefSource", source)
            _sub(link, "PMID", str(pmid), Version="1")
    if indexed and rec.mesh:
        mesh_list = _sub(cit, "MeshHeadingList")
        for descriptor, major, qualifiers in rec.mesh:
            heading = _sub(mesh_list, "MeshHeading")
            _sub(heading, "DescriptorName", descriptor, MajorTopicYN="Y" if major else "N")
            for name, q_major in qualifiers:
                _sub(heading, "QualifierName", name, MajorTopicYN="Y" if q_major else "N")
    keywords = _sub(cit, "KeywordList", Owner="NOTNLM")
    for keyword in [*rec.keywords, SYNTHETIC_KEYWORD]:
        _sub(keywords, "Keyword", keyword, MajorTopicYN="N")
    data = _sub(article, "PubmedData")
    history = _sub(data, "History")
    _date(history, "PubMedPubDate", rec.create - timedelta(days=70), pad=True, PubStatus="received")
    _date(history, "PubMedPubDate", rec.create - timedelta(days=12), pad=True, PubStatus="accepted")
    _date(history, "PubMedPubDate", rec.create, pad=False, PubStatus="entrez")
    _date(history, "PubMedPubDate", rec.create, pad=False, PubStatus="pubmed")
    if indexed:
        _date(history, "PubMedPubDate", rec.create + timedelta(days=40), pad=False,
              PubStatus="medline")
    _sub(data, "PublicationStatus", "ppublish" if indexed else "aheadofprint")
    ids = _sub(data, "ArticleIdList")
    _sub(ids, "ArticleId", str(rec.pmid), IdType="pubmed")
    _sub(ids, "ArticleId", doi, IdType="doi")
    return article


def _document(rng: random.Random, records: list[DemoRecord]) -> bytes:
    root = etree.Element("PubmedArticleSet")
    for rec in records:
        root.append(_article_xml(rng, rec))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True,
                          doctype=DOCTYPE)


def _labels_csv(records: list[DemoRecord]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pmid", "category", "eligible", "drug", "setting"])
    for rec in sorted(records, key=lambda r: r.pmid):
        writer.writerow([rec.pmid, rec.category, int(rec.eligible), rec.drug, rec.setting])
    return out.getvalue().encode("utf-8")


def write_demo_corpus(dest: Path, *, seed: int = 2012) -> list[Path]:
    """Write the corpus (one XML file per create-date month) and ``labels.csv`` into ``dest``.

    Returns the XML files in month order. Deterministic: the same seed gives the same bytes.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    records = build_corpus(seed)
    rng = random.Random(seed + 1)  # authors: independent of the record plan
    by_month: dict[str, list[DemoRecord]] = {}
    for rec in sorted(records, key=lambda r: r.pmid):
        by_month.setdefault(f"{rec.create:%Y-%m}", []).append(rec)
    paths = []
    for month in sorted(by_month):
        path = dest / f"pubmed-demo-{month}.xml"
        path.write_bytes(_document(rng, by_month[month]))
        paths.append(path)
    (dest / LABELS_FILE).write_bytes(_labels_csv(records))
    return paths


def read_labels(dest: Path) -> dict[int, tuple[str, bool]]:
    """``labels.csv`` of a written corpus: pmid -> (category, eligible)."""
    with (Path(dest) / LABELS_FILE).open(encoding="utf-8", newline="") as handle:
        return {int(row["pmid"]): (row["category"], row["eligible"] == "1")
                for row in csv.DictReader(handle)}
