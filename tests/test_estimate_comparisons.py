"""The comparison of an entered estimate: blank means the trial's comparison, and a contrast
new for the trial is pointed out (a new data cut written differently would otherwise be left
out of every analysis by the one-comparison-per-trial rule). Over the real app and database."""

from __future__ import annotations

from typing import Any

import test_web
from fastapi.testclient import TestClient
from test_web import as_role, db
from test_web_api import _token, verify_as_admin
from test_web_evidence import _estimates, _post_estimate, _trial, verified_by_second_person

from reports.pool import pool_all
from reports.selection import latest_results

app = test_web.app
users = test_web.users


def _api_post(api: TestClient, headers: dict[str, str], trial_id: int,
              **fields: Any) -> dict[str, Any]:
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625", **fields})
    assert response.status_code == 201, response.text
    # verified by a second person (MMLR_VERIFY_SECOND_PERSON)
    return {**response.json(), **verify_as_admin(api, response.json()["id"])}


def test_blank_comparison_is_the_trial_comparison(app: Any, users: dict[str, str]) -> None:
    api = TestClient(app, raise_server_exceptions=False)
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    first = _api_post(api, headers, trial_id)  # nothing named yet: the generic comparison
    assert first["comparison"] == "maintenance vs control" and first["warnings"] == []
    named = _api_post(api, headers, trial_id, comparison="lenalidomide vs placebo",
                      data_cut="2020-01-01")
    assert named["warnings"] == []
    later = _api_post(api, headers, trial_id, data_cut="2023-06-30", hr="0.6",
                      ci_low="0.5", ci_high="0.72")
    assert later["comparison"] == "lenalidomide vs placebo" and later["warnings"] == []

    # the form does the same
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, hr="0.62", ci_low="0.5", ci_high="0.77",
                              data_cut="2024-01-31")
    assert response.status_code == 303, response.text
    verified_by_second_person(app)
    assert _estimates(app)[-1].comparison == "lenalidomide vs placebo"

    pool_all(app.state.ctx)
    with db(app) as session:
        (result,) = [r for r in latest_results(session)
                     if r.analysis_key == "lenalidomide/PFS/post_asct"]
        assert [row["estimate_id"] for row in result.inputs] == [_estimates(app)[-1].id]


def test_a_new_contrast_is_pointed_out(app: Any, users: dict[str, str]) -> None:
    api = TestClient(app, raise_server_exceptions=False)
    headers = _token(app, users["curator"])
    trial_id = _trial(app, name="Myeloma <XI>")
    _api_post(api, headers, trial_id, comparison="lenalidomide vs observation")
    # a later data cut of the same contrast, written differently
    same = _api_post(api, headers, trial_id, comparison="Lenalidomide versus  observation",
                     data_cut_label="later cut")
    assert same["warnings"] == []
    other = _api_post(api, headers, trial_id, comparison="lenalidomide vs placebo")
    assert other["comparison"] == "lenalidomide vs placebo"
    assert other["warnings"] == [
        "comparison 'lenalidomide vs placebo' is new for Myeloma <XI> (its estimates compare "
        "'lenalidomide vs observation'): a multi-arm trial enters each analysis with one "
        "comparison, its first entered; if this is the same contrast, write it the same way"]

    # on the page the warning is a flash, escaped like everything else
    curator = as_role(app, users, "curator")
    response = _post_estimate(curator, trial_id, hr="0.7", ci_low="0.5", ci_high="0.98",
                              comparison="len vs <b>obs</b>")
    assert response.status_code == 303
    page = curator.get(response.headers["location"]).text
    assert "is new for Myeloma &lt;XI&gt;" in page
    assert "len vs &lt;b&gt;obs&lt;/b&gt;" in page and "<b>obs</b>" not in page
