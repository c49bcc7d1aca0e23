"""Raw request bodies, for the routes that read JSON themselves (GeoJSON features, merge
patches, spatial queries, GeoReport posts, reading batches): bounded in size, of a JSON
media type, and parsed with a bound on their nesting (``gis.jsontext``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException

from gis.errors import PayloadTooLarge
from gis.jsontext import parse_json
from spatial_api.responses import GEOJSON, JSON, MERGE_PATCH

JSON_TYPES = (JSON, GEOJSON, MERGE_PATCH)
"""The media types a JSON body may be sent as."""


def media_type(request: Request) -> str | None:
    """The media type of the request's body, lower case without parameters (None when the
    request does not say)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return None
    return declared.split(";", 1)[0].strip().lower()


def check_json_type(request: Request, accepted: tuple[str, ...] = JSON_TYPES) -> None:
    """415 unless the body is declared as one of ``accepted`` (a body that declares no type
    is read as JSON)."""
    declared = media_type(request)
    if declared is not None and declared not in accepted:
        raise HTTPException(
            415, f"the body must be sent as {', '.join(accepted)}, not {declared or 'nothing'}"
        )


async def read_bytes(request: Request, limit: int) -> bytes:
    """The request's body; 413 when it is larger than ``limit`` bytes."""
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    return raw


async def read_json(request: Request, limit: int, accepted: tuple[str, ...] = JSON_TYPES) -> Any:
    """The request's JSON body; 415 for another media type, 413 past ``limit`` bytes, 400
    when it is not JSON or nests too deeply."""
    check_json_type(request, accepted)
    return parse_json(await read_bytes(request, limit))
