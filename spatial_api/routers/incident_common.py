"""What the incident routers share: the caller as a workflow actor, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from layers.incidents import Actor, Incident
from spatial_api.auth import Principal

READERS = ("app", "inspector", "editor", "dispatcher")
"""Roles that read cases (admin always may)."""


def actor_of(principal: Principal) -> Actor:
    """The workflow's view of the caller."""
    return Actor(role=principal.role, name=principal.actor, user_id=principal.inspector_id)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response rendered with orjson."""
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def incident_response(incident: Incident, status: int = 200, **extra: Any) -> Response:
    """The case as JSON with its version as ETag."""
    return json_response(
        {**incident.as_dict(), **extra},
        status,
        headers={"ETag": f'"{incident.version}"', "Location": f"/incidents/{incident.id}"},
    )
