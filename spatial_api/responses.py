"""JSON responses shared by every router: one serializer (orjson), one set of media types."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

JSON = "application/json"
GEOJSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
SCHEMA_JSON = "application/schema+json"


class SchemaJSONResponse(Response):
    """A JSON Schema document (its media type, for OpenAPI)."""

    media_type = SCHEMA_JSON


def json_response(
    body: Any, status: int = 200, media_type: str = JSON, headers: dict[str, str] | None = None
) -> Response:
    """``body`` serialised with orjson as a response of ``media_type`` (JSON by default)."""
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)
