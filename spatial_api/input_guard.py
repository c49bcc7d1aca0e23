"""The guard in front of every route: a NUL character in the path or the query string is
refused with a 400 before any route sees it.

No text column, parameter or literal of PostgreSQL can hold a NUL, and no CityHex name,
code or filter has one; refusing it here, once, keeps every route and every query from
meeting it (a JSON body's text is checked where it is parsed or stored).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from spatial_api.errors import error_response


def holds_nul(scope: Scope) -> str | None:
    """Which part of the request (``path`` or ``query``) holds a NUL character, if one does."""
    if "\x00" in scope["path"]:
        return "path"
    if b"\x00" in unquote_to_bytes(scope["query_string"]):
        return "query"
    return None


class InputGuard:
    """Answers 400 ``invalid_parameter`` to an HTTP request whose path or query string holds
    a NUL character (raw or percent-encoded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = holds_nul(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        response = error_response(
            400, "invalid_parameter", f"the {where} must not contain a NUL character"
        )
        await response(scope, receive, send)
