"""HTTP routers: each translates HTTP to calls into the package that owns the logic.

``ROUTERS`` is every router of the application, in matching order; ``create_app`` includes
them in this order and nothing else registers a route.
"""

from __future__ import annotations

from fastapi import APIRouter

from spatial_api.routers import (
    analytics,
    attachments,
    audit,
    auth,
    categories,
    docs,
    events,
    exports,
    features,
    grid,
    imports,
    incidents,
    me,
    open311,
    open_data,
    patrol,
    queries,
    sensors,
    styles,
    system,
    tile_fast_path,
    tiles,
    webapp,
)

ROUTERS: list[APIRouter] = [
    tile_fast_path.router,  # first: plain tile requests skip routing (one cheap check for others)
    grid.router,  # next: /grid/lookup is the hottest route
    system.router,
    sensors.router,
    analytics.router,
    categories.router,  # before incidents: /incidents/categories before /incidents/{id}
    incidents.router,
    attachments.router,
    open311.router,
    events.router,
    exports.router,  # before tiles: /tiles/export/area.pmtiles is no tile path
    tiles.router,
    styles.router,
    features.router,
    queries.router,
    imports.router,
    open_data.router,
    audit.router,
    auth.router,  # tokens and the keys' lifecycle
    patrol.router,
    docs.router,
    me.router,
    webapp.router,
]
