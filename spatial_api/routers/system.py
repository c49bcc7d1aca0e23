"""Landing page, health and metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response

from layers.db.health import database_versions
from layers.db.outage import UNAVAILABLE, UNAVAILABLE_MESSAGE
from spatial_api.deps import Engine
from spatial_api.errors import error_response
from spatial_api.metrics import render_metrics
from spatial_api.pages import landing_page, wants_html
from spatial_api.proxies import public_base_url
from spatial_api.routers.features import LANDING_LINKS as FEATURE_LINKS
from spatial_api.schemas.system import Health, Landing
from spatial_api.settings import api_settings

log = logging.getLogger("cityhex")
router = APIRouter(tags=["system"])

LINKS = [
    ("self", "/", "This document"),
    ("service-desc", "/openapi.json", "The OpenAPI definition"),
    ("service-doc", "/docs", "Interactive API documentation"),
    ("app", "/app", "The web app: inspectors, dispatchers, GIS staff and a layer preview"),
    ("health", "/healthz", "Health: 200 when the database answers, 503 when it does not"),
    ("metrics", "/metrics", "Prometheus metrics"),
    ("styles", "/styles", "MapLibre map styles of the layers"),
    ("open-data", "/open/", "Open data: the catalog and downloads, without personal data"),
]
TITLE = "CityHex"
DESCRIPTION = (
    "Spatial operations server: H3 city grid, vector tiles, OGC API Features, incidents, "
    "sensors and analytics on PostGIS."
)


def link_list(request: Request, links: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Absolute links for this server."""
    base = public_base_url(request)
    return [{"rel": rel, "href": base + href, "title": title} for rel, href, title in links]


@router.get(
    "/",
    summary="Landing page: what this server offers (HTML for browsers, else JSON)",
    response_model=Landing,
    responses={200: {"content": {"text/html": {}}}},
)
async def landing(
    request: Request,
    accept: str | None = Header(None),
    f: str | None = Query(None, pattern="^(json|html)$", description="json or html"),
) -> dict[str, object] | Response:
    """The links to everything this server offers: a page for a browser, JSON otherwise."""
    links = link_list(request, LINKS + FEATURE_LINKS)
    if wants_html(accept, f):
        return HTMLResponse(landing_page(TITLE, DESCRIPTION, links))
    return {"title": TITLE, "description": DESCRIPTION, "links": links}


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
        log.warning("health check: %s: %s", type(exc).__name__, exc)
        return error_response(503, UNAVAILABLE, UNAVAILABLE_MESSAGE)
    return {"status": "ok", "database": versions}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Request counts and latencies in the Prometheus text format."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
