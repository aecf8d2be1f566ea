"""The inputs of derived hazard ratios are kept (``Estimate.derivation_inputs``): stored as typed,
re-derivable, shown on the trial page, pre-filled in a correction, returned by the API, audited,
exported for R, and added to existing databases by migration 0002."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from migration_steps import alembic_config
from sqlalchemy import text
from sqlmodel import col, select
from test_web import as_role, db
from test_web_api import _token
from test_web_evidence import _estimates, _post_estimate, _trial

from reports import derive
from store.errors import ValidationError
from store.models import AuditLog, Estimate, Trial, User, utcnow

app = test_web.app
users = test_web.users

# A trial that printed only KM curves (Guyot 2012): each arm's digitised curve and at-risk table
# as typed (percentages with a header; proportions with semicolons; a tab-separated table).
KM_TEXTS = {
    "curve_maintenance": "Time,Survival\n0,100\n3,96.5\n6,92.1\n12,84.2\n24,70.3\n36,61.8\n"
                         "42,58\n48,57.1",
    "at_risk_maintenance": "0, 150\n12, 121\n24, 98\n36, 60",
    "curve_control": "0;1\n3;0.93\n6;0.85\n12;0.71\n24;0.50\n36;0.39\n42;0.33\n48;0.31",
    "at_risk_control": "0\t140\n12\t95\n24\t66\n36\t35",
}

# One case per way of deriving (and per variant of its inputs): the form fields typed, and the
# inputs that must be stored, exactly.
CASES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "p_value": (
        {"method": "p_value_events", "p_value": "0.003", "events": "210",
         "favours": "maintenance"},
        {"orientation": "maint_vs_control", "p_value": "0.003", "events": 210,
         "favours": "maintenance"},
    ),
    "p_value_arms_and_hr": (
        {"method": "p_value_events", "orientation": "control_vs_maint", "p_value": " 1e-4 ",
         "events": "251", "hr": "1.45", "n_maintenance": "200", "n_control": "100"},
        {"orientation": "control_vs_maint", "p_value": "1e-4", "events": 251, "hr": 1.45,
         "favours": "maintenance", "n_maintenance": 200, "n_control": 100},
    ),
    "p_value_hr_one": (  # an HR of 1 takes no side: kept beside the arm chosen
        {"method": "p_value_events", "p_value": "0.5", "events": "300", "hr": "1.00",
         "favours": "control"},
        {"orientation": "maint_vs_control", "p_value": "0.5", "events": 300, "hr": 1.0,
         "favours": "control", "as_entered": {"hr": "1.00"}},
    ),
    "hr_p_value": (  # an HR printed with its P value, no CI (Tierney 2007)
        {"method": "hr_p_value", "orientation": "control_vs_maint", "hr": "1.25",
         "p_value": "0.02"},
        {"orientation": "control_vs_maint", "hr": 1.25, "p_value": "0.02"},
    ),
    "o_minus_e": (
        {"method": "o_minus_e", "o_minus_e": "-12.5", "variance": "40.2"},
        {"orientation": "maint_vs_control", "o_minus_e": -12.5, "variance": 40.2},
    ),
    "o_minus_e_control_arm": (
        {"method": "o_minus_e", "orientation": "control_vs_maint", "o_minus_e": "9.75",
         "variance": "33"},
        {"orientation": "control_vs_maint", "o_minus_e": 9.75, "variance": 33.0},
    ),
    "medians_per_arm": (
        {"method": "medians", "median_maintenance": "27.5", "median_control": "15.1",
         "events_maintenance": "120", "events_control": "140"},
        {"orientation": "maint_vs_control", "median_maintenance": 27.5, "median_control": 15.1,
         "events_maintenance": 120, "events_control": 140},
    ),
    "medians_total_events": (
        {"method": "medians", "median_maintenance": "30", "median_control": "20",
         "events": "250"},
        {"orientation": "maint_vs_control", "median_maintenance": 30.0, "median_control": 20.0,
         "events": 250},
    ),
    "km_curves": (  # the texts as typed (around them, blank lines and spaces are trimmed)
        {"method": "km_curves", **{k: f"\n{v}\n  " for k, v in KM_TEXTS.items()},
         "events_control": "82"},
        {"orientation": "maint_vs_control", **KM_TEXTS, "events_control": 82},
    ),
}


def _by_hand(method: str, inputs: dict[str, Any]) -> derive.DerivedEstimate:
    """Re-derive with reports.derive's functions called directly (not through
    derive_from_inputs), the way a second reviewer reads the stored inputs."""
    if method == "p_value_events":
        return derive.from_p_value(inputs["p_value"], inputs["events"], favours=inputs["favours"],
                                   n_maint=inputs.get("n_maintenance"),
                                   n_control=inputs.get("n_control"))
    if method == "hr_p_value":
        sign = -1 if inputs["orientation"] == "control_vs_maint" else 1
        z = NormalDist().inv_cdf(1 - float(inputs["p_value"]) / 2)
        return derive.DerivedEstimate(log_hr=sign * math.log(inputs["hr"]),
                                      se=abs(math.log(inputs["hr"])) / z, method=method)
    if method == "o_minus_e":
        sign = -1 if inputs["orientation"] == "control_vs_maint" else 1
        return derive.from_o_minus_e(sign * inputs["o_minus_e"], inputs["variance"])
    if method == "km_curves":
        return derive.from_km_curves(
            inputs["curve_maintenance"], inputs["at_risk_maintenance"], inputs["curve_control"],
            inputs["at_risk_control"], events_maintenance=inputs.get("events_maintenance"),
            events_control=inputs.get("events_control"))
    return derive.from_medians(inputs["median_maintenance"], inputs["median_control"],
                               events_maint=inputs.get("events_maintenance"),
                               events_control=inputs.get("events_control"),
                               events=inputs.get("events"))


def _audits(app: Any, action: str) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == action)
                                 .order_by(col(AuditLog.id))))


def _null_inputs(app: Any) -> list[int]:
    """Ids whose derivation_inputs is SQL NULL (not the JSON text 'null')."""
    with app.state.ctx.engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT id FROM estimates WHERE derivation_inputs IS NULL ORDER BY id")).scalars())


# ----------------------------------------------------------------------------- storing
@pytest.mark.parametrize("case", list(CASES))
def test_each_derivation_stores_its_inputs_as_entered(app: Any, users: dict[str, str],
                                                      case: str) -> None:
    fields, expected = CASES[case]
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, notes="from Table 3", **fields)
    assert response.status_code == 303, response.text
    (estimate,) = _estimates(app)
    assert estimate.method == fields["method"]
    assert estimate.derivation_inputs == expected
    # The stored inputs alone give the stored numbers back, by hand and through the helper.
    for again in (_by_hand(estimate.method, estimate.derivation_inputs),
                  derive.derive_from_inputs(estimate.method, estimate.derivation_inputs)):
        assert again.log_hr == pytest.approx(estimate.log_hr, abs=1e-12, rel=0)
        assert again.se == pytest.approx(estimate.se, abs=1e-12, rel=0)
    assert _null_inputs(app) == []
    (added,) = _audits(app, "estimate.add")
    assert added.details["derivation_inputs"] == expected


def test_reported_ci_stores_no_inputs(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    # a P value typed next to a reported CI is refused (test_web_estimate_method_fields), not
    # dropped: the events are every estimate's, kept, and not what the HR came from
    assert _post_estimate(curator, trial_id, hr="0.50", ci_low="0.40", ci_high="0.625",
                          events="99").status_code == 303
    (estimate,) = _estimates(app)
    assert estimate.method == "reported_ci" and estimate.derivation_inputs is None
    assert _null_inputs(app) == [estimate.id]  # SQL NULL, so IS NULL queries find it
    (added,) = _audits(app, "estimate.add")
    assert added.details["derivation_inputs"] is None


def test_bad_derivation_input_stores_nothing(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    response = _post_estimate(curator, trial_id, method="p_value_events", p_value="<0.001",
                              events="210", favours="maintenance")
    assert response.status_code == 400
    assert "is a bound, not a value" in response.text
    assert 'name="p_value" type="text" value="&lt;0.001"' in response.text  # kept, escaped
    assert _estimates(app) == []


def test_derive_from_inputs_refuses_incomplete_or_foreign_inputs() -> None:
    with pytest.raises(ValidationError, match="the o_minus_e inputs lack 'variance'"):
        derive.derive_from_inputs("o_minus_e", {"o_minus_e": 1.0})
    with pytest.raises(ValidationError, match="not numbers"):
        derive.derive_from_inputs("o_minus_e", {"o_minus_e": "abc", "variance": 3})
    with pytest.raises(ValidationError, match="has no derivation inputs"):
        derive.derive_from_inputs("reported_ci", {"hr": 0.5})
    with pytest.raises(ValidationError, match="the p_value_events inputs lack 'favours'"):
        derive.derive_from_inputs("p_value_events", {"p_value": "0.01", "events": 10})


# ----------------------------------------------------------------------------- trial page
def test_trial_page_shows_the_inputs_next_to_the_method(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for case in ("p_value", "o_minus_e_control_arm", "medians_per_arm", "hr_p_value",
                 "p_value_hr_one"):
        assert _post_estimate(curator, trial_id, **CASES[case][0]).status_code == 303
    page = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    assert ("derived from P = 0.003 and 210 events; favours maintenance" in page)
    assert ("HR 1.25 (entered as control vs maintenance) as printed, SE from its two-sided "
            "P = 0.02 (no CI printed)") in page
    # an HR of 1 gave no direction: the arm chosen did
    assert "derived from P = 0.5 and 300 events; favours control; HR 1.00 typed" in page
    assert "derived from O − E = 9.75 and V = 33 (entered for the control arm)" in page
    assert "derived from medians 27.5 vs 15.1 months and 120/140 events" in page
    assert page.count('class="derivation-inputs"') == 5


def test_trial_page_escapes_the_inputs(app: Any, users: dict[str, str]) -> None:
    """The form validates numbers, but a row may come from elsewhere (an import, the API of a
    later version): whatever the stored inputs hold is escaped."""
    trial_id = _trial(app)
    with db(app) as session:
        session.add(Estimate(trial_id=trial_id, endpoint="PFS", setting="post_asct", hr=0.7,
                             log_hr=math.log(0.7), se=0.1, method="p_value_events",
                             derivation_inputs={"p_value": "<script>alert(1)</script>",
                                                "events": "<b>9</b>", "favours": "maintenance",
                                                "orientation": "maint_vs_control"}))
        session.commit()
    page = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    assert "derived from P = &lt;script&gt;alert(1)&lt;/script&gt; and &lt;b&gt;9&lt;/b&gt;" in page
    assert "<script>alert(1)" not in page and "<b>9</b>" not in page


# ----------------------------------------------------------------------------- correction
class _FormReader(HTMLParser):
    """The fields a browser would submit from the correction form, as pre-filled."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("action", "").endswith("/edit"):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("type") != "checkbox":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
            self.fields.setdefault(a["name"], "")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields[a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def _edit_form(c: TestClient, estimate_id: int) -> tuple[str, dict[str, str]]:
    page = c.get(f"/estimates/{estimate_id}/edit")
    assert page.status_code == 200
    reader = _FormReader()
    reader.feed(page.text)
    return page.text, reader.fields


def test_correction_form_is_prefilled_with_the_inputs(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, notes="Table 3 <script>x</script>",
                          **CASES["p_value_arms_and_hr"][0]).status_code == 303
    (estimate,) = _estimates(app)
    html, fields = _edit_form(curator, estimate.id)
    assert 'name="p_value" type="text" value="1e-4"' in html
    assert 'name="events" type="text" value="251"' in html
    assert 'name="hr" type="text" value="1.45"' in html  # the typed HR, not the derived one
    assert 'name="ci_low" type="text" value=""' in html  # a derived CI is no input
    assert 'name="n_maintenance" type="text" value="200"' in html
    assert '<option value="control_vs_maint" selected>' in html
    assert '<option value="p_value_events" selected>' in html
    assert "were not stored" not in html
    assert "derived from P = 1e-4 and 251 events" in html
    # the curator's note, escaped, without the derivation's own line (added again on saving)
    assert "Table 3 &lt;script&gt;x&lt;/script&gt;</textarea>" in html
    assert fields["favours"] == ""  # the direction came from the HR, as typed


@pytest.mark.parametrize("case,change", [
    ("p_value", ("events", "220")),
    ("p_value_arms_and_hr", ("p_value", "0.02")),
    ("p_value_hr_one", ("events", "320")),
    ("hr_p_value", ("p_value", "0.03")),
    ("o_minus_e_control_arm", ("variance", "35.5")),
    ("medians_per_arm", ("events_control", "150")),
    ("medians_total_events", ("median_control", "18.5")),
    ("km_curves", ("events_control", "85")),
])
def test_correcting_one_number_needs_no_retyping(app: Any, users: dict[str, str], case: str,
                                                 change: tuple[str, str]) -> None:
    fields, expected = CASES[case]
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, notes="Table 3", **fields).status_code == 303
    (old,) = _estimates(app)
    _, form = _edit_form(curator, old.id)
    name, value = change
    assert form[name] != value
    form[name] = value
    form["correction_note"] = f"{name} misread"
    response = curator.post(f"/estimates/{old.id}/edit", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    old_after, new = _estimates(app)
    assert new.supersedes_id == old.id and old_after.withdrawn_at is not None
    number = value if name == "p_value" else (int(value) if name.startswith("events")
                                              else float(value))
    assert new.derivation_inputs == {**expected, name: number}
    assert new.method == old.method and new.endpoint == old.endpoint
    assert (new.log_hr, new.se) != (pytest.approx(old.log_hr), pytest.approx(old.se))
    again = _by_hand(new.method, new.derivation_inputs)
    assert (again.log_hr, again.se) == (pytest.approx(new.log_hr, abs=1e-12, rel=0),
                                        pytest.approx(new.se, abs=1e-12, rel=0))
    # the derivation's note is not repeated by the round trip through the form
    assert new.notes is not None and new.notes.startswith("Table 3\n")
    assert new.notes.count("\n") == 1
    (correct,) = _audits(app, "estimate.correct")
    assert correct.details["old"]["derivation_inputs"] == expected
    assert correct.details["new"]["derivation_inputs"] == new.derivation_inputs


def test_unchanged_correction_rederives_the_same_number(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for case in CASES:
        assert _post_estimate(curator, trial_id, **CASES[case][0]).status_code == 303
    for old in _estimates(app):
        _, form = _edit_form(curator, old.id)
        # untouched, the inputs give back the very estimate (so there is nothing to correct)
        refused = curator.post(f"/estimates/{old.id}/edit", data=form, follow_redirects=False)
        assert refused.status_code == 400 and "already says" in refused.text, old.method
        assert curator.post(f"/estimates/{old.id}/edit", data={**form, "notes": "re-checked"},
                            follow_redirects=False).status_code == 303
    by_old = {e.supersedes_id: e for e in _estimates(app) if e.supersedes_id is not None}
    assert len(by_old) == len(CASES)
    for old in _estimates(app):
        if old.supersedes_id is None:
            new = by_old[old.id]
            assert new.derivation_inputs == old.derivation_inputs
            assert new.log_hr == pytest.approx(old.log_hr, abs=1e-12, rel=0)
            assert new.se == pytest.approx(old.se, abs=1e-12, rel=0)


def test_derived_estimate_without_stored_inputs_says_so(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    with db(app) as session:
        legacy = Estimate(trial_id=trial_id, endpoint="OS", setting="post_asct", hr=0.8,
                          ci_low=0.64, ci_high=1.0, log_hr=math.log(0.8), se=0.114,
                          method="o_minus_e")
        session.add(legacy)
        session.commit()
        legacy_id = legacy.id
    html, fields = _edit_form(as_role(app, users, "curator"), legacy_id)
    assert "the inputs of that derivation were not stored" in html
    assert fields["hr"] == "0.8" and fields["o_minus_e"] == ""


# ----------------------------------------------------------------------------- JSON API
def test_api_post_returns_and_stores_the_inputs(app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    api = TestClient(app, raise_server_exceptions=False)
    headers = _token(app, users["curator"])
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "OS", "method": "p_value_events", "p_value": 0.0004,
        "events": 180, "favours": "control", "n_maintenance": 150, "n_control": 150})
    assert response.status_code == 201, response.text
    body = response.json()
    expected = {"orientation": "maint_vs_control", "p_value": "0.0004", "events": 180,
                "favours": "control", "n_maintenance": 150, "n_control": 150}
    assert body["derivation_inputs"] == expected
    assert body["log_hr"] > 0  # control did better
    (estimate,) = _estimates(app)
    assert estimate.derivation_inputs == expected
    listed = api.get("/api/trials", headers=headers).json()["trials"]
    (trial,) = [t for t in listed if t["id"] == trial_id]
    assert trial["estimates"][0]["derivation_inputs"] == expected

    reported = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert reported.status_code == 201 and reported.json()["derivation_inputs"] is None


# ----------------------------------------------------------------------------- export
def _derived_and_pooled(ctx: Any) -> None:
    from reports.pool import pool_all
    from screening.web.extraction import parse_estimate, save_estimate
    from tests.test_pool import add_estimate, add_trial

    with ctx.sessions() as s:
        user = User(email="curator@example.org", role="curator")
        s.add(user)
        s.flush()
        for i, case in enumerate(CASES):
            trial = add_trial(s, f"Trial {case}")
            draft = parse_estimate({"endpoint": "PFS", "verified": "1", **CASES[case][0]},
                                   trial=trial, reports=[])
            save_estimate(s, trial=trial, draft=draft, user=user)
            if i == 0:
                add_estimate(s, add_trial(s, "Reported"), "0.60", "0.45", "0.80")
        s.commit()
    pool_all(ctx)


def test_metafor_export_carries_the_inputs(ctx: Any, tmp_path: Path) -> None:
    from reports.export_metafor import CSV_COLUMNS, write_metafor_export

    _derived_and_pooled(ctx)
    csv_path, _ = write_metafor_export(ctx, tmp_path)
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(CSV_COLUMNS)
    by_study = {r["study"]: r for r in rows if r["analysis"] == "thalidomide/PFS/post_asct"}
    assert by_study["Reported"]["derivation"] == "reported_ci"
    assert by_study["Reported"]["p_value"] == "" and by_study["Reported"]["approximate"] == "FALSE"
    p = by_study["Trial p_value_arms_and_hr"]
    assert (p["derivation"], p["approximate"], p["p_value"], p["events"], p["favours"],
            p["n_maintenance"], p["n_control"], p["orientation"]) == (
        "p_value_events", "TRUE", "1e-4", "251", "maintenance", "200", "100",
        "control_vs_maint")
    t = by_study["Trial hr_p_value"]
    assert (t["derivation"], t["approximate"], t["hr"], t["p_value"], t["orientation"],
            t["events"]) == ("hr_p_value", "TRUE", "1.25", "0.02", "control_vs_maint", "")
    o = by_study["Trial o_minus_e_control_arm"]
    assert (o["o_minus_e"], o["variance"], o["approximate"]) == ("9.75", "33.0", "FALSE")
    m = by_study["Trial medians_total_events"]
    assert (m["median_maintenance"], m["median_control"], m["events"],
            m["events_maintenance"]) == ("30.0", "20.0", "250", "")
    # the KM curves' inputs are lists: whole, as JSON, in a column of their own
    k = by_study["Trial km_curves"]
    assert (k["derivation"], k["approximate"], k["orientation"], k["events_control"],
            k["p_value"]) == ("km_curves", "TRUE", "maint_vs_control", "82", "")
    assert json.loads(k["derivation_inputs_json"]) == CASES["km_curves"][1]
    assert float(k["yi"]) < 0 and float(k["sei"]) > 0
    assert all(r["derivation_inputs_json"] == "" for r in rows if r["derivation"] != "km_curves")


def test_r_rederives_every_derived_row(ctx: Any, tmp_path: Path, rscript: str) -> None:
    from reports.export_metafor import write_metafor_export

    _derived_and_pooled(ctx)
    csv_path, r_path = write_metafor_export(ctx, tmp_path)
    proc = subprocess.run([rscript, str(r_path), str(csv_path), str(tmp_path / "res.csv")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "re-derived from the inputs entered" in proc.stdout
    assert ("1 estimate(s) reconstructed from KM curves (km_curves) not re-derived here: "
            "inputs in derivation_inputs_json") in proc.stdout
    worst = float(proc.stdout.split("largest difference:")[1].split()[0])
    assert worst < 1e-9
    assert "does not match" not in proc.stderr
    # R's check can fail: damage one input and it warns
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["derivation"] == "o_minus_e":
            row["variance"] = "50"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = subprocess.run([rscript, str(r_path), str(csv_path), str(tmp_path / "res2.csv")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "a derived estimate does not match its inputs" in proc.stderr


# ----------------------------------------------------------------------------- migration
@pytest.mark.empty_database
def test_database_at_0001_upgrades_with_rows_intact(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0001")
        with engine.begin() as conn:
            columns = [c["name"] for c in _columns(conn, "estimates")]
            assert "derivation_inputs" not in columns
            # Core inserts name their columns, so the model's new column is not sent to the
            # old table; the types (JSON, aware timestamps) are stored as the app stores them.
            trial_id = conn.execute(Trial.__table__.insert().values(  # type: ignore[attr-defined]
                name="Old trial", registry_ids=[], drug="thalidomide", setting="post_asct",
                is_strategy=False, created_at=utcnow())).inserted_primary_key[0]
            conn.execute(Estimate.__table__.insert().values(  # type: ignore[attr-defined]
                trial_id=trial_id, endpoint="PFS", setting="post_asct",
                comparison="maintenance vs control", hr=0.7, log_hr=math.log(0.7), se=0.12,
                method="p_value_events", approximate=True, orientation_entered="maint_vs_control",
                verified=True, created_at=utcnow(), notes="kept"))
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert "derivation_inputs" in [c["name"] for c in _columns(conn, "estimates")]
            row = conn.execute(text(
                "SELECT hr, log_hr, se, method, notes, verified FROM estimates "
                "WHERE derivation_inputs IS NULL")).one()
        assert (row.hr, row.se, row.method, row.notes, bool(row.verified)) == (
            0.7, 0.12, "p_value_events", "kept", True)
        assert row.log_hr == pytest.approx(math.log(0.7), abs=1e-15)
        from sqlmodel import Session

        with Session(engine) as session:
            (estimate,) = session.exec(select(Estimate)).all()
            assert estimate.derivation_inputs is None and estimate.notes == "kept"
    finally:
        engine.dispose()


def _columns(conn: Any, table: str) -> list[dict[str, Any]]:
    from sqlalchemy import inspect

    return inspect(conn).get_columns(table)  # type: ignore[no-any-return]


def test_inputs_keep_the_digits_they_were_typed_with(app: Any, users: dict[str, str]) -> None:
    """Medians of "24.0" and "12.0" months, O−E "-3.50": a float reads back "24", "12" and
    "-3.5"; the page and the correction form show them as typed, and the stored numbers are
    the same numbers."""
    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    assert _post_estimate(curator, trial_id, method="medians", median_maintenance="24.0",
                          median_control="12.0", events_maintenance="120",
                          events_control="140").status_code == 303
    assert _post_estimate(curator, trial_id, method="o_minus_e", o_minus_e="-3.50",
                          variance="40", endpoint="OS").status_code == 303
    medians, oe = _estimates(app)
    assert medians.derivation_inputs is not None and oe.derivation_inputs is not None
    assert medians.derivation_inputs["median_maintenance"] == 24.0  # still a number
    assert oe.derivation_inputs["o_minus_e"] == -3.5
    page = as_role(app, users, "viewer").get(f"/trials/{trial_id}").text
    assert "derived from medians 24.0 vs 12.0 months and 120/140 events" in page
    assert "derived from O − E = -3.50 and V = 40" in page
    html, _ = _edit_form(curator, medians.id)
    assert 'name="median_control" type="text" value="12.0"' in html
    # typed plainly, nothing is kept beside the numbers (stored exactly as before)
    assert _post_estimate(curator, trial_id, method="medians", median_maintenance="30",
                          median_control="20", events="200", endpoint="TTP").status_code == 303
    plain = _estimates(app)[-1]
    assert plain.derivation_inputs is not None and "as_entered" not in plain.derivation_inputs
