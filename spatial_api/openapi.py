"""The OpenAPI document: FastAPI's, completed with every error status each operation can
answer, all with the one error body (``spatial_api.schemas.errors.Error``).

FastAPI documents what a route declares, plus a 422 of its own for validation errors,
which CityHex answers with a 400. What an operation can answer follows from what it is:

- 400 for every operation: every request passes the NUL guard, and its parameters and body
  are checked;
- 401 and 403 where the operation looks at the caller (it declares the bearer scheme);
- 404 where the path names something (a path parameter);
- 412 and 428 where an ``If-Match`` header makes a write conditional;
- 503 where the operation uses the database (an API key's lookup included);
- and whatever a route declares itself with :func:`errors` (a layer named in the query that
  is not there, a conflict, a body too large or of the wrong type, a rule broken).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from spatial_api.auth import caller_lookup, current_principal
from spatial_api.deps import (
    get_connection,
    get_database_url,
    get_engine,
    get_grid_lookup_pool,
    get_incident_events,
    get_read_connection,
    get_read_engine,
    get_tile_service,
)
from spatial_api.responses import JSON
from spatial_api.schemas.errors import Error

DESCRIPTIONS = {
    400: "Bad request: a parameter or the body is malformed",
    401: "No valid API key: the operation, or the data asked for, needs one",
    403: "The key's role may not do this",
    404: "Not found: what the path or a parameter names does not exist",
    409: "Conflict with the current state",
    412: "If-Match does not hold the current ETag: the resource changed",
    413: "The body is too large",
    415: "The body is not of a media type the operation reads",
    422: "Well-formed input that breaks a rule",
    428: "If-Match is required",
    429: "Too many requests: try again later",
    503: "The database is unavailable",
}
"""What each error status means, as the document says it."""
ERROR_CONTENT = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
DATABASE: set[Callable[..., Any]] = {
    get_engine,
    get_connection,
    get_read_engine,
    get_read_connection,
    get_tile_service,
    get_grid_lookup_pool,
    get_incident_events,
    get_database_url,
    current_principal,
    caller_lookup,
}
"""The dependencies that reach the database (the caller's, through the key lookup)."""
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
"""FastAPI's schemas of its 422, which CityHex does not answer."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer ``statuses`` beyond those every
    operation of its kind answers (see the module)."""
    return {s: {"model": Error, "description": DESCRIPTIONS[s]} for s in statuses}


def calls(dependant: Dependant) -> Iterator[Any]:
    """Every callable in a dependency tree."""
    for sub in dependant.dependencies:
        yield sub.call
        yield from calls(sub)


def error_statuses(route: APIRoute, operation: dict[str, Any]) -> set[int]:
    """The error statuses every operation like ``operation`` can answer."""
    statuses = {400}
    parameters = operation.get("parameters", [])
    if operation.get("security"):
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if any(p.get("in") == "header" and p["name"].lower() == "if-match" for p in parameters):
        statuses |= {412, 428}
    if any(call in DATABASE for call in calls(route.dependant)):
        statuses.add(503)
    return statuses


def is_fastapi_validation(response: dict[str, Any] | None) -> bool:
    """Whether ``response`` is FastAPI's own 422 for validation errors."""
    schema = (response or {}).get("content", {}).get(JSON, {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")


def document_errors(schema: dict[str, Any], app: FastAPI) -> None:
    """Give every operation of ``schema`` its error statuses, each with the Error body, in
    place of FastAPI's validation 422."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in context.methods or ():
            operation = schema["paths"][context.path][method.lower()]
            responses = operation["responses"]
            if is_fastapi_validation(responses.get("422")):
                del responses["422"]
            for status in sorted(error_statuses(route, operation)):
                responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[0] in "45":
                    response.setdefault("content", ERROR_CONTENT)
    for name in FASTAPI_VALIDATION:
        components.pop(name, None)


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with the error answers of every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            document_errors(schema, app)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
