"""Who the caller is (``GET /auth/me``)."""

from __future__ import annotations

from spatial_api.schemas import Schema


class Me(Schema):
    """The caller's role, name, user and scope, as its credentials name them."""

    role: str
    name: str | None = None
    inspector_id: int | None = None
    scope: dict[str, list[str]]
    """The limited dimensions (districts, departments, layers), each a sorted list; absent:
    no limit beside the role."""
