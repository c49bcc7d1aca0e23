"""MapLibre styles over HTTP, pointing at this server's TileJSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gis.errors import NotFound
from spatial_api.proxies import public_base_url
from spatial_api.schemas.system import StyleList
from styles import load_style, style_names, style_title

router = APIRouter(tags=["styles"])


@router.get("/styles", summary="The map styles this server offers", response_model=StyleList)
async def list_styles(request: Request) -> dict[str, list[dict[str, str]]]:
    """Every style with its title and URL."""
    base = public_base_url(request)
    return {
        "styles": [
            {"name": n, "title": style_title(n), "url": f"{base}/styles/{n}.json"}
            for n in style_names()
        ]
    }


@router.get("/styles/{name}.json", summary="A MapLibre style (style spec version 8)")
async def get_style(request: Request, name: str) -> JSONResponse:
    """The style ``name``, its sources on this server."""
    try:
        doc = load_style(name, public_base_url(request))
    except KeyError as exc:
        raise NotFound(str(exc.args[0]), code="unknown_style") from None
    return JSONResponse(doc)
