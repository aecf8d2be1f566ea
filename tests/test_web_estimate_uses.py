"""The trial page says, under each current estimate, which analyses pool it and which leave
it out and why (the selection rules as the next pool run applies them), over the real app."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import test_web
from test_web import as_role
from test_web_evidence import _estimates, _post_estimate, _trial, verified_by_second_person

app = test_web.app
users = test_web.users

LEN_POST = "PFS post-ASCT"
LEN_ALL = "PFS all settings"


def _status(page: str, estimate_id: int) -> str:
    """The text of the Status cell of one estimate's row, tags stripped."""
    row = page.split(f'id="estimate-{estimate_id}"', 1)[1].split("</tr>", 1)[0]
    cell = row.split('class="status">', 1)[1]
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_each_estimate_says_where_it_is_pooled_and_why_not(app: Any,
                                                           users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for cut, hr in (("2012-01-01", "0.48"), ("2017-03-01", "0.57")):
        assert _post_estimate(curator, trial_id, hr=hr, ci_low="0.40", ci_high="0.80",
                              data_cut=cut, comparison="len vs placebo").status_code == 303
    verified_by_second_person(app)
    assert _post_estimate(curator, trial_id, endpoint="OS", hr="0.75", ci_low="0.6",
                          ci_high="0.94").status_code == 303  # entered, nobody verified it
    early, late, os_ = _estimates(app)
    page = curator.get(f"/trials/{trial_id}").text
    assert _status(page, late.id) == f"current pooled in: {LEN_POST}; {LEN_ALL} Correct " \
                                     f"Withdraw Reason Withdraw estimate {late.id}"
    assert (f"left out of {LEN_POST}; {LEN_ALL}: superseded by estimate {late.id} (latest "
            "verified data cut)") in _status(page, early.id)
    assert "pooled in" not in _status(page, early.id)
    assert "left out of OS post-ASCT; OS all settings: not verified" in _status(page, os_.id)


def test_reasons_are_escaped_and_a_broken_analyses_file_is_said(
        app: Any, users: dict[str, str], tmp_path: Path) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app, name="Three <arms>")
    for comparison in ("R vs <b>MP</b>", "R vs MPR"):
        assert _post_estimate(curator, trial_id, hr="0.5", ci_low="0.4", ci_high="0.625",
                              comparison=comparison).status_code == 303
    verified_by_second_person(app)
    page = curator.get(f"/trials/{trial_id}").text
    assert "other comparison of a multi-arm trial (&#39;R vs &lt;b&gt;MP&lt;/b&gt;&#39; " \
           "used)" in page
    assert "<b>MP</b>" not in page

    bad = tmp_path / "analyses.toml"
    bad.write_text("[[analysis]\n", encoding="utf-8")
    app.state.settings = app.state.settings.model_copy(update={"analyses_file": bad})
    page = curator.get(f"/trials/{trial_id}")
    assert page.status_code == 200  # the trial still shows; the problem is named
    assert "Where estimates are pooled cannot be shown: MMLR_ANALYSES_FILE" in page.text
    assert "is not valid TOML" in page.text
