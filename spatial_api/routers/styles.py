"""MapLibre styles over HTTP, pointing at this server's TileJSON, cut to what the caller may
read (``styles.style_for``), and the glyphs of their labels."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gis.errors import BadRequest, Forbidden, NotFound, Unauthorized
from spatial_api.auth import ANONYMOUS
from spatial_api.deps import Caller
from spatial_api.openapi import errors
from spatial_api.proxies import public_base_url
from spatial_api.schemas.system import StyleList
from styles import style_for, style_names, style_title
from styles.glyphs import BadRange, UnknownFont, fonts, glyph_range, glyph_settings
from tiles.access import readable_fields

router = APIRouter(tags=["styles"])
PROTOBUF = "application/x-protobuf"
GLYPH_MAX_AGE = 86_400
PER_CALLER = {"Vary": "Authorization", "Cache-Control": "private, no-cache"}
"""A style depends on who asks: no shared cache may hand one caller's style to another."""


def has_glyphs() -> bool:
    """Whether this server has label glyphs to serve."""
    return bool(fonts(glyph_settings().folder))


@router.get("/styles", summary="The map styles the caller can render", response_model=StyleList)
async def list_styles(request: Request, caller: Caller) -> JSONResponse:
    """Every style with at least one tile source the caller may read, with its title and URL
    (anonymous callers get no style of cases)."""
    base = public_base_url(request)
    fields = readable_fields(caller.role)
    listed = [
        {"name": n, "title": style_title(n), "url": f"{base}/styles/{n}.json"}
        for n in style_names()
        if style_for(n, base, fields) is not None
    ]
    return JSONResponse({"styles": listed}, headers=PER_CALLER)


@router.get(
    "/styles/{name}.json",
    summary="A MapLibre style (style spec version 8) as the caller may render it",
    responses=errors(401, 403, 404),
)
async def get_style(request: Request, caller: Caller, name: str) -> JSONResponse:
    """The style ``name``, its sources on this server, holding only the sources, layers,
    attributes and legend entries the caller may read (staff see cells by inspector, others
    by district); 401/403 when it may read none of its sources."""
    try:
        doc = style_for(name, public_base_url(request), readable_fields(caller.role), has_glyphs())
    except KeyError as exc:
        raise NotFound(str(exc.args[0]), code="unknown_style") from None
    if doc is None:
        if caller.role == ANONYMOUS:
            raise Unauthorized(
                f"style {name} shows layers that need an API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise Forbidden(f"role {caller.role!r} may read none of the layers of style {name}")
    return JSONResponse(doc, headers=PER_CALLER)


@router.get(
    "/styles/glyphs/{fontstack}/{range_name}.pbf",
    summary="SDF glyphs of a font stack for 256 code points (for style labels)",
    response_class=Response,
    responses={200: {"content": {PROTOBUF: {}}}, **errors(400, 404)},
)
async def glyphs(fontstack: str, range_name: str) -> Response:
    """The glyphs of code points ``<start>-<end>`` of the first font of ``fontstack`` (a
    comma list) that this server has, as MapLibre asks for them; 404 naming the fonts
    served when it has none of them; 400 for a bad range."""
    try:
        body = glyph_range(fontstack, range_name, glyph_settings().folder)
    except BadRange as exc:
        raise BadRequest(str(exc), code="invalid_glyph_range") from None
    except UnknownFont as exc:
        raise NotFound(str(exc), code="unknown_font") from None
    return Response(
        body, media_type=PROTOBUF, headers={"Cache-Control": f"public, max-age={GLYPH_MAX_AGE}"}
    )
