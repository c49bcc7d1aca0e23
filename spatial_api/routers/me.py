"""``GET /auth/me``: who the caller is, so a client (the web app) shows only what the
caller's role may do. The API still judges every request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from spatial_api.deps import Caller
from spatial_api.schemas.me import Me

router = APIRouter(tags=["auth"])


@router.get(
    "/auth/me",
    summary="Who the caller is: role, user and scope",
    response_model=Me,
    response_model_exclude_none=True,
)
async def me(principal: Caller) -> dict[str, Any]:
    """The caller's role (``anonymous`` without a key), name, inspector id and scope (absent
    fields: none); 401 for an unknown key or invalid token."""
    return {
        "role": principal.role,
        "name": principal.name,
        "inspector_id": principal.inspector_id,
        "scope": principal.scope.as_dict(),
    }
