"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from layers.db.engine import create_async_engine
from layers.db.replicas import ReplicaSet
from layers.db.settings import storage_settings
from spatial_api.audit_trail import AuditTrail
from spatial_api.auth import new_key_cache, new_token_verifier
from spatial_api.compression import CompressionMiddleware
from spatial_api.cors import install_cors
from spatial_api.disconnect import CancelOnDisconnect
from spatial_api.errors import install_error_handlers
from spatial_api.idempotency import Idempotency
from spatial_api.input_guard import InputGuard
from spatial_api.log_redaction import install_log_redaction
from spatial_api.metrics import MetricsMiddleware, observe_replicas
from spatial_api.oidc import new_identity_provider
from spatial_api.openapi import install_openapi
from spatial_api.openapi_layers import install_layer_items
from spatial_api.routers import ROUTERS
from spatial_api.settings import api_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool, the read replicas' health check and the identity provider's
    key cache for the life of the process (routers open their own services, such as the
    tile service, inside it)."""
    app.state.engine = create_async_engine(app.state.database_url)
    settings = storage_settings()
    app.state.replicas = ReplicaSet(
        settings.replicas(),
        settings.replica_max_lag_s,
        on_check=observe_replicas,
    )
    app.state.replicas.start()
    app.state.oidc = new_identity_provider()
    try:
        yield
    finally:
        await app.state.replicas.close()
        await app.state.engine.dispose()


def create_app(database_url: str | None = None) -> FastAPI:
    """A CityHex application serving the configured database (or ``database_url``)."""
    app = FastAPI(
        title="CityHex",
        version="0.1.0",
        description="The spatial backbone of a city's management system.",
        lifespan=lifespan,
        docs_url=None,  # served by spatial_api.routers.docs, from local assets
        redoc_url=None,
    )
    app.state.database_url = database_url
    app.state.key_cache = new_key_cache()
    app.state.token_verifier = new_token_verifier()  # checks POST /auth/token's tokens
    install_log_redaction()  # no key or token in access logs (?access_token=, ?api_key=)
    install_error_handlers(app)
    app.add_middleware(Idempotency)  # innermost: it stores the answer as the route gave it
    app.add_middleware(CancelOnDisconnect)  # inside the metrics: they count abandoned requests
    # innermost first: compression sees the answers of every route and of the tile fast path,
    # CORS marks them all (and answers preflights), the metrics time everything
    app.add_middleware(CompressionMiddleware)
    install_cors(app, api_settings().cors_origins)
    app.add_middleware(InputGuard)  # NUL in a path or query: 400 before any route
    app.add_middleware(MetricsMiddleware)  # it counts what the guard refuses too
    app.add_middleware(AuditTrail)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    install_layer_items(app)  # after: each layer's items path copies the documented one
    return app
