"""Errors that every CityHex package raises when its input or state does not allow an action.

Each carries a machine-readable code and a human message (and optional details and
headers), so a function deep in the stack can say exactly what is wrong with its input.
The class says what kind of failure it is; ``spatial_api.errors`` maps each class to an
HTTP status.
"""

from __future__ import annotations

from typing import Any


class CityHexError(Exception):
    """A failure that the caller can act on: code, message and optional details."""

    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class BadRequest(CityHexError):
    """The request is malformed (a parameter out of range, an unparsable value)."""

    code = "bad_request"


class Unauthorized(CityHexError):
    """No valid credentials."""

    code = "unauthorized"


class Forbidden(CityHexError):
    """Valid credentials without the role the action needs."""

    code = "forbidden"


class NotFound(CityHexError):
    """The addressed resource does not exist."""

    code = "not_found"


class Conflict(CityHexError):
    """The action does not fit the resource's current state."""

    code = "conflict"


class PreconditionFailed(CityHexError):
    """The If-Match precondition did not hold: the resource changed since it was read."""

    code = "precondition_failed"


class PreconditionRequired(CityHexError):
    """The request must be conditional (If-Match) and was not."""

    code = "precondition_required"


class PayloadTooLarge(CityHexError):
    """The input is larger than one request may carry."""

    code = "payload_too_large"


class UnsupportedMediaType(CityHexError):
    """The input is not of a type the action reads (judged from its bytes, not its name)."""

    code = "unsupported_media_type"


class Unprocessable(CityHexError):
    """Well-formed input that breaks a rule (invalid geometry, wrong property type)."""

    code = "unprocessable"


class ServiceUnavailable(CityHexError):
    """A dependency (the database) cannot be reached right now."""

    code = "service_unavailable"
