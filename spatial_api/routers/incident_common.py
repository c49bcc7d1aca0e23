"""What the incident routers share: the caller as a workflow actor, the case as a response."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from layers.incidents.cases import Actor, Incident
from spatial_api.auth import Principal


def actor_of(principal: Principal) -> Actor:
    """The workflow's view of the caller."""
    return Actor(
        role=principal.role,
        name=principal.actor,
        user_id=principal.inspector_id,
        scope=principal.scope,
    )


def case_body(response: Response, incident: Incident, status: int = 200, **extra: Any) -> dict:
    """The case as a response body; sets the status, the version as ETag and the case's
    URL as Location on ``response``."""
    response.status_code = status
    response.headers["ETag"] = f'"{incident.version}"'
    response.headers["Location"] = f"/incidents/{incident.id}"
    return {**incident.as_dict(), **extra}
