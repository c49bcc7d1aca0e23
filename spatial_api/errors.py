"""Every error leaves the server as JSON: ``{status, code, message}``.

The domain errors (``gis.errors``) say what kind of failure happened; this module says which
HTTP status each kind is.
"""

from __future__ import annotations

import logging

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis.errors import (
    BadRequest,
    CityHexError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from layers.db.outage import outage
from spatial_api.rate_limit import TooManyRequests

HOW_TO_AUTHENTICATE = (
    "send 'Authorization: Bearer <key>' with a key an admin makes with "
    "'cityhex keys create --role ROLE' (or POST /auth/keys), or a short-lived token from "
    "POST /auth/token; see docs/auth.md"
)
"""What every 401 adds: how to get a key or a token."""

log = logging.getLogger("cityhex")

HTTP_STATUS: dict[type[CityHexError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Unprocessable: 422,
    PreconditionRequired: 428,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
}
"""The HTTP status of each kind of domain error (a subclass answers as its nearest listed
ancestor; a plain CityHexError is a 400)."""

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    428: "precondition_required",
    429: "too_many_requests",
}


def http_status(exc: CityHexError) -> int:
    """The HTTP status that answers ``exc``."""
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def cityhex_error_response(exc: CityHexError) -> Response:
    """The JSON error response of a domain error (a 401 says how to get a key or token)."""
    status = http_status(exc)
    message = exc.message
    if status == 401:
        message = f"{message.rstrip('.')}; {HOW_TO_AUTHENTICATE}"
    return error_response(status, exc.code, message, exc.details, exc.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: object = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON error response."""
    body: dict[str, object] = {"status": status, "code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
"""SQLSTATEs of text PostgreSQL cannot hold (a NUL character in text or in jsonb): only a
client's input carries one, so the answer is a 400 (the transaction has rolled back)."""


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a database error (None for a failure on the client side)."""
    return getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)


DATABASE_FAILURES = (
    DBAPIError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    PoolTimeout,
)
"""What the drivers raise when the database fails a request: an outage or a timeout is a
503 (see layers.db.outage), anything else a 500."""


async def database_failure_response(_: Request, exc: Exception) -> Response:
    """503 JSON for an outage or a statement timeout (the driver's words only in the log),
    500 for any other failure of the database."""
    if isinstance(exc, DBAPIError) and sqlstate(exc) in UNSTORABLE_TEXT:
        return error_response(
            400, "invalid_text", "a text value holds a NUL character, which cannot be stored"
        )
    failure = outage(exc)
    if failure is None:
        log.exception("database error", exc_info=exc)
        return error_response(500, "internal_error", "the database refused the request")
    log.warning("%s: %s: %s", failure.code, type(exc).__name__, exc)
    return cityhex_error_response(failure)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the application answers at the request's path (Starlette
    names only those of the first route that matches the path)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= context.methods or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Render CityHex errors, validation errors, HTTP errors and database outages as JSON."""

    @app.exception_handler(CityHexError)
    async def _cityhex(_: Request, exc: CityHexError) -> Response:
        return cityhex_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": e.get("loc"), "msg": e.get("msg")} for e in exc.errors()]
        return error_response(400, "invalid_parameter", _describe_validation(exc), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    for kind in DATABASE_FAILURES:
        app.add_exception_handler(kind, database_failure_response)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "an unexpected error occurred")
