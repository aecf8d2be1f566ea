"""Every route of the web app and its API, sent hostile identifiers, query values, form fields
and JSON bodies by a signed-in admin, answers with a 2xx, 3xx or 4xx: never a 5xx, whose page
says nothing the user can act on. The routes, their query parameters and the API's body fields
are read from the app and its OpenAPI schema, so a new route is swept the day it is added; the
form fields are the names of every form on the pages the sweep opens. Real app and database
(SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL, whose integer columns overflow where
SQLite's do not)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import test_web
import test_web_audit
from fastapi.testclient import TestClient
from sqlmodel import select
from test_web import app_routes, csrf_from, db, login

from screening.web.auth import issue_api_token
from store.models import User

app = test_web.app
users = test_web.users
records = test_web.records
trail = test_web_audit.trail

#: Identifiers: none such, negative, past a 32-bit and a 64-bit integer column, not a number.
IDS = ("0", "-1", "2147483648", "9223372036854775808", "abc")
QUERY_VALUES = ("-1", "9223372036854775808", "abc", "x" * 3000, "nan")
FORM_VALUES = (" ", "-1", "9223372036854775808", "1e309", "nan", "x" * 20000, "2026-13-45")
JSON_VALUES: tuple[Any, ...] = ([], {}, -1, 10**30, "x" * 20000)
JUNK_BODIES = ("[]", "null", '"x"', "{", "[" * 100_000, '{"a": NaN}')
#: Routes that end the admin's session or replace its credentials mid-sweep; each has tests of
#: its own refusals (tests/test_web_account*.py, tests/test_web_security.py).
LEFT_OUT = re.compile(r"^/logout$|^/account/password$|/token(/revoke)?$|/role$|/active$")


def body_fields(schema: dict[str, Any], path: str, method: str) -> list[str]:
    """The JSON body's field names of one API route, $refs followed."""
    components = schema.get("components", {}).get("schemas", {})
    names: list[str] = []

    def visit(node: Any, depth: int = 0) -> None:
        if depth > 8:
            return
        if isinstance(node, dict):
            if "$ref" in node:
                visit(components.get(node["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
            names.extend(k for k in node.get("properties", {}) if k not in names)
            for value in node.values():
                visit(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                visit(value, depth + 1)

    operation = schema.get("paths", {}).get(path, {}).get(method.lower(), {})
    visit(operation.get("requestBody", {}))
    return names


def test_no_hostile_request_gets_a_server_error(app: Any, users: dict[str, str], records: int,
                                                trail: dict[str, int]) -> None:
    browser = TestClient(app, raise_server_exceptions=False)
    assert login(browser, users["admin"]).status_code == 303
    token = csrf_from(browser.get("/account").text)
    with db(app) as session:
        admin = session.exec(select(User).where(User.email == users["admin"])).one()
        bearer = issue_api_token(session, admin, actor="test", days=1)
        session.commit()
    api = TestClient(app, raise_server_exceptions=False,
                     headers={"Authorization": f"Bearer {bearer}"})
    real = {"pmid": "90000002", "trial_id": str(trail["ALPHA"]),
            "estimate_id": str(trail["ALPHA-estimate"])}
    fields: set[str] = set()
    for page in ("/", "/records/90000002", f"/trials/{trail['ALPHA']}", "/trials/new",
                 f"/estimates/{trail['ALPHA-estimate']}/edit", "/estimates", "/fetch",
                 "/admin/users", "/admin/subscribers", "/account"):
        fields |= set(re.findall(r'name="([A-Za-z_0-9]+)"', browser.get(page).text))
    fields.discard("csrf_token")
    assert {"hr", "ci_low", "decision", "name", "email"} <= fields  # the forms were read
    schema = api.get("/api/openapi.json").json()

    swept: set[str] = set()
    answers: dict[int, int] = {}
    failures: list[tuple[str, str, str, int]] = []
    for route in app_routes(app):
        path = route.path
        if LEFT_OUT.search(path):
            continue
        params = [p.name for p in route.dependant.path_params]
        queries = [p.name for p in route.dependant.query_params]
        client = api if path.startswith("/api/") else browser
        for method in sorted(route.methods - {"HEAD"}):
            values = [dict(zip(params, v, strict=True))
                      for v in itertools.product(IDS, repeat=len(params))]
            if all(p in real for p in params):  # and the real objects, or no parameter
                values.append({p: real[p] for p in params})
            for given in values:
                url = path.format(**given)
                reaches = all(given[p] == real.get(p) for p in params)
                headers = {"x-csrf-token": token}
                requests: list[dict[str, Any]]
                if method == "GET":
                    requests = [{}, *({"params": {q: v}} for q in queries
                                      for v in QUERY_VALUES)]
                elif path.startswith("/api/"):
                    json_headers = {**headers, "content-type": "application/json"}
                    requests = [{"content": b, "headers": json_headers} for b in JUNK_BODIES]
                    if reaches:
                        names = body_fields(schema, path, method)
                        requests += [{"json": {n: v}, "headers": headers}
                                     for n in names for v in JSON_VALUES]
                        requests += [{"json": dict.fromkeys(names, v), "headers": headers}
                                     for v in JSON_VALUES]
                else:
                    requests = [{"data": {"csrf_token": token}}]
                    if reaches:
                        requests += [{"data": {"csrf_token": token, **dict.fromkeys(fields, v)}}
                                     for v in FORM_VALUES]
                for request in requests:
                    response = client.request(method, url, **request)
                    answers[response.status_code] = answers.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        failures.append((method, url, str(request)[:120], response.status_code))
            swept.add(f"{method} {path}")
    assert not failures, "\n".join(map(str, failures))
    # Every route but the few left out was swept, and the sweep reached past the refusals:
    # requests were taken (2xx), and each kind of refusal was met.
    every = {f"{m} {r.path}" for r in app_routes(app) for m in r.methods - {"HEAD"}
             if not LEFT_OUT.search(r.path)}
    assert swept == every and len(every) > 80
    assert answers.get(200, 0) > 50 and {400, 404} <= set(answers), answers
