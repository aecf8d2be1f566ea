"""The OpenAPI schema of the JSON API (``GET /api/openapi.json``), and the pieces its routes
use to describe themselves.

The handlers read their bodies themselves (to answer a malformed one in the API's own words,
see ``routes_api._json_object``), so FastAPI knows neither the bodies nor the errors: the
schema would offer no body at all and promise a 422 ``{"detail": [...]}`` that ``errors.py``
turns into a 400 ``{"error", "code"}``. Each API route therefore lists its answers with
:func:`api_errors` (which always adds ``4XX``: FastAPI then adds no 422) and its body with
:func:`json_body`.

The schema covers the routes under ``/api/`` only. The pages and their forms are for
browsers: they need a login's cookie and a CSRF token, answer HTML (errors included, never
``ApiError``), and would only mislead a client generator.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from screening.web.errors import ERROR_CODES, is_api


class ApiError(BaseModel):
    """Every refusal of the API: one line saying what is wrong and, in brackets, what to do,
    and the status's machine-readable code."""

    error: str
    code: str = Field(json_schema_extra={"enum": [*ERROR_CODES.values(), "error"]})
    #: POST /api/estimates/baseline only: each bad field and the form's message for it
    fields: dict[str, str] | None = None


_MEANING: dict[int | str, str] = {
    400: "malformed: a parameter (or a query parameter the route does not take), the JSON "
         "body (a key given twice included) or one of its fields (named in `error`)",
    401: "no valid API token (or, for reads, no browser login)",
    403: "the token's role may not do this (a viewer writing; a rule of the review)",
    404: "no such record, trial or estimate",
    409: "well-formed, but not in the object's present state (already withdrawn, "
         "resolved, voted on, ...)",
    412: "If-Match (or the body's `version`) names a version that is no longer current: "
         "someone changed the object since you read it; nothing was saved",
    "4XX": "any other refusal (e.g. 405; 413 for a request body over 1 MiB), in the same "
           "shape",
}


def api_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer ``statuses`` (always also 4XX: FastAPI
    then adds no 422, which this API never sends: errors.py answers those with 400)."""
    keys: tuple[int | str, ...] = (*statuses, "4XX")
    return {status: {"model": ApiError, "description": _MEANING[status]} for status in keys}


READ = api_errors(400, 401)
READ_ONE = api_errors(400, 401, 404)


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON request body."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}


def closed_body(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """A body with exactly these keys: any other is refused (400, ``unknown field``)."""
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def api_schema(app: FastAPI) -> dict[str, Any]:
    """The schema of ``app``'s ``/api/`` routes: FastAPI's schema of the whole app (which it
    caches) with the pages' paths left out, and the component schemas only they used."""
    schema = copy.deepcopy(app.openapi())
    schema["paths"] = {path: ops for path, ops in schema["paths"].items()
                       if is_api({"path": path})}
    components: dict[str, Any] = schema.get("components", {}).get("schemas", {})
    used: set[str] = set()
    todo: list[Any] = [schema["paths"]]
    while todo:  # the components the API's paths name, and those they name in turn
        for name in _REF.findall(json.dumps(todo.pop())):
            if name not in used and name in components:
                used.add(name)
                todo.append(components[name])
    if components:
        schema["components"]["schemas"] = {k: v for k, v in components.items() if k in used}
    return schema


_REF = re.compile(r'"#/components/schemas/([^"]+)"')


__all__ = ["READ", "READ_ONE", "ApiError", "api_errors", "api_schema", "closed_body",
           "json_body"]
