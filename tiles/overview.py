"""A static first view of an area as SVG, drawn by PostGIS: the base layers of the city style
(districts, green areas, pipes) and the caller's own grid cells outlined, in pixel space.

The web app shows it while MapLibre GL JS downloads, then MapLibre opens on the same bounds
(``Overview.bounds``), so the first map of an inspector needs no script but the app's own.

The view is the area fitted into ``width`` × ``height`` pixels with ``PADDING`` pixels
around it, as MapLibre's ``fitBounds`` does, in Web Mercator (EPSG:3857): with ``s`` pixels
per metre and the view's top-left corner (x0, y1),

    px = (x − x0) · s,   py = (y1 − y) · s

(``ST_Affine`` makes (px, −py) and ``ST_AsSVG`` writes −y, as SVG's y axis points down).
Each geometry is clipped to the view, simplified at half a pixel (``ST_Simplify``) and
written with one decimal. A layer appears only when the caller's role reads it whole (a
public layer, or one its role is allowed): what the API would not give the caller is not in
the picture; the cells outlined are the caller's own (its ``inspector_id``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.analytics.grid import BBox
from gis.errors import BadRequest
from gis.tilemath import ORIGIN, lonlat_to_mercator, mercator_to_lonlat
from layers.catalog.registry import Catalog, Layer, load_catalog
from layers.db.scope import Visibility

PADDING = 20
"""Pixels kept around the area (the app's MapLibre maps fit bounds with the same padding)."""
MAX_SPAN_DEG = 0.25
"""The widest and highest area drawn, in degrees (about 25 km): a bigger bbox is refused."""
MIN_SIZE, MAX_SIZE = 64, 2048
"""The smallest and largest width or height, in pixels."""
MAX_ZOOM = 18
"""The closest view (web map zoom): a single cell is not drawn a screen wide."""
BACKGROUND = "#f4f4f0"
"""The city style's background colour."""
CELLS = 'fill="#0b63c5" fill-opacity="0.12" stroke="#0b63c5" stroke-width="2"'
"""How the caller's own cells are drawn (as the app's ``my-cells`` layers)."""


@dataclass(frozen=True)
class Drawn:
    """One group of the picture: the rows of a catalog layer matching ``where`` (a fixed SQL
    condition), drawn with SVG presentation attributes ``paint``."""

    name: str
    layer: str
    where: str
    paint: str


DRAWN = (
    Drawn(
        "districts",
        "districts",
        "TRUE",
        'fill="#dbe6f1" fill-opacity="0.35" stroke="#5b4a9b" stroke-width="2"',
    ),
    Drawn(
        "green",
        "assets",
        "class_code = '0505' AND ST_Dimension(geom_3857) = 2",
        'fill="#74c476" fill-opacity="0.7" stroke="#31a354" stroke-width="0.5"',
    ),
    Drawn(
        "water-pipes",
        "assets",
        "class_code = '0130' AND ST_Dimension(geom_3857) = 1",
        'fill="none" stroke="#2171b5" stroke-width="1"',
    ),
    Drawn(
        "drain-pipes",
        "assets",
        "class_code = '0131' AND ST_Dimension(geom_3857) = 1",
        'fill="none" stroke="#8c6d31" stroke-width="1"',
    ),
    Drawn(
        "gas-pipes",
        "assets",
        "class_code = '0132' AND ST_Dimension(geom_3857) = 1",
        'fill="none" stroke="#d4a017" stroke-width="1"',
    ),
)
"""The base layers of the city style (styles/city.json), bottom first, with its colours."""


@dataclass(frozen=True)
class View:
    """What the picture shows: its EPSG:3857 box and size, and pixels per metre."""

    box: BBox
    width: int
    height: int
    scale: float

    @property
    def bounds(self) -> BBox:
        """The whole picture's (west, south, east, north) in degrees."""
        west, south = mercator_to_lonlat(self.box[0], self.box[1])
        east, north = mercator_to_lonlat(self.box[2], self.box[3])
        return (west, south, east, north)


@dataclass(frozen=True)
class Overview:
    """The SVG document and the bounds it shows (degrees)."""

    svg: str
    bounds: BBox


def check_size(width: int, height: int) -> None:
    """A 400 for a picture size out of ``MIN_SIZE``–``MAX_SIZE``."""
    for name, value in (("width", width), ("height", height)):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise BadRequest(
                f"{name} must be {MIN_SIZE}–{MAX_SIZE} pixels, not {value}",
                code="invalid_size",
            )


def check_bbox(bbox: BBox) -> None:
    """A 400 for a bbox that is not (west, south, east, north) in degrees of at most
    ``MAX_SPAN_DEG`` each way."""
    west, south, east, north = bbox
    if not all(math.isfinite(v) for v in bbox):
        raise BadRequest("bbox must be four finite numbers", code="invalid_bbox")
    if not (-180 <= west < east <= 180 and -85 <= south < north <= 85):
        raise BadRequest(
            "bbox must be west,south,east,north in degrees with west < east and south < north",
            code="invalid_bbox",
        )
    if east - west > MAX_SPAN_DEG or north - south > MAX_SPAN_DEG:
        raise BadRequest(
            f"bbox is too large: at most {MAX_SPAN_DEG}° wide and high", code="bbox_too_large"
        )


def fit(area: BBox, width: int, height: int) -> View:
    """The view of ``area`` (EPSG:3857) fitted into width × height with ``PADDING`` pixels
    around it, centred, as MapLibre's ``fitBounds`` (no closer than ``MAX_ZOOM``)."""
    minx, miny, maxx, maxy = area
    most = 512 * 2**MAX_ZOOM / (2 * ORIGIN)  # pixels per metre at MAX_ZOOM (512-px world)
    room_x, room_y = max(width - 2 * PADDING, 1), max(height - 2 * PADDING, 1)
    dx, dy = maxx - minx, maxy - miny
    scale = min(most, room_x / dx if dx > 0 else most, room_y / dy if dy > 0 else most)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half_w, half_h = width / 2 / scale, height / 2 / scale
    return View((cx - half_w, cy - half_h, cx + half_w, cy + half_h), width, height, scale)


def _drawn_sql(table: str, column: str, where: str, tail: str = "", simplify: bool = True) -> str:
    """The rows of ``table`` (alias ``t``) in the view, as SVG path data in pixel space,
    simplified at half a pixel with ``simplify``; ``tail`` adds columns of the row. Bound:
    pixels per metre ``:s``, the offsets ``:xoff, :yoff`` and the view ``:minx … :maxy``
    with ``:margin``."""
    pixels = (
        f"ST_Affine(ST_ClipByBox2D(t.{column}, v.e), CAST(:s AS float8), 0, 0, "
        "CAST(:s AS float8), CAST(:xoff AS float8), CAST(:yoff AS float8))"
    )
    if simplify:
        pixels = f"ST_Simplify({pixels}, 0.5)"
    return (
        f"SELECT ST_AsSVG({pixels}, 0, 1) AS d{tail} FROM {table} t, "
        "(SELECT ST_Expand(ST_MakeEnvelope(CAST(:minx AS float8), CAST(:miny AS float8), "
        "CAST(:maxx AS float8), CAST(:maxy AS float8), 3857), CAST(:margin AS float8)) AS e) v "
        f"WHERE t.{column} && v.e AND ({where})"
    )


def _readable_whole(layer: Layer, role: str, visible: Visibility) -> bool:
    """Whether a caller reads every row of ``layer`` (a picture has no room for a scope)."""
    return layer.can_read(role) and not layer.visibility(visible).limited


async def _paths(conn: AsyncConnection, sql: str, params: dict[str, float | int]) -> list[str]:
    rows = await conn.execute(text(sql), params)
    return [r[0] for r in rows if r[0]]


async def own_cells_area(conn: AsyncConnection, grid: Layer, inspector_id: int) -> BBox | None:
    """The EPSG:3857 extent of the inspector's cells (None when they have none)."""
    column = grid.read_scope["inspector"]
    row = (
        await conn.execute(
            text(
                f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                f"(SELECT ST_Extent({grid.geometry_3857_column}) AS e FROM {grid.table} "
                f"WHERE {column} = :inspector) q"
            ),
            {"inspector": inspector_id},
        )
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


async def overview(
    conn: AsyncConnection,
    *,
    role: str,
    visible: Visibility,
    inspector_id: int | None,
    width: int,
    height: int,
    bbox: BBox | None = None,
    catalog: Catalog | None = None,
) -> Overview | None:
    """The first view of ``bbox`` (degrees), or without one of the caller's own cells: the
    base layers ``role`` reads whole and, for a caller speaking for an inspector, their
    cells outlined (``data-cell`` holds each cell's id). None without a bbox for a caller
    with no cells (nothing to show); 400 for a bad size or bbox."""
    catalog = catalog or load_catalog()
    check_size(width, height)
    grid = catalog.layers.get("grid")
    own = (  # the caller speaks for an inspector whose cells it may read
        inspector_id is not None
        and grid is not None
        and "inspector" in grid.read_scope
        and grid.can_read(role)
    )
    if bbox is not None:
        check_bbox(bbox)
        minx, miny = lonlat_to_mercator(bbox[0], bbox[1])
        maxx, maxy = lonlat_to_mercator(bbox[2], bbox[3])
        area: BBox | None = (minx, miny, maxx, maxy)
    elif own:
        area = await own_cells_area(conn, grid, inspector_id)
    else:
        area = None
    if area is None:
        return None
    view = fit(area, width, height)
    minx, miny, maxx, maxy = view.box
    params: dict[str, float | int] = {
        "s": view.scale,
        "xoff": -minx * view.scale,
        "yoff": -maxy * view.scale,
        "minx": minx,
        "miny": miny,
        "maxx": maxx,
        "maxy": maxy,
        "margin": 4 / view.scale,  # strokes of shapes just outside still show at the edge
    }
    groups = []
    for drawn in DRAWN:
        layer = catalog.layers.get(drawn.layer)
        if layer is None or not layer.geometry_3857_column:
            continue
        if not _readable_whole(layer, role, visible):
            continue
        sql = _drawn_sql(layer.table, layer.geometry_3857_column, drawn.where)
        paths = "".join(f'<path d="{escape(d)}"/>' for d in await _paths(conn, sql, params))
        groups.append(f'<g data-layer="{drawn.name}" {drawn.paint} fill-rule="evenodd">{paths}</g>')
    if own:
        sql = _drawn_sql(
            grid.table,
            grid.geometry_3857_column or "",
            f"{grid.read_scope['inspector']} = :inspector",
            tail=f", to_hex({grid.id_column}) AS cell",
            simplify=False,
        )
        rows = await conn.execute(text(sql), {**params, "inspector": inspector_id})
        paths = "".join(f'<path data-cell="{c}" d="{escape(d)}"/>' for d, c in rows if d)
        groups.append(f'<g data-layer="my-cells" {CELLS}>{paths}</g>')
    west, south, east, north = view.bounds
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-bounds="{west:.7f},{south:.7f},{east:.7f},'
        f'{north:.7f}" data-zoom="{math.log2(view.scale * 2 * ORIGIN / 512):.3f}">'
        f'<rect width="{width}" height="{height}" fill="{BACKGROUND}"/>'
        + "".join(groups)
        + "</svg>"
    )
    return Overview(svg, view.bounds)
