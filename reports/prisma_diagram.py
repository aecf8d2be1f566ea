"""The PRISMA 2020 flow diagram (Page et al., BMJ 2021;372:n71: the template for new reviews
with searches of databases, and of databases and other sources when curators added records by
PMID) as standalone SVG, drawn from :func:`reports.prisma.prisma_counts`.

The other-methods column (records a curator first added by PMID) is drawn to the right of the
databases column only when it has records: mmlr screens them by title and abstract in the
same queue, so it has the databases column's boxes, row for row, and an arrow from its last
box joins the included box both columns share. Without it the drawing is the databases-only
template, as before the split.

Plain string building, no plotting library: boxes, arrows and the template's phase bars
(Identification, Screening, Included). Every text goes through
:func:`reports.svg_text.xml_text`, so the result is well-formed XML whatever a title or note
contains, and it can be served as
``image/svg+xml`` or written inline into a page (no XML declaration, no scripts, no styles:
presentation attributes only, which the app's content security policy allows).

What each box counts is in docs/curation.md ("The PRISMA flow"). Records are identified once
per PMID (a revised version is a note in the box, never a duplicate); the records left
unscreened when the stopping rule let screening stop are the template's "marked as ineligible
by automation tools", removed before screening; the template's "Records excluded" are the
curators' alone. The records included after title/abstract screening are the template's
"reports sought for retrieval"; the full-text stage (``store.fulltext``) follows them:
reports not retrieved and those awaiting assessment branch off, then the reports assessed
for eligibility with the reports excluded by reason beside them (reasons with no report are
left out of the box, the CSV keeps them). Counts stored before the full-text stage existed
have none of its stages and are drawn as before, ending with the records included. The
last box follows the template for updated reviews when the counts split the previous version
from the new studies (new studies and their reports, the previous version's, the total).
Long labels are wrapped with an estimated character width (a sans-serif at ``FONT_SIZE``
rarely averages more than 0.6 em per character), so no text runs out of its box.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reports.prisma import (
    ASSESSED_STAGE,
    AUTOMATION_STAGE,
    AWAITING_STAGE,
    BELOW_THRESHOLD_STAGE,
    CONFLICT_STAGE,
    CURATORS_STAGE,
    DELETED_STAGE,
    DUPLICATES_STAGE,
    ELIGIBLE_STAGE,
    ELIGIBLE_UNLINKED_STAGE,
    EXCLUDED_REASON_PREFIX,
    FULLTEXT_AWAITING_STAGE,
    FULLTEXT_EXCLUDED_STAGE,
    IDENTIFIED_STAGE,
    INCLUDED_STAGE,
    NEW_REPORTS_OF_PREVIOUS_STAGE,
    NEW_REPORTS_STAGE,
    NEW_TRIALS_STAGE,
    NOT_RETRIEVED_STAGE,
    OTHER_IDENTIFIED_STAGE,
    PREVIOUS_REPORTS_STAGE,
    PREVIOUS_TRIALS_STAGE,
    REPORTS_STAGE,
    REVISED_STAGE,
    SCREENED_STAGE,
    STOPPING_RULE,
    TRIALS_STAGE,
    PrismaSince,
    other_stage,
)
from reports.svg_text import BOLD_RATIO, EM_RATIO, FONT_FAMILY, xml_text
from reports.words import noun, plural

log = logging.getLogger(__name__)

DEFAULT_TITLE = "PRISMA 2020 flow diagram"
HEADER = "Identification of studies via databases (PubMed)"
OTHER_HEADER = "Identification of studies via other methods (records added by PMID)"
#: Stages every diagram needs (the conflict stage is drawn only when present: dual screening).
REQUIRED_STAGES = (IDENTIFIED_STAGE, DUPLICATES_STAGE, DELETED_STAGE, SCREENED_STAGE,
                   AUTOMATION_STAGE, CURATORS_STAGE, AWAITING_STAGE, INCLUDED_STAGE,
                   TRIALS_STAGE, REPORTS_STAGE)

#: The stages of the included box, which both columns join in.
_JOINT_STAGES = (TRIALS_STAGE, REPORTS_STAGE)

FONT_SIZE = 13
NOTE_SIZE = 11
TITLE_SIZE = 16
LINE = 17  # baseline to baseline at FONT_SIZE
NOTE_LINE = 15
TITLE_LINE = 21
PAD = 8  # inside a box
MARGIN = 12
PHASE_W = 28
LEFT_X = MARGIN + PHASE_W + 14
LEFT_W = 300
COL_GAP = 56
RIGHT_X = LEFT_X + LEFT_W + COL_GAP
RIGHT_W = 330
WIDTH = RIGHT_X + RIGHT_W + MARGIN
ROW_GAP = 26
#: The other-methods column (drawn only with records added by PMID): its two box widths, and
#: the gap between it and the databases column.
OTHER_W = 250
OTHER_GAP = 40
INK = "#1d2327"
BOX_STROKE = "#3b4752"
HEADER_FILL = "#f6d68b"
PHASE_FILL = "#bcd4ec"
NOTE_INK = "#4a5560"


@dataclass(frozen=True)
class _Text:
    text: str
    bold: bool = False


@dataclass
class _Box:
    name: str  # the class that names the box (tests and styles find it by this)
    texts: list[_Text]
    lines: list[_Text] = field(default_factory=list)

    def wrap(self, width: float) -> None:
        self.lines = [_Text(line, t.bold) for t in self.texts
                      for line in wrap_text(t.text, width, FONT_SIZE, bold=t.bold)]

    @property
    def height(self) -> float:
        return 2 * PAD + len(self.lines) * LINE


@dataclass
class _Row:
    phase: str
    left: _Box | None
    right: _Box | None
    height: float = 0.0
    y: float = 0.0
    # The other-methods column's boxes of this row (none without records added by PMID).
    other_left: _Box | None = None
    other_right: _Box | None = None

    def boxes(self, layout: _Layout) -> list[tuple[_Box, float, float]]:
        """(box, x, width) of every box of the row."""
        placed = [(self.left, LEFT_X, LEFT_W), (self.right, RIGHT_X, RIGHT_W),
                  (self.other_left, layout.other_x, OTHER_W),
                  (self.other_right, layout.other_x + OTHER_W + COL_GAP, OTHER_W)]
        return [(box, x, w) for box, x, w in placed if box is not None]


@dataclass(frozen=True)
class _Layout:
    """The drawing's width, and where the other-methods column starts (when drawn)."""

    other: bool

    @property
    def other_x(self) -> float:
        return RIGHT_X + RIGHT_W + OTHER_GAP

    @property
    def width(self) -> float:
        return (self.other_x + 2 * OTHER_W + COL_GAP + MARGIN) if self.other else WIDTH


def prisma_svg(counts: Sequence[tuple[str, int, str]], *, title: str | None = None,
               since: PrismaSince | None = None) -> str:
    """The flow diagram of ``counts`` (``prisma_counts`` rows, looked up by stage name) as SVG
    text. ``title`` is drawn above the diagram and names it for assistive technology;
    ``since`` adds "(+k since DATE)" to the stages it has a figure for, and a note saying what
    those figures count and from when."""
    n = {stage: int(value) for stage, value, _ in counts}
    missing = [s for s in REQUIRED_STAGES if s not in n]
    if n.get(OTHER_IDENTIFIED_STAGE):  # the other-methods column has the same boxes
        missing += [other_stage(s) for s in REQUIRED_STAGES
                    if s not in _JOINT_STAGES and other_stage(s) not in n]
    if missing:
        raise ValueError(f"PRISMA counts lack the stages {', '.join(map(repr, missing))}")
    added = dict(since.counts) if since is not None else {}
    day = _day(since.at) if since is not None else ""

    def count(stage: str) -> _Text:
        return _Text(count_text(n[stage], added.get(stage), day))

    rows = _column_rows(counts, n, count, _same, other=False)
    if n.get(OTHER_IDENTIFIED_STAGE):
        # Both columns have the same boxes (mmlr screens every record in one queue), so row i
        # of one is row i of the other and their boxes share its height.
        for row, other in zip(rows, _column_rows(counts, n, count, other_stage, other=True),
                              strict=True):
            row.other_left, row.other_right = other.left, other.right
    rows.append(_Row("Included", _Box("included", _included_texts(n, count)), None))
    name = title or DEFAULT_TITLE
    note = _since_note(since) if since is not None else ""
    svg = _draw(rows, _Layout(other=bool(n.get(OTHER_IDENTIFIED_STAGE))), title=title,
                name=name, desc=describe(n, added, day), note=note)
    log.debug("PRISMA diagram drawn: %d rows, %d characters", len(rows), len(svg))
    return svg


def _same(stage: str) -> str:
    return stage


def _column_rows(counts: Sequence[tuple[str, int, str]], n: Mapping[str, int],
                 count: Callable[[str], _Text], name: Callable[[str], str], *,
                 other: bool) -> list[_Row]:
    """The rows of one identification column down to its full-text stage (the included box
    both columns join in is not among them); ``name`` gives the column's name of a stage,
    and the box names (the SVG classes) of the other-methods column start with "other-"."""
    def box(box_name: str, texts: list[_Text]) -> _Box:
        return _Box(f"other-{box_name}" if other else box_name, texts)

    def num(stage: str) -> _Text:
        return count(name(stage))

    # Until the stopping test supports stopping, nothing is left unscreened: the records the
    # stopping rule would leave wait among the records awaiting a decision, and the box says so.
    below_threshold = [_Text("of which below the classifier's flag threshold, not read by a "
                             "person (the stopping test does not support stopping yet)"),
                       _Text(f"n = {n[name(BELOW_THRESHOLD_STAGE)]:,}")
                       ] if n.get(name(BELOW_THRESHOLD_STAGE)) else []
    # A note, not a box: a newer version of a record held is still that one record.
    revised = [_Text("of which revised in PubMed after first retrieval (counted once, not "
                     "removed): " + num(REVISED_STAGE).text)
               ] if n.get(name(REVISED_STAGE)) else []
    identified = ([_Text("Records identified from:", bold=True),
                   _Text("Records added by PMID by curators (citation searching, reference "
                         "lists, conference abstracts; each PMID once)"),
                   num(IDENTIFIED_STAGE), *revised] if other else
                  [_Text("Records identified from:", bold=True),
                   _Text("Databases: PubMed (each PMID once)"),
                   num(IDENTIFIED_STAGE), *revised, _Text("Registers: none searched")])
    rows = [
        _Row("Identification",
             box("identified", identified),
             box("removed", [_Text("Records removed before screening:", bold=True),
                             _Text("Duplicate records (reports of the previous version of "
                                   "the review found again; a PMID found again is one "
                                   "record)"),
                             num(DUPLICATES_STAGE),
                             _Text("Records marked as ineligible by automation tools: not "
                                   "screened, screening stopped by the stopping rule ("
                                   f"{STOPPING_RULE})"), num(AUTOMATION_STAGE),
                             _Text("Records removed for other reasons (deleted from "
                                   "PubMed)"), num(DELETED_STAGE)])),
        # A living review's backlog: not screened yet, so not among the records screened.
        _Row("Screening", None,
             box("awaiting", [_Text("Records awaiting a screening decision (not screened "
                                    "yet)"), num(AWAITING_STAGE), *below_threshold])),
        _Row("Screening",
             box("screened", [_Text("Records screened (title and abstract"
                                    + (", in the same queue)" if other else ")")),
                              num(SCREENED_STAGE)]),
             box("excluded", [_Text("Records excluded:", bold=True),
                              _Text("by curators"), num(CURATORS_STAGE),
                              _Text("by automation tools: none (the classifier only ranks "
                                    "records)")])),
    ]
    if CONFLICT_STAGE in n:  # dual screening
        rows.append(_Row("Screening", None, box("conflicts", [
            _Text("Records in conflict awaiting resolution (screened by both screeners, who "
                  "disagree)"), num(CONFLICT_STAGE)])))
    fulltext = ASSESSED_STAGE in n
    rows.append(_Row("Screening", box("included-records", [
        _Text("Reports sought for retrieval (records included, or marked maybe, at "
              "title/abstract screening)" if fulltext
              else "Records included after title/abstract screening"),
        num(INCLUDED_STAGE)]),
        box("not-retrieved", [_Text("Reports not retrieved"), num(NOT_RETRIEVED_STAGE),
                              _Text("Reports awaiting full-text assessment"),
                              num(FULLTEXT_AWAITING_STAGE)]) if fulltext else None))
    if fulltext:
        prefix = name(EXCLUDED_REASON_PREFIX)
        reasons = [(stage.removeprefix(prefix), value) for stage, value, _ in counts
                   if stage.startswith(prefix) and value]
        unlinked = n.get(name(ELIGIBLE_UNLINKED_STAGE))
        rows.append(_Row("Screening", box("assessed", [
            _Text("Reports assessed for eligibility"), num(ASSESSED_STAGE),
            _Text("of which eligible"), num(ELIGIBLE_STAGE),
            *([_Text(f"of those, not linked to a study yet (not among the reports of "
                     f"included studies): n = {unlinked:,}")] if unlinked else [])]),
            box("fulltext-excluded", [
                _Text("Reports excluded:", bold=True), num(FULLTEXT_EXCLUDED_STAGE),
                *(_Text(f"{reason} (n = {value:,})") for reason, value in reasons)])))
    return rows


def _included_texts(n: Mapping[str, int], count: Callable[[str], _Text]) -> list[_Text]:
    """The last box: PRISMA 2020's "Studies included in review" and "Reports of included
    studies", and with the previous version's part (the template for updated reviews) its
    three pairs: new studies and their reports, the previous version's, and the total."""
    if PREVIOUS_TRIALS_STAGE not in n:
        return [_Text("Studies included in review (randomised trials)"), count(TRIALS_STAGE),
                _Text("Reports of included studies"), count(REPORTS_STAGE)]
    of_previous = n.get(NEW_REPORTS_OF_PREVIOUS_STAGE, 0)
    return [
        _Text("New studies included in review"), count(NEW_TRIALS_STAGE),
        _Text("Reports of new included studies"),
        _Text(f"n = {n[NEW_REPORTS_STAGE] - of_previous:,}"),
        *([_Text(f"New reports of studies in the previous version: n = {of_previous:,}")]
          if of_previous else []),
        _Text("Studies included in previous version of review"), count(PREVIOUS_TRIALS_STAGE),
        _Text("Reports of studies included in previous version of review"),
        count(PREVIOUS_REPORTS_STAGE),
        _Text("Total studies included in review (randomised trials)", bold=True),
        count(TRIALS_STAGE),
        _Text("Reports of total included studies", bold=True), count(REPORTS_STAGE)]


# ----------------------------------------------------------------------------- text
def count_text(value: int, added: int | None = None, day: str = "") -> str:
    """"n = 1,234", or "n = 1,234 (+12 since 2025-11-02)" when a since figure exists."""
    text = f"n = {value:,}"
    if added is not None:
        text += f" (+{added:,} since {day})"
    return text


def wrap_text(text: str, width: float, size: float, *, bold: bool = False) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels at font ``size`` (estimated)."""
    per_char = size * (BOLD_RATIO if bold else EM_RATIO)
    chars = max(1, int(width // per_char))
    return textwrap.wrap(text, width=chars, break_on_hyphens=False) or [""]


def describe(n: Mapping[str, int], added: Mapping[str, int], day: str) -> str:
    """The whole flow in words (the SVG's ``<desc>``), each count with its noun in the
    number it takes ("1 study", "2 studies")."""
    def num(stage: str, one: str = "", many: str | None = None) -> str:
        extra = f" ({added[stage]:,} added since {day})" if stage in added else ""
        what = f" {noun(n[stage], one, many)}" if one else ""
        return f"{n[stage]:,}{extra}{what}"

    previous = (f" ({plural(n[PREVIOUS_TRIALS_STAGE], 'study', 'studies')} with "
                f"{plural(n[PREVIOUS_REPORTS_STAGE], 'report')} from the previous version of "
                f"the review; {plural(n[NEW_TRIALS_STAGE], 'new study', 'new studies')} and "
                f"{plural(n[NEW_REPORTS_STAGE], 'new report')})"
                if PREVIOUS_TRIALS_STAGE in n else "")
    below = (f" (of which {n[BELOW_THRESHOLD_STAGE]:,} below the classifier's flag "
             "threshold, not read by a person)" if n.get(BELOW_THRESHOLD_STAGE) else "")
    conflicts = (f"; {num(CONFLICT_STAGE)} in conflict awaiting resolution"
                 if CONFLICT_STAGE in n else "")
    fulltext = (f"Full text: {num(NOT_RETRIEVED_STAGE, 'report')} not retrieved, "
                f"{num(FULLTEXT_AWAITING_STAGE)} awaiting assessment; "
                f"{num(ASSESSED_STAGE)} assessed for eligibility: {num(ELIGIBLE_STAGE)} "
                f"eligible, {num(FULLTEXT_EXCLUDED_STAGE)} excluded. "
                if ASSESSED_STAGE in n else "")
    revised = (f" (of which {num(REVISED_STAGE)} revised in PubMed after first retrieval, "
               "counted once)" if n.get(REVISED_STAGE) else "")
    return (
        f"Identification: {num(IDENTIFIED_STAGE, 'record')} identified from PubMed, each PMID "
        f"once{revised}; no register searched; removed before screening: "
        f"{num(DUPLICATES_STAGE, 'duplicate record')}, {num(AUTOMATION_STAGE, 'record')} not "
        f"screened (screening stopped by the stopping rule) and "
        f"{num(DELETED_STAGE, 'record')} deleted from PubMed. "
        f"Screening: {num(AWAITING_STAGE)} awaiting a screening decision{below}; "
        f"{num(SCREENED_STAGE, 'record')} screened; excluded: "
        f"{num(CURATORS_STAGE)} by curators, none by automation tools{conflicts}; "
        f"{num(INCLUDED_STAGE, 'record')} included after title/abstract screening. "
        f"{fulltext}{_describe_other(n)}"
        f"Included: {num(TRIALS_STAGE, 'study', 'studies')} "
        f"({noun(n[TRIALS_STAGE], 'randomised trial')}) with "
        f"{num(REPORTS_STAGE, 'report')}{previous}.")


def _describe_other(n: Mapping[str, int]) -> str:
    """The other-methods column in words (empty without records added by PMID)."""
    if not n.get(OTHER_IDENTIFIED_STAGE):
        return ""

    def of(stage: str) -> int:
        return n.get(other_stage(stage), 0)

    return (f"Identification via other methods: "
            f"{plural(n[OTHER_IDENTIFIED_STAGE], 'record')} added by PMID by curators; "
            f"removed before screening: {of(DUPLICATES_STAGE):,} duplicate, "
            f"{of(AUTOMATION_STAGE):,} not screened, {of(DELETED_STAGE):,} deleted; "
            f"{of(AWAITING_STAGE):,} awaiting a screening decision; "
            f"{of(SCREENED_STAGE):,} screened in the same queue; excluded: "
            f"{of(CURATORS_STAGE):,} by curators; {of(INCLUDED_STAGE):,} sought for "
            f"retrieval" + (f"; {of(ASSESSED_STAGE):,} assessed for eligibility: "
                            f"{of(ELIGIBLE_STAGE):,} eligible, "
                            f"{of(FULLTEXT_EXCLUDED_STAGE):,} excluded"
                            if other_stage(ASSESSED_STAGE) in n else "") + ". ")


def _day(at: datetime) -> str:
    return _utc(at).date().isoformat()


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def _since_note(since: PrismaSince) -> str:
    return (f"+n since {_day(since.at)}: added after {since.what} "
            f"({_utc(since.at):%Y-%m-%d %H:%M} UTC): records first stored, records revised, "
            "deletions found, current curator decisions and full-text verdicts made, trials "
            "and reports added. A box without one counts a state, not a dated event (records "
            "screened, records not screened by the stopping rule, conflicts, the two "
            "backlogs, the duplicates of the previous version's reports).")


# ----------------------------------------------------------------------------- drawing
def _draw(rows: list[_Row], layout: _Layout, *, title: str | None, name: str, desc: str,
          note: str) -> str:
    width = layout.width
    for row in rows:
        for box, _, w in row.boxes(layout):
            box.wrap(w - 2 * PAD)
        row.height = max(b.height for b, _, _ in row.boxes(layout))
    _fit_phase_labels(rows)

    body: list[str] = []
    y = float(MARGIN)
    if title:
        for line in wrap_text(title, width - 2 * MARGIN, TITLE_SIZE, bold=True):
            y += TITLE_LINE
            body.append(_text(MARGIN, y - 5, line, size=TITLE_SIZE, bold=True))
        y += 8
    headers: list[tuple[str, float, float, str]] = [(HEADER, LEFT_X, RIGHT_X + RIGHT_W,
                                                     "header")]
    if layout.other:
        headers.append((OTHER_HEADER, layout.other_x, width - MARGIN, "header other-header"))
    # Both headers as tall as the longer one needs (the other column's is narrower).
    lines = [wrap_text(text, x2 - x1 - 2 * PAD, FONT_SIZE, bold=True)
             for text, x1, x2, _ in headers]
    header_h = 2 * PAD + LINE * max(len(wrapped) for wrapped in lines)
    for (_, x1, x2, cls), wrapped in zip(headers, lines, strict=True):
        body.append(_rect(x1, y, x2 - x1, header_h, fill=HEADER_FILL, cls=cls))
        top = y + (header_h - len(wrapped) * LINE) / 2
        for i, line in enumerate(wrapped):
            body.append(_text((x1 + x2) / 2, top + (i + 1) * LINE - 4, line, bold=True,
                              anchor="middle"))
    y += header_h + ROW_GAP
    for row in rows:
        row.y = y
        y += row.height + ROW_GAP
    bottom = y - ROW_GAP

    body += _phase_bars(rows)
    body += _arrows(rows)
    if layout.other:
        body += _other_arrows(rows, layout)
    for row in rows:
        for box, x, w in row.boxes(layout):
            body.append(_box(box, x, row.y, w, row.height))
    if note:
        y = bottom + 10
        for line in wrap_text(note, width - 2 * MARGIN, NOTE_SIZE):
            y += NOTE_LINE
            body.append(_text(MARGIN, y - 4, line, size=NOTE_SIZE, fill=NOTE_INK,
                              cls="since-note"))
        bottom = y
    height = int(bottom + MARGIN)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-labelledby="prisma-title prisma-desc" width="{width:g}" height="{height}" '
            f'viewBox="0 0 {width:g} {height}" font-family="{FONT_FAMILY}" '
            f'font-size="{FONT_SIZE}" fill="{INK}">')
    defs = ('<defs><marker id="prisma-arrowhead" viewBox="0 0 10 10" refX="10" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{BOX_STROKE}"/></marker></defs>')
    return "\n".join([
        head,
        f'<title id="prisma-title">{xml_text(name)}</title>',
        f'<desc id="prisma-desc">{xml_text(desc)}</desc>',
        defs,
        f'<rect width="{width:g}" height="{height}" fill="#ffffff"/>',
        *body,
        "</svg>",
        "",
    ])


def _fit_phase_labels(rows: list[_Row]) -> None:
    """Make each phase bar tall enough for its (rotated) label: the last row of a short
    phase grows."""
    for phase, group in _phases(rows):
        span = sum(r.height for r in group) + ROW_GAP * (len(group) - 1)
        need = len(phase) * FONT_SIZE * BOLD_RATIO + 2 * PAD
        if span < need:
            group[-1].height += need - span


def _phases(rows: Iterable[_Row]) -> list[tuple[str, list[_Row]]]:
    groups: list[tuple[str, list[_Row]]] = []
    for row in rows:
        if groups and groups[-1][0] == row.phase:
            groups[-1][1].append(row)
        else:
            groups.append((row.phase, [row]))
    return groups


def _phase_bars(rows: list[_Row]) -> list[str]:
    out = []
    for phase, group in _phases(rows):
        top, bottom = group[0].y, group[-1].y + group[-1].height
        cx, cy = MARGIN + PHASE_W / 2, (top + bottom) / 2
        out.append(_rect(MARGIN, top, PHASE_W, bottom - top, fill=PHASE_FILL, rx=6,
                         cls=f"phase phase-{phase.lower()}", stroke="none"))
        out.append(f'<text x="{cx:g}" y="{cy:g}" transform="rotate(-90 {cx:g} {cy:g})" '
                   f'text-anchor="middle" dy="0.35em" font-weight="bold">'
                   f'{xml_text(phase)}</text>')
    return out


def _column_arrows(rows: list[_Row], boxes: Callable[[_Row], tuple[Any, Any]], *,
                   left_x: float, width: float, right_x: float) -> tuple[list[str], _Row | None]:
    """One column's arrows: down from box to box of its left boxes, right from a left box to
    its right box, and from the vertical line to the right boxes that branch off it.
    ``boxes`` gives a row's (left, right) box of this column. Also the column's last row
    with a left box, where an arrow leaving the column starts."""
    out = []
    spine = left_x + width / 2
    previous: _Row | None = None
    for row in rows:
        left, right = boxes(row)
        mid = row.y + row.height / 2
        if left is not None:
            if previous is not None:
                out.append(_arrow(spine, previous.y + previous.height, spine, row.y))
            if right is not None:
                out.append(_arrow(left_x + width, mid, right_x, mid))
            previous = row
        elif right is not None:
            out.append(_arrow(spine, mid, right_x, mid))
    return out, previous


def _arrows(rows: list[_Row]) -> list[str]:
    """The databases column's arrows (:func:`_column_arrows`)."""
    return _column_arrows(rows, lambda row: (row.left, row.right), left_x=LEFT_X,
                          width=LEFT_W, right_x=RIGHT_X)[0]


def _other_arrows(rows: list[_Row], layout: _Layout) -> list[str]:
    """The other-methods column's arrows, as :func:`_arrows` draws the databases column's,
    and the one joining it to the included box: down from its last box, then left into the
    included box's side."""
    spine = layout.other_x + OTHER_W / 2
    out, previous = _column_arrows(
        rows, lambda row: (row.other_left, row.other_right), left_x=layout.other_x,
        width=OTHER_W, right_x=layout.other_x + OTHER_W + COL_GAP)
    joined = rows[-1]  # the included box
    if previous is not None and previous is not joined:
        mid = joined.y + joined.height / 2
        out.append(f'<polyline class="arrow join" points="{spine:g},'
                   f'{previous.y + previous.height:g} {spine:g},{mid:g} '
                   f'{LEFT_X + LEFT_W:g},{mid:g}" fill="none" stroke="{BOX_STROKE}" '
                   'stroke-width="1.4" marker-end="url(#prisma-arrowhead)"/>')
    return out


def _box(box: _Box, x: float, y: float, w: float, h: float) -> str:
    parts = [f'<g class="box box-{xml_text(box.name)}">',
             _rect(x, y, w, h, fill="#ffffff")]
    # Centre the lines vertically: a box may be stretched to its row's height.
    top = y + (h - len(box.lines) * LINE) / 2
    for i, line in enumerate(box.lines):
        parts.append(_text(x + PAD, top + (i + 1) * LINE - 4, line.text, bold=line.bold))
    parts.append("</g>")
    return "\n".join(parts)


def _rect(x: float, y: float, w: float, h: float, *, fill: str, rx: float = 3,
          cls: str = "", stroke: str = BOX_STROKE) -> str:
    klass = f' class="{xml_text(cls)}"' if cls else ""
    return (f'<rect{klass} x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{rx:g}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>')


def _text(x: float, y: float, text: str, *, size: float = FONT_SIZE, bold: bool = False,
          anchor: str = "start", fill: str = "", cls: str = "") -> str:
    attrs = [f'x="{x:g}"', f'y="{y:g}"']
    if size != FONT_SIZE:
        attrs.append(f'font-size="{size:g}"')
    if bold:
        attrs.append('font-weight="bold"')
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if fill:
        attrs.append(f'fill="{fill}"')
    if cls:
        attrs.append(f'class="{xml_text(cls)}"')
    return f'<text {" ".join(attrs)}>{xml_text(text)}</text>'


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (f'<line class="arrow" x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" '
            f'stroke="{BOX_STROKE}" stroke-width="1.4" marker-end="url(#prisma-arrowhead)"/>')
