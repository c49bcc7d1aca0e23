"""Analytics over HTTP: H3 aggregation, Gi* hotspots, KDE and IDW rasters, time series.

Who may call: whoever may read the layer analysed (the catalog decides). Incidents are not
public: app, inspector, editor, dispatcher and admin keys. Public layers (assets, sensors)
and the IDW of sensor readings are open to anonymous callers. Storing a hotspot map for the
tiles (POST /analytics/hotspots/refresh) needs a dispatcher or admin key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import h3
import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.analytics.gistar import CLASS_LABELS
from gis.analytics.grid import BBox, parse_bbox
from gis.errors import BadRequest, Forbidden, Unauthorized
from gis.hexgrid import cell_polygon, parse_cell, to_hex
from gis.raster import encode_raster
from gis.timezones import time_zone
from layers.analytics.aggregations import (
    Filters,
    analysis_layer,
    cell_areas_km2,
    cell_counts,
    check_categories_exist,
    compare_periods,
    parse_categories,
    time_series,
)
from layers.analytics.heatmaps import Heatmap, idw_heatmap, kde_heatmap
from layers.analytics.hotspots import LAYER_ID as HOTSPOTS_LAYER
from layers.analytics.hotspots import compute_hotspots, refresh_hotspot_cells
from layers.catalog.registry import Layer, load_catalog
from spatial_api.auth import ANONYMOUS, Principal
from spatial_api.deps import Caller, Connection, Dispatcher, ReadConnection
from spatial_api.openapi import errors
from spatial_api.responses import GEOJSON, json_response
from spatial_api.schemas.analytics import (
    H3Aggregate,
    HotspotRefresh,
    Hotspots,
    PeriodComparison,
    TimeSeries,
)

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=errors(404, 422))
GEOJSON_TOO: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {}}, "description": "JSON, or GeoJSON with format=geojson"}
}

LayerId = Annotated[str, Query(description="A point layer of the catalog, e.g. incidents")]
Res = Annotated[int, Query(ge=5, le=11, description="H3 resolution, 5–11")]
From = Annotated[
    datetime | None, Query(alias="from", description="Start (inclusive) of the period, ISO 8601")
]
To = Annotated[datetime | None, Query(alias="to", description="End (exclusive), ISO 8601")]
Category = Annotated[
    str | None,
    Query(description="Comma list of 4-digit incident categories or 2-digit major classes"),
]
BBoxText = Annotated[str, Query(description="minlon,minlat,maxlon,maxlat (EPSG:4326)")]
OptionalBBox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (EPSG:4326)")]
CellM = Annotated[float, Query(gt=0, le=10_000, description="Raster cell size in metres")]
RasterFormat = Annotated[
    Literal["tif", "png"],
    Query(description="tif: float32 GeoTIFF in the local UTM zone; png: coloured overlay"),
]
CellFormat = Annotated[Literal["json", "geojson"], Query(description="json or geojson")]


def utc(value: datetime | None) -> datetime | None:
    """``value`` with a time zone (UTC when the client gave none)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def readable(layer_id: str, principal: Principal) -> Layer:
    """The analysable layer ``layer_id`` as the caller sees it (a caller limited to
    districts, departments or, with an inspector key, its own cases analyses those rows
    only), if it may read it."""
    layer = analysis_layer(layer_id)
    check_read(layer, principal)
    return layer.for_caller(principal.role, principal.visibility)


def check_read(layer: Layer, principal: Principal) -> None:
    """401 for anonymous callers and 403 for other roles that may not read ``layer``."""
    if layer.can_read(principal.role):
        return
    if principal.role == ANONYMOUS:
        raise Unauthorized(
            f"layer {layer.id!r} is not public: send an API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise Forbidden(f"role {principal.role!r} may not read layer {layer.id!r}")


async def filters_for(
    conn: AsyncConnection,
    layer: Layer,
    start: datetime | None,
    end: datetime | None,
    category: str | None,
    bbox: str | None = None,
) -> Filters:
    """The row filters of a request, checked."""
    categories = parse_categories(category)
    filters = Filters(layer, utc(start), utc(end), categories, parse_bbox(bbox) if bbox else None)
    await check_categories_exist(conn, categories)
    return filters


def geojson_response(rows: list[dict[str, Any]]) -> Response:
    """Cell rows (each with a hex ``cell``) as a GeoJSON FeatureCollection of cell polygons."""
    features = [
        {
            "type": "Feature",
            "id": row["cell"],
            "geometry": cell_polygon(int(row["cell"], 16)).__geo_interface__,
            "properties": row,
        }
        for row in rows
    ]
    body = {"type": "FeatureCollection", "features": features}
    return json_response(body, media_type=GEOJSON)


def raster_response(heatmap: Heatmap, fmt: str, bbox: BBox, name: str) -> Response:
    """A heatmap as a GeoTIFF or PNG download."""
    grid = heatmap.grid
    data, media_type, headers = encode_raster(heatmap.values, grid.epsg, grid.transform, fmt, bbox)
    headers |= {
        "Content-Disposition": f'inline; filename="{name}.{fmt}"',
        "X-Raster-CRS": f"EPSG:{grid.epsg}",
        "X-Raster-Size": f"{grid.width}x{grid.height}",
        "X-Input-Count": str(heatmap.inputs),
    }
    return Response(data, media_type=media_type, headers=headers)


@router.get(
    "/h3",
    summary="Counts or densities of a point layer per H3 cell",
    response_model=H3Aggregate,
    response_model_exclude_unset=True,
    responses=GEOJSON_TOO,
)
async def h3_aggregate(
    layer: LayerId,
    principal: Caller,
    conn: ReadConnection,
    res: Res = 8,
    start: From = None,
    end: To = None,
    category: Category = None,
    bbox: OptionalBBox = None,
    metric: Annotated[
        Literal["count", "density"], Query(description="count, or density per km² of true area")
    ] = "count",
    format: CellFormat = "json",
) -> dict[str, Any] | Response:
    """Rows per cell at ``res`` (5–11) over the period and categories, as JSON or GeoJSON.

    Counts come from the stored res-10 cell rolled up in SQL (res 11 from the points);
    ``density`` divides by each cell's true area in km². Only cells with rows are listed.
    Roles: any that may read the layer (incidents: app, inspector, editor, dispatcher, admin).
    """
    filters = await filters_for(conn, readable(layer, principal), start, end, category, bbox)
    cells, counts = await cell_counts(conn, filters, res)
    rows: list[dict[str, Any]] = [
        {"cell": to_hex(c), "count": int(n)} for c, n in zip(cells.tolist(), counts, strict=True)
    ]
    if metric == "density":
        for row, area in zip(rows, cell_areas_km2(cells), strict=True):
            row["area_km2"] = round(float(area), 6)
            row["density"] = row["count"] / float(area)
    if format == "geojson":
        return geojson_response(rows)
    return {
        "layer": layer,
        "res": res,
        "metric": metric,
        "total": int(counts.sum()),
        "cells": rows,
    }


HotspotK = Annotated[int, Query(ge=1, le=5, description="k-ring radius of the weights, 1–5")]
Fdr = Annotated[bool, Query(description="Benjamini–Hochberg false-discovery-rate correction")]


@router.get(
    "/hotspots",
    summary="Getis-Ord Gi* hotspots and coldspots on H3 cells",
    response_model=Hotspots,
    responses=GEOJSON_TOO,
)
async def hotspots(
    layer: LayerId,
    principal: Caller,
    conn: ReadConnection,
    res: Res = 9,
    k: HotspotK = 1,
    start: From = None,
    end: To = None,
    category: Category = None,
    bbox: OptionalBBox = None,
    fdr: Fdr = False,
    significant_only: Annotated[bool, Query(description="List only significant cells")] = False,
    format: CellFormat = "json",
) -> dict[str, Any] | Response:
    """Gi* z-score, two-sided p-value and class of every study-area cell.

    Weights are binary over the k-ring (the cell itself included); the study area is the
    grid's cells at ``res`` (within ``bbox``), zero-filled. Classes: hot/cold at 90, 95 and
    99 % confidence (``gi_bin`` ±1, ±2, ±3), optionally with FDR correction.
    Roles: any that may read the layer (incidents: app, inspector, editor, dispatcher, admin).
    """
    filters = await filters_for(conn, readable(layer, principal), start, end, category, bbox)
    found = await compute_hotspots(conn, filters, res, k, fdr)
    r = found.result
    columns = (r.cells.tolist(), r.values.astype(np.int64).tolist(), r.z.tolist(),
               r.p.tolist(), r.classes.tolist())  # fmt: skip
    rows = [
        {"cell": to_hex(c), "count": v, "z": z, "p": p, "gi_bin": b, "hotspot": CLASS_LABELS[b]}
        for c, v, z, p, b in zip(*columns, strict=True)
        if b or not significant_only
    ]
    if format == "geojson":
        return geojson_response(rows)
    summary = {label: int((r.classes == b).sum()) for b, label in CLASS_LABELS.items()}
    return json_response(
        {  # built here, not validated row by row: 100,000+ cells
            "layer": layer,
            "res": res,
            "k": k,
            "fdr": fdr,
            "study_area": found.study_area,
            "n_cells": len(r.cells),
            "summary": summary,
            "cells": rows,
        }
    )


@router.post(
    "/hotspots/refresh",
    summary="Store a layer's hotspot cells for the map (the 'hotspots' tile layer)",
    response_model=HotspotRefresh,
)
async def refresh_hotspots(
    layer: LayerId,
    principal: Dispatcher,
    conn: Connection,
    res: Res = 9,
    k: HotspotK = 1,
    start: From = None,
    end: To = None,
    category: Category = None,
    bbox: OptionalBBox = None,
    fdr: Fdr = False,
) -> dict[str, Any]:
    """Recompute Gi* and replace the layer's rows of ``hotspot_cells`` (significant cells
    only), which the catalog publishes as the ``hotspots`` layer. Roles: dispatcher, admin.
    """
    filters = await filters_for(conn, readable(layer, principal), start, end, category, bbox)
    stored = await refresh_hotspot_cells(conn, filters, res, k, fdr)
    return {"layer": layer, "catalog_layer": HOTSPOTS_LAYER, "stored": stored}


@router.get(
    "/kde",
    summary="Kernel density raster of a point layer",
    response_class=Response,
    responses={200: {"content": {"image/tiff": {}, "image/png": {}}}},
)
async def kde_raster(
    layer: LayerId,
    bbox: BBoxText,
    principal: Caller,
    conn: ReadConnection,
    cell_m: CellM = 50.0,
    bandwidth_m: Annotated[
        float, Query(gt=0, description="Gaussian kernel bandwidth (sigma) in metres")
    ] = 250.0,
    start: From = None,
    end: To = None,
    category: Category = None,
    format: RasterFormat = "tif",
) -> Response:
    """Points per km² on square ``cell_m`` cells in the local UTM zone covering ``bbox``.

    ``tif`` is float32 with its CRS and geotransform (deflate); ``png`` is the heat ramp on
    Web Mercator, transparent where empty, placed by its ``X-Image-Bounds`` header.
    Rasters are limited to 4,000,000 cells. Roles: any that may read the layer.
    """
    area = parse_bbox(bbox)
    filters = await filters_for(conn, readable(layer, principal), start, end, category)
    heatmap = await kde_heatmap(conn, filters, area, cell_m, bandwidth_m)
    return raster_response(heatmap, format, area, f"{layer}-kde")


@router.get(
    "/idw",
    summary="Inverse-distance-weighted raster of sensor readings",
    response_class=Response,
    responses={200: {"content": {"image/tiff": {}, "image/png": {}}}},
)
async def idw_raster(
    principal: Caller,
    conn: ReadConnection,
    property: Annotated[str, Query(description="The measured property, e.g. pm25")],
    bbox: BBoxText,
    at: Annotated[datetime | None, Query(description="The moment mapped (default: now)")] = None,
    window_minutes: Annotated[
        int, Query(ge=1, le=44_640, description="Readings within this many minutes of 'at'")
    ] = 60,
    cell_m: CellM = 50.0,
    power: Annotated[float, Query(ge=0.5, le=5, description="Distance exponent")] = 2.0,
    neighbors: Annotated[int, Query(ge=1, le=64, description="Nearest sensors used")] = 12,
    format: RasterFormat = "tif",
) -> Response:
    """IDW of each sensor's reading nearest to ``at`` (within the window) at every cell centre.

    Roles: whoever may read the sensors layer (public: anonymous too).
    """
    check_read(load_catalog().get("sensors"), principal)
    area = parse_bbox(bbox)
    moment = utc(at) or datetime.now(UTC)
    heatmap = await idw_heatmap(
        conn, property, moment, timedelta(minutes=window_minutes), area, cell_m, power, neighbors
    )
    return raster_response(heatmap, format, area, f"{property}-idw")


@router.get(
    "/timeseries",
    summary="Counts per hour, day or week in a cell or a bbox",
    response_model=TimeSeries,
)
async def timeseries(
    layer: LayerId,
    principal: Caller,
    conn: ReadConnection,
    interval: Annotated[Literal["hour", "day", "week"], Query(description="Bucket length")],
    cell: Annotated[str | None, Query(description="An H3 cell (hex), res 5–11")] = None,
    bbox: OptionalBBox = None,
    start: From = None,
    end: To = None,
    category: Category = None,
    tz: Annotated[str, Query(description="Time zone of the buckets, e.g. Asia/Shanghai")] = "UTC",
) -> dict[str, Any]:
    """Zero-filled counts per bucket from ``from`` (default: 90 buckets before ``to``) to
    ``to`` (default: now), in one cell or a bbox (or the whole layer). At most 10,000 buckets.
    Roles: any that may read the layer.
    """
    if cell and bbox:
        raise BadRequest("give either cell or bbox, not both", code="invalid_parameter")
    cell_id = parse_cell(cell) if cell else None
    if cell_id is not None and not 5 <= h3.get_resolution(to_hex(cell_id)) <= 11:
        raise BadRequest("cell must be of resolution 5–11", code="invalid_cell")
    filters = await filters_for(conn, readable(layer, principal), start, end, category, bbox)
    zone = time_zone(tz)
    series = await time_series(conn, filters, interval, cell_id, tz)
    return {
        "layer": layer,
        "interval": interval,
        "tz": tz,
        "cell": cell,
        "bbox": bbox,
        "total": sum(series.counts),
        "buckets": [
            {"start": s.astimezone(zone).isoformat(), "count": n}
            for s, n in zip(series.starts, series.counts, strict=True)
        ],
    }


@router.get(
    "/timeseries/compare",
    summary="Counts per cell in two periods: change and ratio",
    response_model=PeriodComparison,
    responses=GEOJSON_TOO,
)
async def compare(
    layer: LayerId,
    principal: Caller,
    conn: ReadConnection,
    a_from: Annotated[datetime, Query(description="Start of period a")],
    a_to: Annotated[datetime, Query(description="End of period a (exclusive)")],
    b_from: Annotated[datetime, Query(description="Start of period b")],
    b_to: Annotated[datetime, Query(description="End of period b (exclusive)")],
    res: Res = 8,
    category: Category = None,
    bbox: OptionalBBox = None,
    format: CellFormat = "json",
) -> dict[str, Any] | Response:
    """Per cell with rows in either period: count_a, count_b, change (b − a), ratio (b / a,
    null when a is 0) and rate_ratio (the ratio of counts per day, for periods of unequal
    length). Roles: any that may read the layer.
    """
    filters_a = await filters_for(conn, readable(layer, principal), a_from, a_to, category, bbox)
    filters_b = filters_a.between(utc(b_from), utc(b_to))
    found = await compare_periods(conn, filters_a, filters_b, res)
    days_a = (filters_a.end - filters_a.start) / timedelta(days=1)
    days_b = (filters_b.end - filters_b.start) / timedelta(days=1)
    rows = [
        {
            "cell": to_hex(c),
            "count_a": int(a),
            "count_b": int(b),
            "change": int(b - a),
            "ratio": float(b / a) if a else None,
            "rate_ratio": float((b / days_b) / (a / days_a)) if a else None,
        }
        for c, a, b in zip(found.cells.tolist(), found.count_a, found.count_b, strict=True)
    ]
    if format == "geojson":
        return geojson_response(rows)
    return {
        "layer": layer,
        "res": res,
        "a": {"from": filters_a.start.isoformat(), "to": filters_a.end.isoformat()},
        "b": {"from": filters_b.start.isoformat(), "to": filters_b.end.isoformat()},
        "total_a": int(found.count_a.sum()),
        "total_b": int(found.count_b.sum()),
        "cells": rows,
    }
