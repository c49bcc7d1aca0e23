"""What the incident routers share: the caller as a workflow actor, the case as a response."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from layers.incidents.cases import Actor, Incident
from spatial_api.auth import Principal
from spatial_api.responses import json_response


def actor_of(principal: Principal) -> Actor:
    """The workflow's view of the caller."""
    return Actor(role=principal.role, name=principal.actor, user_id=principal.inspector_id)


def incident_response(incident: Incident, status: int = 200, **extra: Any) -> Response:
    """The case as JSON with its version as ETag."""
    return json_response(
        {**incident.as_dict(), **extra},
        status,
        headers={"ETag": f'"{incident.version}"', "Location": f"/incidents/{incident.id}"},
    )
