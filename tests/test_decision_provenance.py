"""A decision keeps the model version and score the curator was shown, also when a retrain
made another version active between showing the record and saving the decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lxml.html
import pytest
import test_web
from sqlmodel import func, select
from test_screening_service import _add_seeds, _load_corpus
from test_web import api_as, as_role, csrf_from, db

from screening.service import screen
from store.models import Decision, Record

app = test_web.app
users = test_web.users
records = test_web.records


def _hidden(html: str) -> dict[str, str]:
    form = lxml.html.fromstring(html).xpath("//form[contains(@class, 'decision-form')]")[0]
    return {i.get("name"): i.get("value") for i in form.xpath(".//input[@type='hidden']")}


def _score(app: Any, pmid: int) -> tuple[int | None, float | None]:
    with db(app) as session:
        record = session.get(Record, pmid)
        assert record is not None
        return record.score_model_version_id, record.score


def test_a_decision_keeps_the_score_shown_when_a_retrain_lands_before_it_is_saved(
        app: Any, users: dict[str, str], tmp_path: Path) -> None:
    ctx = app.state.ctx
    corpus = _load_corpus(ctx, tmp_path)
    first = screen(ctx)  # version A: the keyword prior
    eligible = sorted(p for p, e in corpus.items() if e)
    on_page, by_api, plain = eligible[-1], eligible[-2], eligible[-3]
    shown = {p: _score(app, p) for p in (on_page, by_api, plain)}
    assert {v for v, _ in shown.values()} == {first.model_version_id}

    curator = as_role(app, users, "curator")
    page = curator.get(f"/records/{on_page}?rank=4").text
    hidden = _hidden(page)
    assert (int(hidden["model_version_shown"]), float(hidden["score_shown"])) == shown[on_page]

    _add_seeds(ctx, eligible[:5])  # the seed trials arrive: a classifier replaces the prior
    second = screen(ctx)
    assert second.trained and second.model_version_id != first.model_version_id
    for p in shown:
        version, score = _score(app, p)
        assert version == second.model_version_id and score != shown[p][1]

    response = curator.post(f"/records/{on_page}/decision", follow_redirects=False,
                            data={**hidden, "decision": "include", "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    api = api_as(app, users, "curator")
    version, score = shown[by_api]
    answer = api.post("/api/decisions", json={
        "pmid": by_api, "decision": "include", "rank_shown": 7,
        "model_version_shown": version, "score_shown": score})
    assert answer.status_code == 201, answer.text
    assert (answer.json()["model_version_id"], answer.json()["score_shown"]) == (version, score)
    # Without them (an older page, a client that does not send them): the current ones.
    assert api.post("/api/decisions", json={"pmid": plain, "decision": "exclude"}
                    ).status_code == 201
    with db(app) as session:
        stored = {d.pmid: (d.model_version_id, d.score_shown, d.rank_shown)
                  for d in session.exec(select(Decision))}
    assert stored == {on_page: (*shown[on_page], 4), by_api: (*shown[by_api], 7),
                      plain: (*_score(app, plain), None)}


@pytest.mark.parametrize(("fields", "error"), [
    ({"model_version_shown": 999}, "model_version_shown was sent without score_shown"),
    ({"score_shown": 0.5}, "score_shown was sent without model_version_shown"),
    ({"model_version_shown": 999, "score_shown": 0.5},
     "model_version_shown 999 is not a model version"),
    ({"model_version_shown": 0, "score_shown": 0.5},
     "model_version_shown 0 is not a positive whole number"),
    ({"model_version_shown": True, "score_shown": 0.5},
     "model_version_shown True is not a positive whole number"),
    ({"model_version_shown": "v1", "score_shown": 0.5},
     "model_version_shown 'v1' is not a positive whole number"),
    ({"model_version_shown": "{v}", "score_shown": 1.5},
     "score_shown 1.5 is not a number from 0 to 1"),
    ({"model_version_shown": "{v}", "score_shown": -0.1},
     "score_shown -0.1 is not a number from 0 to 1"),
    ({"model_version_shown": "{v}", "score_shown": "nan"},
     "score_shown nan is not a number from 0 to 1"),
    ({"model_version_shown": "{v}", "score_shown": "0,5"},
     "score_shown: '0,5' is not a number (use a decimal point, not a comma)"),
    ({"model_version_shown": "{v}", "score_shown": [0.5]},
     "score_shown: '[0.5]' is not a number"),
])
def test_a_bad_shown_model_or_score_is_refused_and_nothing_is_saved(
        app: Any, users: dict[str, str], records: int, fields: dict[str, Any],
        error: str) -> None:
    body = {k: records if v == "{v}" else v for k, v in fields.items()}
    api = api_as(app, users, "curator")
    answer = api.post("/api/decisions", json={"pmid": 90000002, "decision": "include", **body})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(error + " (")
    # The form's hidden fields go through the same check.
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000002").text)
    form = curator.post("/records/90000002/decision", data={
        "decision": "include", "csrf_token": token,
        **{k: str(v) for k, v in body.items() if not isinstance(v, list | bool)}})
    assert form.status_code == 400
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
        assert session.get(Record, 90000002).decision is None  # type: ignore[union-attr]
