"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from layers.db.engine import create_async_engine
from spatial_api.auth import new_key_cache
from spatial_api.errors import install_error_handlers
from spatial_api.input_guard import InputGuard
from spatial_api.metrics import MetricsMiddleware
from spatial_api.openapi import install_openapi
from spatial_api.routers import ROUTERS


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool for the life of the process (routers open their own
    services, such as the tile service, inside it)."""
    app.state.engine = create_async_engine(app.state.database_url)
    try:
        yield
    finally:
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
    install_error_handlers(app)
    app.add_middleware(InputGuard)
    app.add_middleware(MetricsMiddleware)  # outermost: it counts what the guard refuses too
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    return app
