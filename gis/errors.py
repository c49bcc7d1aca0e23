"""Errors that every CityHex package raises and the API renders as JSON.

Each carries an HTTP status, a machine-readable code and a human message, so a
function deep in the stack can say exactly what is wrong with its input.
"""

from __future__ import annotations

from typing import Any


class CityHexError(Exception):
    """A failure that the caller can act on: status, code, message and optional details."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error."""
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(CityHexError):
    """The request is malformed (a parameter out of range, an unparsable value)."""

    status = 400
    code = "bad_request"


class Unauthorized(CityHexError):
    """No valid credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(CityHexError):
    """Valid credentials without the role the action needs."""

    status = 403
    code = "forbidden"


class NotFound(CityHexError):
    """The addressed resource does not exist."""

    status = 404
    code = "not_found"


class Conflict(CityHexError):
    """The action does not fit the resource's current state."""

    status = 409
    code = "conflict"


class PreconditionFailed(CityHexError):
    """The If-Match precondition did not hold: the resource changed since it was read."""

    status = 412
    code = "precondition_failed"


class PreconditionRequired(CityHexError):
    """The request must be conditional (If-Match) and was not."""

    status = 428
    code = "precondition_required"


class Unprocessable(CityHexError):
    """Well-formed input that breaks a rule (invalid geometry, wrong property type)."""

    status = 422
    code = "unprocessable"


class ServiceUnavailable(CityHexError):
    """A dependency (the database) cannot be reached right now."""

    status = 503
    code = "service_unavailable"
