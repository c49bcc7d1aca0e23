"""The body of every error answer."""

from __future__ import annotations

from typing import Any

from spatial_api.schemas import Schema


class Error(Schema):
    """What went wrong: the HTTP status, a machine-readable code, a message for people and,
    for some errors, details a client can act on."""

    status: int
    code: str
    message: str
    details: Any = None
