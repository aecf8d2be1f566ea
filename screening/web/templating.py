"""Jinja2 templates with autoescaping always on, and the helpers every page needs."""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from reports.absolute import written_per_1000
from reports.presentation import has_heterogeneity, i2_text, trial_hr
from reports.small_study import p_text
from reports.words import hr_limit, interval_text, noun, plural, rounded
from screening.web.auth import has_role
from screening.web.csrf import csrf_token
from screening.web.deps import dual_screening, pop_flashes, verify_second_person
from screening.web.extraction import METHOD_WORDS, ORIENTATION_WORDS, SETTING_WORDS
from store.errors import Sentence, Statement
from store.text import closed_bidi_value, shorten

TEMPLATE_DIR = Path(__file__).parent / "templates"


def utc_text(value: datetime | date | str | None) -> str:
    """A time as every page and message shows it: "2026-11-30 20:51 UTC" (a naive value is
    UTC, as stored); a date as ISO; "—" for none."""
    if value is None:
        return "—"
    if isinstance(value, str):  # ISO text from a JSON column (e.g. the scoring progress)
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _fmt_num(value: float | None, digits: int = 2) -> str:
    # Half-up, as every report rounds (reports.words.rounded): 1.025 is "1.03" everywhere.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return rounded(value, digits)


def _interval(low: float | None, high: float | None) -> str:
    """An HR's interval, "0.18–1.64" (each limit as ``reports.words.hr_limit`` writes it: a
    limit next to 1 keeps its side, a tiny one stays readable); "—" without one of them."""
    if low is None or high is None:
        return "—"
    return interval_text(hr_limit(low, lower=True), hr_limit(high, lower=False))


def _pvalue(value: float | None) -> str:
    """A p value for a table cell: "< 0.001" rather than "0.000"."""
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _exp(value: float | None) -> float | None:
    return None if value is None else math.exp(value)


def _doi_url(doi: str) -> str:
    # Quote everything that is not part of a DOI's usual alphabet: the link cannot break out
    # of its attribute (autoescape) nor point anywhere but doi.org.
    return "https://doi.org/" + quote(doi.strip(), safe="/:;()._-")


def _context(request: Request) -> dict[str, Any]:
    user = getattr(request.state, "user", None)
    return {
        "user": user,
        "csrf_token": csrf_token(request),
        "flashes": pop_flashes(request),
        "can": (lambda role: user is not None and has_role(user, role)),
        # dual screening: votes, blinding, the conflicts page (docs/curation.md)
        "dual": dual_screening(request),
        # whoever entered an estimate may not verify it (MMLR_VERIFY_SECOND_PERSON)
        "second_person": verify_second_person(request),
    }


def mesh_heading(heading: Any) -> str:
    """One stored MeSH heading as PubMed writes it: "Multiple Myeloma/drug therapy*", a star
    after each major topic. Qualifiers are ``{"name", "major"}`` from the parsers (plain
    strings are read too)."""
    if not isinstance(heading, dict):
        return str(heading)
    text = str(heading.get("descriptor", "")) + ("*" if heading.get("major") else "")
    for q in heading.get("qualifiers") or []:
        if isinstance(q, dict):
            text += "/" + str(q.get("name", "")) + ("*" if q.get("major") else "")
        else:
            text += f"/{q}"
    return text


#: Stored codes a curator reads in words: ``{{ e.setting|words("setting") }}``.
_CODE_WORDS: dict[str, dict[str, str]] = {
    "setting": SETTING_WORDS, "method": METHOD_WORDS, "orientation": ORIENTATION_WORDS,
    # the pooled analyses' confidence intervals, as docs/curation.md names them
    "ci": {"hksj": "HKSJ CI", "hksj-adhoc": "HKSJ CI (ad hoc)", "wald": "Wald CI"}}


def _words(code: Any, kind: str) -> str:
    """A stored code (``post_asct``) in words (``post-ASCT``); an unknown code as it is."""
    if code is None:
        return "—"
    return _CODE_WORDS[kind].get(str(code), str(code))


def _audit_value(value: Any) -> str:
    """One value of an audit row's details on the audit page: a number to six significant
    digits, a list as its items, a dict as compact JSON, long text cut at a word (the CSV
    keeps everything as stored)."""
    if isinstance(value, float):  # a score or an HR as stored: six significant digits
        return f"{value:.6g}"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    else:
        text = str(value)
    return shorten(text, AUDIT_VALUE_CHARS)


#: How much of one audit detail the page shows.
AUDIT_VALUE_CHARS = 300


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every value from PubMed or a user is escaped, always
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Every value printed has the bidirectional levels it opens closed: PubMed text is
        # stored as written, and an unclosed override in a title reversed the page after it.
        finalize=closed_bidi_value,
    )
    env.filters["dt"] = utc_text
    env.filters["num"] = _fmt_num
    # I² in whole percent, unless that crosses the 50% the certainty rates down at (49.7%)
    env.filters["i2"] = i2_text
    env.filters["exp"] = _exp
    env.filters["pvalue"] = _pvalue
    env.filters["p_text"] = p_text
    env.filters["doi_url"] = _doi_url
    env.filters["mesh_heading"] = mesh_heading
    env.filters["words"] = _words
    env.filters["noun"] = noun
    # One pooled trial's HR and CI as printed (reports.presentation.trial_hr), an interval
    # in the pages' convention ("0.18–1.64", reports.words), and the one-trial rule.
    env.globals["trial_hr"] = trial_hr
    env.globals["interval"] = _interval
    env.globals["has_heterogeneity"] = has_heterogeneity
    # Half up, as the summary of findings rounds; the differences those of the rounded risks.
    env.globals["written_per_1000"] = written_per_1000
    env.filters["plural"] = plural
    env.filters["audit_value"] = _audit_value
    env.globals["field_message"] = field_message
    env.filters["field_errors"] = field_errors
    return Jinja2Templates(env=env, context_processors=[_context])


#: A field's error as the form macros write it: ``<p class="field-error" id="<field id>-error">``.
_FIELD_ERROR = re.compile(
    r'<p class="field-error" id="(?P<field>[^"<>]+)-error"[^>]*>(?P<text>.*?)</p>', re.DOTALL)


def field_errors(form: str) -> list[tuple[str, str]]:
    """Each field error in a form as rendered (the field's id, the error's text as shown
    beside the field, unescaped: the template escapes it again): the refused-form summary
    lists them as links to their fields (macros.html ``refused``), read from the form itself
    so no field's label is written twice."""
    return [(m["field"], html.unescape(re.sub(r"<[^>]*>", "", m["text"])).strip())
            for m in _FIELD_ERROR.finditer(str(form))]


def field_message(label: str, message: str) -> str:
    """A field's error as the form shows it: after the field's label ("Events (both arms) must
    be at least 1"), unless the message names the field itself (:class:`Sentence`); after the
    label and a colon when it is a statement of its own (:class:`Statement`)."""
    if isinstance(message, Sentence):
        return message[:1].upper() + message[1:]
    if isinstance(message, Statement):
        return f"{label}: {message}"
    return f"{label} {message}"


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code)
