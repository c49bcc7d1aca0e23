"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from layers.db.engine import create_async_engine
from spatial_api.auth import new_key_cache
from spatial_api.errors import install_error_handlers
from spatial_api.metrics import MetricsMiddleware
from spatial_api.routers import analytics, imports, open_data, sensors, styles, system, tiles
from spatial_api.routers.features import LANDING_LINKS as FEATURE_LINKS
from spatial_api.routers.features import router as features_router
from spatial_api.routers.grid import router as grid_router
from spatial_api.routers.incidents import api as incident_api
from spatial_api.routers.queries import router as queries_router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool for the life of the process."""
    app.state.engine = create_async_engine(app.state.database_url)
    app.state.tiles = await tiles.open_tile_service(app)
    try:
        yield
    finally:
        await app.state.tiles.close()
        await app.state.engine.dispose()


def create_app(database_url: str | None = None) -> FastAPI:
    """A CityHex application serving the configured database (or ``database_url``)."""
    app = FastAPI(
        title="CityHex",
        version="0.1.0",
        description="The spatial backbone of a city's management system.",
        lifespan=lifespan,
    )
    app.state.database_url = database_url
    app.state.key_cache = new_key_cache()
    app.state.extra_links = []
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.include_router(grid_router)  # first: /grid/lookup is the hottest route
    app.include_router(system.router)
    app.include_router(sensors.router)
    app.include_router(analytics.router)
    app.include_router(incident_api)
    tiles.install(app)
    app.include_router(styles.router)
    app.include_router(features_router)
    app.include_router(queries_router)
    app.include_router(imports.router)
    app.include_router(open_data.router)
    app.state.extra_links.extend(FEATURE_LINKS)
    return app
