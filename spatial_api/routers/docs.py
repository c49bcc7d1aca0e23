"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), which fetch
nothing from outside this server.

Their scripts and styles come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc
2, refreshed with its releases), served under ``/static/docs/<its version>/``: a new release
is a new URL, so browsers may keep the files for a year. ReDoc loads no web fonts. Both pages
carry a Content-Security-Policy that lets the browser load nothing from elsewhere: ReDoc's
side menu always asks for its maker's logo from their CDN, and the browser refuses it.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from gis.errors import NotFound

ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSET_RELEASE = version("fastapi-offline")
ASSET_PATH = "/static/docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
"""The files the pages load, with their media types."""
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
"""No badge from the online validator (swagger.io) under the title."""
THIS_SERVER_ONLY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"
}
"""Scripts, styles, images and calls from this server only (the pages' own inline script and
styles, icons as data URLs, ReDoc's search worker as a blob)."""

router = APIRouter(include_in_schema=False)


def asset_url(request: Request, name: str) -> str:
    """The URL of the documentation asset ``name`` on this server."""
    return f"{request.scope.get('root_path', '')}{ASSET_PATH}/{ASSET_RELEASE}/{name}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on this server's OpenAPI definition."""
    page = get_swagger_ui_html(
        openapi_url=f"{request.scope.get('root_path', '')}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=asset_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=asset_url(request, "swagger-ui.css"),
        swagger_favicon_url=asset_url(request, "favicon.png"),
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    page.headers.update(THIS_SERVER_ONLY)
    return page


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc on this server's OpenAPI definition."""
    page = get_redoc_html(
        openapi_url=f"{request.scope.get('root_path', '')}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=asset_url(request, "redoc.standalone.js"),
        redoc_favicon_url=asset_url(request, "favicon.png"),
        with_google_fonts=False,
    )
    page.headers.update(THIS_SERVER_ONLY)
    return page


@router.get(ASSET_PATH + "/{release}/{name}")
async def asset(release: str, name: str) -> FileResponse:
    """A script, style sheet or icon of the documentation pages, cacheable for a year."""
    if release != ASSET_RELEASE or name not in ASSETS:
        raise NotFound(f"no documentation asset {release}/{name}")
    return FileResponse(ASSET_DIR / name, media_type=ASSETS[name], headers=IMMUTABLE)
