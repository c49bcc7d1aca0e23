"""Landing page, health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from layers.db.health import database_versions
from spatial_api.deps import Engine
from spatial_api.errors import error_response
from spatial_api.metrics import render_metrics
from spatial_api.proxies import public_base_url
from spatial_api.routers.features import LANDING_LINKS as FEATURE_LINKS
from spatial_api.schemas.system import Health, Landing
from spatial_api.settings import api_settings

router = APIRouter(tags=["system"])

LINKS = [
    ("self", "/", "This document"),
    ("service-desc", "/openapi.json", "The OpenAPI definition"),
    ("service-doc", "/docs", "Interactive API documentation"),
    ("health", "/healthz", "Health: 200 when the database answers, 503 when it does not"),
    ("metrics", "/metrics", "Prometheus metrics"),
]


def link_list(request: Request, links: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Absolute links for this server."""
    base = public_base_url(request)
    return [{"rel": rel, "href": base + href, "title": title} for rel, href, title in links]


@router.get("/", summary="Landing page: what this server offers", response_model=Landing)
async def landing(request: Request) -> dict[str, object]:
    """The links to everything this server offers."""
    return {
        "title": "CityHex",
        "description": "Spatial operations server: H3 city grid, vector tiles, OGC API "
        "Features, incidents, sensors and analytics on PostGIS.",
        "links": link_list(request, LINKS + FEATURE_LINKS),
    }


@router.get(
    "/healthz",
    summary="Health: whether the database answers",
    response_model=Health,
    responses={503: {"description": "The database does not answer"}},
)
async def healthz(engine: Engine) -> dict[str, object] | Response:
    """200 with the database versions when the database answers, else 503."""
    try:
        versions = await database_versions(engine, api_settings().health_timeout_seconds)
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        return error_response(503, "database_unavailable", f"the database does not answer: {exc}")
    return {"status": "ok", "database": versions}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Request counts and latencies in the Prometheus text format."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
