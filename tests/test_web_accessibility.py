"""Form fields a screen reader user can fill in: each field's hint and error are read with it.
Over the real app and database (starlette TestClient)."""

from __future__ import annotations

import re
from typing import Any

import test_web
from test_web import as_role, csrf_from
from test_web_evidence import _trial

app = test_web.app
users = test_web.users


def _field(page: str, field_id: str) -> str:
    match = re.search(rf'<(?:input|textarea)[^>]*\bid="{field_id}"[^>]*>', page)
    assert match, field_id
    return match.group(0)


def test_a_fields_hint_and_error_are_tied_to_it(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    page = curator.get(f"/trials/{trial_id}").text
    citation = _field(page, "rep-citation")
    assert 'aria-describedby="rep-citation-hint"' in citation
    assert '<p class="hint" id="rep-citation-hint">authors, journal, year' in page
    assert "aria-describedby" not in _field(page, "rep-year")  # no hint, no error: nothing
    # a bad report: the error comes first, then the hint
    refused = curator.post(f"/trials/{trial_id}/reports", data={
        "pmid": "abc", "year": "", "kind": "primary", "citation": "",
        "csrf_token": csrf_from(page)}).text
    assert 'aria-describedby="rep-citation-error rep-citation-hint"' in _field(refused,
                                                                             "rep-citation")
    assert 'id="rep-citation-error"' in refused
    assert 'aria-invalid="true" aria-describedby="rep-pmid-error"' in _field(refused, "rep-pmid")
