"""Which trials of the review a PubMed record may report.

A living review is updated mostly by *new reports of trials it already holds*: a longer
follow-up (a new data cut), the overall-survival analysis, a conference abstract. Those
records must reach the curator who extracts the new hazard ratio, whatever the classifier
thinks of them, and the curator needs to know which trial they belong to. This module finds
them from what the record itself says, with the reason stated, and never links anything: a
curator confirms on the record page.

Signals, strongest first (``TrialMatch.strong``):

* **registration** — the record lists one of the trial's registry ids (PubMed's DataBank list,
  ``Record.nct_ids``) or names it in its title or abstract;
* **linked record** — PubMed links the record to a report of the trial as its update,
  republication or reprint (``UpdateOf``…, or the report's ``UpdateIn`` pointing here);
* **name in the title** — the trial's name (or one part of a name such as
  "HOVON-65/GMMG-HD4") in the title;
* weak: the name in the abstract only (reviews and other trials' papers cite trials by name),
  or a comment, erratum or other notice on one of its reports.

Names are compared on their letter and digit runs ("CALGB 100104", "CALGB-100104" and
"CALGB100104" are one name; "MM-015" is not "MM-15"), a roman numeral from II to XXXIX being
its arabic value ("Myeloma XI" is "Myeloma 11"; a lone "I", "V" or "X" stays a letter). A name
part of one word without a digit as written ("MAIA", "XI") would match ordinary prose, so it
is not used; such a trial is found by its registry id. Records already linked to a trial are
not suggested for it again.

It lives in ``store`` because the digest (``reports``, which may import only ``store``) lists
new strong matches, and the web app shows all of them.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.ids import parse_id
from store.models import Record, Trial, TrialReport

#: A registry id as a curator types it (ClinicalTrials.gov, EudraCT, ISRCTN, the Australian/NZ
#: registry: the ones myeloma trials use).
REGISTRY_ID = re.compile(
    r"^(NCT\d{8}|\d{4}-\d{6}-\d{2}|ISRCTN\d{8}|ACTRN\d{14}|EUCTR\d{4}-\d{6}-\d{2}(-[A-Z]{2})?)$"
)
# The same ids inside running text. EudraCT numbers have no prefix of their own, but
# nnnn-nnnnnn-nn is specific enough (dates and page ranges do not take that shape).
# Matched on the upper-cased text: IGNORECASE makes the scan ~1.7x slower, and the digest
# scans every abstract.
_REGISTRY_IN_TEXT = re.compile(
    r"(?<![A-Z0-9])(NCT\d{8}|ISRCTN\d{8}|ACTRN\d{14}|(?:EUCTR)?\d{4}-\d{6}-\d{2})(?![0-9])")

#: PubMed link types saying the record *is* (a version of) the linked report.
SAME_WORK_LINKS = {"UpdateOf": "an update of", "RepublishedFrom": "a republication of",
                   "ReprintOf": "a reprint of",
                   "CorrectedandRepublishedFrom": "a corrected republication of"}
#: The same links seen from the report's side (they point at the new record).
_SAME_WORK_BACKLINKS = {"UpdateIn": "an update of", "RepublishedIn": "a republication of",
                        "ReprintIn": "a reprint of",
                        "CorrectedandRepublishedIn": "a corrected republication of"}
#: Other links from the record to a report: about the trial, not a report of it.
_NOTICE_WORDS = {"CommentOn": "a comment on", "ErratumFor": "an erratum for",
                 "RetractionOf": "a retraction of",
                 "PartialRetractionOf": "a partial retraction of",
                 "ExpressionOfConcernFor": "an expression of concern about"}

_TOKEN = re.compile(r"[a-z]+|\d+")


def _roman(n: int) -> str:
    return "x" * (n // 10) + ("", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix")[n % 10]


# Roman numerals are their arabic value in names and text alike ("Myeloma IX" is "Myeloma 9"),
# on both sides the same way, so a name matches whichever way a paper writes it. Only a whole
# letter run of two letters or more that is a canonical numeral from 2 to 39 counts ("ii",
# "xiv" yes; "iiii", "ic", "ixazomib" no): a lone "I", "V" or "X" is a pronoun, a letter or a
# grade as often as a number (so "MM-V" is not "MM-5"), and the letters L, C, D and M would
# turn words into numbers ("mix", "civil", "did") for trial numbers that papers do not write
# in roman.
# Converting everywhere, not only next to another name token, is the simpler rule and is
# safe: a name still matches only as its whole token sequence, so "phase II", "stage IV" or
# "IV bortezomib" become "phase 2", "stage 4", "4 bortezomib" and can only match a trial whose
# name is that sequence ("IFM II" is "ifm 2", never "IFM 2009"). Digit runs are compared as
# written, so no numeral equals "015" or "02" ("MM-XV" is "MM-15", not "MM-015"). What the
# rule adds is the other spelling: a trial named "Myeloma XI" is also found by "myeloma: 11"
# in prose, as a trial named "Myeloma 11" always was.
# One substitution over the lower-cased text, before the token scan: the pattern starts with a
# character class (the regex engine's fast scan) and the callback runs only for whole runs of
# 2-7 of the letters i, v, x; a run that is no canonical numeral is left as it is. The number
# is padded with spaces so that the tokens stay where they were: "ix2" is "9 2", not "92".
_ROMAN_VALUES = {_roman(n): f" {n} " for n in range(2, 40) if len(_roman(n)) > 1}
_ROMAN_RUN = re.compile(r"[ivx](?<![a-z].)[ivx]{1,6}(?![a-z])")


def _roman_to_arabic(match: re.Match[str]) -> str:
    run = match.group()
    return _ROMAN_VALUES.get(run, run)


# A number that counts years, months, weeks or days ("11-year follow-up", "at 5 years") is a
# duration, never a trial's number: without this, "Myeloma XI" (or "Myeloma 11") would be a
# strong match for every title "… myeloma: 11-year follow-up". Dropped before the token scan.
_DURATION = re.compile(r"\d+(?=[\s-]*(?:year|month|week|day)s?\b)")


def _words(text: str) -> list[str]:
    """``text``'s lower-case letter and digit runs (in Unicode's compatibility form, NFKC:
    full-width "ＸＩ" is "XI"), roman numerals as arabic, durations left out."""
    text = _ROMAN_RUN.sub(_roman_to_arabic, unicodedata.normalize("NFKC", text).lower())
    return _TOKEN.findall(_DURATION.sub(" ", text))


def registry_key(value: str) -> str:
    """One spelling per registration: upper case, and an EU CTR id ("EUCTR2004-001234-56-GB")
    reduced to its EudraCT number, which is how papers and curators usually write it."""
    text = value.strip().upper()
    if text.startswith("EUCTR"):
        text = text[5:]
        if re.match(r"^\d{4}-\d{6}-\d{2}-[A-Z]{2}$", text):
            text = text[:-3]
    return text


def registry_ids_in_text(text: str | None) -> list[str]:
    """Registry ids written in ``text``, each once, as ``registry_key`` spells them."""
    found = (registry_key(m.group(1))
             for m in _REGISTRY_IN_TEXT.finditer((text or "").upper()))
    return list(dict.fromkeys(found))


def name_tokens(text: str | None) -> str:
    """``text`` as its lower-case letter and digit runs joined by single spaces, a roman
    numeral from II to XXXIX as its arabic value: the form in which trial names are compared
    ("MY.10" → "my 10", "GBRAM0001" → "gbram 0001", "Myeloma XI" → "myeloma 11")."""
    return " ".join(_words(text or ""))


#: A letter run (any script) or a digit run, for ``name_key``.
_KEY_TOKEN = re.compile(r"[^\W\d_]+|\d+")


def name_key(name: str | None) -> str:
    """The form in which two trial names are the same trial: ``name_tokens``' letter and digit
    runs and roman numerals, but letters of every script kept (``name_tokens`` keeps a-z only:
    "Étude 1" and "Ütude 1" are both "tude 1" there), in NFKC form and case-folded ("Myeloma XI",
    "MYELOMA  XI", "Myeloma-XI", "ＭＹＥＬＯＭＡ ＸＩ" and "Myeloma 11" are "myeloma 11"). Durations
    are kept: a name is not prose."""
    text = _ROMAN_RUN.sub(_roman_to_arabic,
                          unicodedata.normalize("NFKC", name or "").casefold())
    return " ".join(_KEY_TOKEN.findall(text))


def name_parts(name: str) -> list[str]:
    """The parts of a trial name that are specific enough to look for in text, as
    ``name_tokens``: the whole name, and each side of a "/" ("HOVON-65/GMMG-HD4"). A part of
    one word without a digit as written is left out: it would match ordinary prose (a lone
    "XI" would match every "11" and "xi")."""
    candidates = [name, *name.split("/")] if "/" in name else [name]
    parts = []
    for candidate in candidates:
        tokens = name_tokens(candidate)
        words = tokens.split()
        if len(words) >= 2 or (words and re.search(r"\d", candidate)):
            parts.append(tokens)
    return list(dict.fromkeys(parts))


def _pmid(value: Any) -> int | None:
    """A link's PMID as stored (an int; text from older rows), or None for anything else:
    a malformed link must not stop a page or the digest."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_id(str(value or ""))


@dataclass(frozen=True)
class TrialMatch:
    """One trial a record may report, and why."""

    trial_id: int
    trial_name: str
    reasons: tuple[str, ...]
    strong: bool

    def as_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "trial": self.trial_name,
                "reasons": list(self.reasons), "strong": self.strong}


class TrialNames(NamedTuple):
    """What a :class:`TrialIndex` reads of a trial."""

    id: int | None
    name: str
    registry_ids: list[str]


@dataclass
class _Found:
    strong: list[str] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)


class TrialIndex:
    """The trials of the review prepared for matching: their names, registry ids and reports.
    Build it once (``load``) and match many records: the queue page matches 50, the digest
    every live record."""

    def __init__(self, trials: Sequence[Trial | TrialNames], reports: Sequence[tuple[int, int]],
                 backlinks: Sequence[tuple[int, dict[str, Any]]] = ()) -> None:
        """``trials``: the trials (or just their names and registrations); ``reports``: (trial
        id, PMID) of every report with a PMID; ``backlinks``: (PMID of a report, one of its
        ``comments_corrections`` links)."""
        self.names = {int(t.id): t.name for t in trials if t.id is not None}
        self.by_registry: dict[str, set[int]] = defaultdict(set)
        for t in trials:
            for rid in t.registry_ids or []:
                self.by_registry[registry_key(rid)].add(int(t.id or 0))
        self.linked: dict[int, set[int]] = defaultdict(set)  # PMID -> trials it reports
        for trial_id, pmid in reports:
            self.linked[int(pmid)].add(int(trial_id))
        # record PMID -> (trial, words): reports whose own links point at a newer record
        self.backlinked: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for report_pmid, link in backlinks:
            words = _SAME_WORK_BACKLINKS.get(str(link.get("ref_type")))
            target = _pmid(link.get("pmid"))
            if words and target:
                for trial_id in self.linked.get(int(report_pmid), ()):
                    self.backlinked[target].append(
                        (trial_id, f"{words} PMID {report_pmid}, a report of the trial "
                                   "(PubMed's link from that report)"))
        parts: dict[str, set[int]] = defaultdict(set)
        for trial_id, name in self.names.items():
            for part in name_parts(name):
                parts[part].add(trial_id)
        # Looked up by first word, longest first, so one pass over a text's words finds every
        # trial's names (a dictionary lookup per word, not a regular expression per name),
        # and "mrc myeloma 9" wins over a trial called "myeloma 9" at the same place.
        self._by_first: dict[str, list[tuple[tuple[str, ...], set[int]]]] = defaultdict(list)
        for part, ids in sorted(parts.items(), key=lambda item: -len(item[0].split())):
            sequence = tuple(part.split())
            self._by_first[sequence[0]].append((sequence, ids))
        # Everything a match depends on, as a digest: an index built from the same trials,
        # reports and links matches every record the same way (MatchMemo).
        depends_on = (sorted(self.names.items()),
                      sorted((rid, sorted(ids)) for rid, ids in self.by_registry.items()),
                      sorted((pmid, sorted(ids)) for pmid, ids in self.linked.items()),
                      sorted((pmid, sorted(found)) for pmid, found in self.backlinked.items()))
        self.signature = hashlib.blake2b(repr(depends_on).encode("utf-8", "surrogatepass"),
                                         digest_size=16).digest()

    @classmethod
    def load(cls, session: Session) -> TrialIndex:
        # The three columns read, not whole trials: this runs on every queue page and API call.
        trials = [TrialNames(*row) for row in session.exec(
            select(Trial.id, Trial.name, Trial.registry_ids).order_by(col(Trial.id))).all()]
        reports = [(int(t), int(p)) for t, p in session.exec(
            select(TrialReport.trial_id, TrialReport.pmid)
            .where(col(TrialReport.pmid).is_not(None))).all() if p is not None]
        pmids = sorted({p for _, p in reports})
        backlinks: list[tuple[int, dict[str, Any]]] = []
        if pmids:
            for pmid, links in session.exec(select(Record.pmid, Record.comments_corrections)
                                            .where(col(Record.pmid).in_(pmids))).all():
                backlinks.extend((int(pmid), link) for link in links or []
                                 if isinstance(link, dict))
        return cls(trials, reports, backlinks)

    def _names_in(self, text: str | None) -> set[int]:
        if not self._by_first or not text:
            return set()
        words = _words(text)  # name_tokens, as a list
        by_first = self._by_first
        found: set[int] = set()
        # Only the places where some name starts are read (an abstract has a few among its
        # hundreds of words); the comprehension runs in C, the loop over every word did not.
        after = 0  # the words of a name found are not read again
        for i in [i for i, word in enumerate(words) if word in by_first]:
            if i < after:
                continue
            for part, ids in by_first[words[i]]:
                if tuple(words[i:i + len(part)]) == part:
                    found |= ids
                    after = i + len(part)
                    break
        return found

    def match(self, *, pmid: int, title: str | None, abstract: str | None,
              nct_ids: Iterable[str] | None = (),
              comments_corrections: Iterable[dict[str, Any]] | None = (),
              strong_only: bool = False) -> list[TrialMatch]:
        """The trials this record may report (strong ones first, then by name), leaving out
        the trials it is already a report of. ``strong_only`` skips the weak signals (the
        abstract's names are the costly part of reading a record)."""
        found: dict[int, _Found] = defaultdict(_Found)
        listed = {registry_key(r) for r in nct_ids or []}
        in_title = set(registry_ids_in_text(title))
        for rid in sorted(listed | in_title | set(registry_ids_in_text(abstract))):
            where = ("listed in the record" if rid in listed
                     else "named in the title" if rid in in_title else "named in the abstract")
            for trial_id in self.by_registry.get(rid, ()):
                found[trial_id].strong.append(f"registration {rid} {where}")
        for link in comments_corrections or []:
            ref, target = str(link.get("ref_type")), _pmid(link.get("pmid"))
            if not target:
                continue
            for trial_id in self.linked.get(target, ()):
                if ref in SAME_WORK_LINKS:
                    found[trial_id].strong.append(
                        f"{SAME_WORK_LINKS[ref]} PMID {target}, a report of the trial")
                elif ref in _NOTICE_WORDS and not strong_only:
                    found[trial_id].weak.append(
                        f"{_NOTICE_WORDS[ref]} PMID {target}, a report of the trial")
        for trial_id, words in self.backlinked.get(int(pmid), ()):
            found[trial_id].strong.append(words)
        named_in_title = self._names_in(title)
        for trial_id in named_in_title:
            found[trial_id].strong.append("trial name in the title")
        if not strong_only:
            for trial_id in self._names_in(abstract) - named_in_title:
                found[trial_id].weak.append("trial name in the abstract")
        already = self.linked.get(int(pmid), set())
        matches = [TrialMatch(trial_id=trial_id, trial_name=self.names[trial_id],
                              reasons=tuple(dict.fromkeys(f.strong + f.weak)),
                              strong=bool(f.strong))
                   for trial_id, f in found.items()
                   if trial_id not in already and trial_id in self.names]
        return sorted(matches, key=lambda m: (not m.strong, m.trial_name.lower()))

    def match_record(self, record: Record) -> list[TrialMatch]:
        return self.match(pmid=record.pmid, title=record.title, abstract=record.abstract,
                          nct_ids=record.nct_ids,
                          comments_corrections=record.comments_corrections)


class MatchMemo:
    """The trial matches of records already matched, kept between requests: the queue page
    and ``GET /api/records`` show the same records again and again, and reading a record's
    abstract for trial names and registrations is most of their cost.

    A remembered answer is used only for a record whose PMID, title, abstract, registrations
    and PubMed links are all as they were (a digest of them is the key, ``_record_key``) and
    for the same trials, reports and links (``TrialIndex.signature``): a new trial, report or
    link empties the memo, a changed record is matched again. At most ``size`` records are
    kept (the default: some 40 queue pages, about 0.3 MB, some 150 bytes a record, measured
    with tracemalloc on 2,048 real PubMed records of ~1,400 characters of title and abstract;
    keying on the texts themselves held 5 MB), the least recently shown dropped first.
    ``hits`` and ``misses`` count lookups (for tests)."""

    def __init__(self, size: int = 2048) -> None:
        self.size = max(1, size)
        self.hits = self.misses = 0
        self._signature = b""
        self._found: OrderedDict[bytes, tuple[TrialMatch, ...]] = OrderedDict()
        # Request handlers run in a thread pool.
        self._lock = threading.Lock()

    def matches(self, index: TrialIndex, record: Record) -> list[TrialMatch]:
        """``index.match_record(record)``, remembered."""
        key = _record_key(record)
        with self._lock:
            if self._signature != index.signature:
                self._found.clear()
                self._signature = index.signature
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                self.hits += 1
                return list(found)
            self.misses += 1
        computed = index.match_record(record)
        with self._lock:
            if self._signature == index.signature:
                self._found[key] = tuple(computed)
                while len(self._found) > self.size:
                    self._found.popitem(last=False)
        return computed


def _record_key(record: Record) -> bytes:
    """What ``TrialIndex.match_record`` reads of a record, as a 16-byte digest: the memo
    outlives the request, and keeping the texts themselves kept every abstract alive (about
    2.4 kB a record). Each field goes in with its length (and None apart from ""), so two
    different records cannot give the same bytes by where one field ends and the next
    begins; two of them sharing a digest by chance (2**-128 a pair) is not a concern."""
    digest = hashlib.blake2b(digest_size=16)
    nct_ids = record.nct_ids or ()
    for text in (str(record.pmid), record.title, record.abstract, str(len(nct_ids)),
                 *map(str, nct_ids), repr(record.comments_corrections)):
        if text is None:
            digest.update(b"\x00")
            continue
        data = text.encode("utf-8", "surrogatepass")
        digest.update(b"\x01" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


def matches_for_records(session: Session, records: Iterable[Record],
                        index: TrialIndex | None = None,
                        memo: MatchMemo | None = None) -> dict[int, list[TrialMatch]]:
    """PMID -> its trial matches, for the records that have any (one index for all; with a
    ``memo``, records matched before against the same trials are not read again)."""
    index = index or TrialIndex.load(session)
    out: dict[int, list[TrialMatch]] = {}
    for record in records:
        matches = memo.matches(index, record) if memo is not None else index.match_record(record)
        if matches:
            out[record.pmid] = matches
    return out


def unlinked_strong_matches(session: Session) -> list[tuple[Record, list[TrialMatch]]]:
    """Every live record with a strong match to a trial it is not yet linked to, newest first.
    Records a curator excluded are left out: somebody has looked at them already."""
    index = TrialIndex.load(session)
    if not index.names:
        return []
    # Only the columns matched on: the digest reads every live record, and few match.
    # (SQLAlchemy's select: SQLModel's is typed for at most four columns.)
    rows = session.execute(sa_select(
        col(Record.pmid), col(Record.title), col(Record.abstract), col(Record.nct_ids),
        col(Record.comments_corrections)).where(
        col(Record.deleted).is_(False),
        (col(Record.decision).is_(None)) | (col(Record.decision) != "exclude"))).all()
    strong: dict[int, list[TrialMatch]] = {}
    for pmid, title, abstract, nct_ids, links in rows:
        found = index.match(pmid=pmid, title=title, abstract=abstract, nct_ids=nct_ids,
                            comments_corrections=links, strong_only=True)
        if found:
            strong[int(pmid)] = found
    if not strong:
        return []
    records = session.exec(select(Record).where(col(Record.pmid).in_(list(strong)))
                           .order_by(col(Record.first_seen_at).desc(),
                                     col(Record.pmid).desc())).all()
    return [(r, strong[r.pmid]) for r in records]
