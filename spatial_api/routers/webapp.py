"""``/app``: the web app for inspectors, dispatchers, GIS staff and a layer preview (the
page and the built files of ``spatial_api/web``; see ``spatial_api.webapp``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from spatial_api.openapi import errors
from spatial_api.pages import wants_html
from spatial_api.proxies import public_base_url
from spatial_api.webapp import (
    IMMUTABLE,
    MEDIA_TYPES,
    NO_CACHE,
    NOT_BUILT,
    NotBuilt,
    app_page,
    asset_file,
    current_build,
    service_worker,
)

router = APIRouter(tags=["web app"])
NOT_BUILT_503 = {
    503: {
        "description": "The web app is not built (for browsers, a page saying how to build it)",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
            "text/html": {},
        },
    }
}


@router.get(
    "/app",
    summary="The web app (HTML)",
    response_class=HTMLResponse,
    responses=NOT_BUILT_503,
)
async def app(request: Request) -> HTMLResponse:
    """The app's page, never cached (it names the current build's files); 503 when it is
    not built, with a page saying how to build it for a browser."""
    try:
        build = current_build()
    except NotBuilt:
        if not wants_html(request.headers.get("accept"), None):
            raise
        return HTMLResponse(NOT_BUILT, 503, headers={"Cache-Control": NO_CACHE})
    page = app_page(f"{public_base_url(request)}/app/assets", build)
    headers = {"Cache-Control": NO_CACHE, "Content-Security-Policy": build.csp}
    return HTMLResponse(page, headers=headers)


@router.get("/app/", include_in_schema=False)
async def app_slash() -> RedirectResponse:
    """``/app/`` is ``/app``."""
    return RedirectResponse("/app", 308)


@router.get(
    "/app/assets/{name}",
    summary="A file of the web app's build (hashed name, cached for a year)",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/javascript": {}, "text/css": {}}, "description": "The file"},
        **errors(404, 503),
    },
)
async def asset(name: Annotated[str, Path(max_length=200)]) -> FileResponse:
    """One file the current build lists; 404 for any other name."""
    path, media_type = asset_file(name, current_build())
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": IMMUTABLE})


@router.get(
    "/app/sw.js",
    summary="The web app's service worker (keeps the app for offline starts)",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/javascript": {}}, "description": "The script"},
        **errors(503),
    },
)
async def worker() -> FileResponse:
    """The service worker, never cached (a new build names new files), allowed to serve the
    whole app (``Service-Worker-Allowed: /app``)."""
    headers = {"Cache-Control": NO_CACHE, "Service-Worker-Allowed": "/app"}
    return FileResponse(service_worker(), media_type=MEDIA_TYPES["js"], headers=headers)
