"""Spatial queries on catalog layers: k nearest, within a radius, intersecting a shape.

Distances are true metres on the WGS 84 spheroid (``geography``). ``nearest`` walks the
GiST index in planar order (``<->``) and re-ranks by metres; it widens its candidate set
until no feature beyond it could be nearer, so the answer is exact, not approximate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.crs import CRS, CRS84, to_xy, transform_to_xy
from gis.errors import BadRequest, Unprocessable
from gis.validation import check_range, check_valid, parse_geometry
from layers.catalog.identifiers import column, quote
from layers.catalog.registry import Layer
from layers.features.cql.compile import compile_filter
from layers.features.cql.parse import parse_filter
from layers.features.filters import visible_conditions
from layers.features.sql import Params, feature_sql

MAX_K = 1_000
MAX_RADIUS_M = 50_000.0
MAX_NEAREST_M = 100_000.0
MAX_WITHIN_RESULTS = 5_000
MAX_AREA_KM2 = 500.0
MAX_LAYERS = 10
MAX_INTERSECTS_RESULTS = 10_000
# the fewest metres a degree (of planar lon/lat distance) can be at the equator, before cos(lat)
MIN_M_PER_DEGREE = 110_574.0
PROJECTED_FACTOR = 0.5
GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Hit:
    """A feature (GeoJSON text) and its distance in metres."""

    feature: str
    distance_m: float

    def as_json(self) -> dict[str, Any]:
        """The feature with ``distance_m`` among its properties."""
        feature = orjson.loads(self.feature)
        feature.setdefault("properties", {})["distance_m"] = round(self.distance_m, 3)
        return feature


def check_point(lon: float, lat: float) -> None:
    """400 when (lon, lat) is not a finite WGS 84 position."""
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequest(
            f"lon/lat ({lon}, {lat}) is not a WGS 84 position (lon -180..180, lat -90..90)",
            code="invalid_point",
        )


def degree_bound(lat: float, metres: float) -> float:
    """A planar lon/lat radius (degrees) that surely contains every point within ``metres``."""
    reach = metres / MIN_M_PER_DEGREE
    cos_min = math.cos(math.radians(min(89.9, abs(lat) + reach)))
    return reach / cos_min * 1.001


def _metres_per_degree_floor(lat: float, degrees: float) -> float:
    """The fewest metres that ``degrees`` of planar lon/lat distance from ``lat`` can be."""
    return degrees * MIN_M_PER_DEGREE * math.cos(math.radians(min(89.9, abs(lat) + degrees)))


def _point_sql(layer: Layer, params: Params, lon: float, lat: float) -> tuple[str, str]:
    """(the point in the layer's SRID, the point as geography)."""
    x, y = params.add(lon, "double precision"), params.add(lat, "double precision")
    point = f"ST_SetSRID(ST_MakePoint({x}, {y}), 4326)"
    in_layer = point if layer.srid == 4326 else f"ST_Transform({point}, {int(layer.srid)})"
    return in_layer, f"{point}::geography"


def _geography_sql(layer: Layer) -> str:
    geom = column(layer, layer.geometry_column)
    return f"{geom}::geography" if layer.srid == 4326 else f"ST_Transform({geom}, 4326)::geography"


def _filter_sql(layer: Layer, value: str | dict[str, Any] | None, lang: str, params: Params) -> str:
    """The filter's condition, and the rows this view of the layer shows (its read scope)."""
    visible = visible_conditions(layer, params)
    if value is None or value == "":
        return " AND ".join(visible) or "TRUE"
    sql, values = compile_filter(
        layer,
        parse_filter(value, lang),
        style="sqlalchemy",
        alias="t",
        first_param=len(params.values) + 1,
    )
    params.values.update(values)  # type: ignore[arg-type]
    return " AND ".join([*visible, f"({sql})"])


def _nearest_sql(
    layer: Layer,
    lon: float,
    lat: float,
    max_m: float | None,
    filter: str | dict[str, Any] | None,
    filter_lang: str,
    candidates: int,
) -> tuple[str, dict[str, Any]]:
    """The index-ordered candidate query: (feature, metres, planar distance) rows."""
    params = Params()
    point, geography = _point_sql(layer, params, lon, lat)
    where = _filter_sql(layer, filter, filter_lang, params)
    geom = column(layer, layer.geometry_column)
    if max_m is not None:
        radius = degree_bound(lat, max_m) if layer.srid == 4326 else max_m / PROJECTED_FACTOR
        where += (
            f" AND ST_DWithin({geom}, {point}, {params.add(radius, 'double precision')})"
            f" AND ST_DWithin({_geography_sql(layer)}, {geography}, "
            f"{params.add(max_m, 'double precision')})"
        )
    sql = (
        f"SELECT {feature_sql(layer)}, ST_Distance({_geography_sql(layer)}, {geography}), "
        f"{geom} <-> {point} FROM {quote(layer.table)} AS t WHERE {where} "
        f"ORDER BY {geom} <-> {point} LIMIT {params.add(candidates, 'bigint')}"
    )
    return sql, params.values


async def nearest(
    engine: AsyncEngine,
    layer: Layer,
    lon: float,
    lat: float,
    k: int = 10,
    max_m: float | None = None,
    filter: str | dict[str, Any] | None = None,
    filter_lang: str = "cql2-text",
) -> list[Hit]:
    """The ``k`` features nearest to (lon, lat), nearest first, with true distances."""
    check_point(lon, lat)
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be 1..{MAX_K}", code="invalid_parameter")
    if max_m is not None and not 0 < max_m <= MAX_NEAREST_M:
        raise BadRequest(
            f"max_m must be more than 0 and at most {MAX_NEAREST_M:g}", code="invalid_parameter"
        )
    candidates = max(4 * k, k + 16)
    async with engine.connect() as conn:
        while True:
            sql, values = _nearest_sql(layer, lon, lat, max_m, filter, filter_lang, candidates)
            rows = (await conn.execute(text(sql), values)).all()
            hits = sorted((Hit(f, float(d)) for f, d, _ in rows), key=lambda h: h.distance_m)
            if len(rows) < candidates:
                break
            farthest = float(rows[-1][2])
            floor = (
                _metres_per_degree_floor(lat, farthest)
                if layer.srid == 4326
                else farthest * PROJECTED_FACTOR
            )
            if floor >= hits[k - 1].distance_m:
                break
            candidates *= 4
    return hits[:k]


async def within(
    engine: AsyncEngine,
    layer: Layer,
    lon: float,
    lat: float,
    radius_m: float,
    filter: str | dict[str, Any] | None = None,
    filter_lang: str = "cql2-text",
    limit: int = MAX_WITHIN_RESULTS,
) -> tuple[list[Hit], bool]:
    """Features within ``radius_m`` true metres of (lon, lat), nearest first, and whether
    more than ``limit`` matched (only the nearest ``limit`` are returned)."""
    check_point(lon, lat)
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise BadRequest(
            f"radius_m must be more than 0 and at most {MAX_RADIUS_M:g}", code="invalid_parameter"
        )
    if not 1 <= limit <= MAX_WITHIN_RESULTS:
        raise BadRequest(f"limit must be 1..{MAX_WITHIN_RESULTS}", code="invalid_parameter")
    params = Params()
    point, geography = _point_sql(layer, params, lon, lat)
    where = _filter_sql(layer, filter, filter_lang, params)
    geom = column(layer, layer.geometry_column)
    radius = degree_bound(lat, radius_m) if layer.srid == 4326 else radius_m / PROJECTED_FACTOR
    distance = f"ST_Distance({_geography_sql(layer)}, {geography})"
    sql = (
        f"SELECT {feature_sql(layer)}, {distance} AS d FROM {quote(layer.table)} AS t "
        f"WHERE ST_DWithin({geom}, {point}, {params.add(radius, 'double precision')}) "
        f"AND ST_DWithin({_geography_sql(layer)}, {geography}, "
        f"{params.add(radius_m, 'double precision')}) AND {where} "
        f"ORDER BY d, {column(layer, layer.id_column)} LIMIT {params.add(limit + 1, 'bigint')}"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), params.values)).all()
    hits = [Hit(f, float(d)) for f, d in rows]
    return hits[:limit], len(hits) > limit


def query_shape(geometry: Any, crs: CRS = CRS84) -> BaseGeometry:
    """A client's query geometry as a valid lon/lat shape within the area limit; 4xx else."""
    shape = parse_geometry(geometry)
    check_range(shapely.transform(shape, lambda c: to_xy(c, crs)), crs.srid)
    lonlat = transform_to_xy(shape, crs, 4326)
    lonlat, _ = check_valid(lonlat)
    area_km2 = _area_km2(lonlat)
    if area_km2 > MAX_AREA_KM2:
        raise Unprocessable(
            f"the query geometry covers {area_km2:.1f} km²; at most {MAX_AREA_KM2:g} km²",
            code="area_too_large",
        )
    return lonlat


def _area_km2(shape: BaseGeometry) -> float:
    """The true area of a lon/lat shape on the WGS 84 ellipsoid, in km²."""
    if shape.area == 0:
        return 0.0
    area, _ = GEOD.geometry_area_perimeter(shape)
    return abs(area) / 1e6


async def intersects(
    engine: AsyncEngine,
    layer: Layer,
    shape: BaseGeometry,
    filter: str | dict[str, Any] | None = None,
    filter_lang: str = "cql2-text",
    limit: int = MAX_INTERSECTS_RESULTS,
) -> tuple[list[str], bool]:
    """Features of ``layer`` intersecting the lon/lat ``shape`` (GeoJSON texts, by id), and
    whether more than ``limit`` matched."""
    params = Params()
    geom = f"ST_GeomFromWKB({params.add(shapely.to_wkb(shape), 'bytea')}, 4326)"
    if layer.srid != 4326:
        geom = f"ST_Transform({geom}, {int(layer.srid)})"
    where = _filter_sql(layer, filter, filter_lang, params)
    sql = (
        f"SELECT {feature_sql(layer)} FROM {quote(layer.table)} AS t "
        f"WHERE ST_Intersects({column(layer, layer.geometry_column)}, {geom}) AND {where} "
        f"ORDER BY {column(layer, layer.id_column)} LIMIT {params.add(limit + 1, 'bigint')}"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), params.values)).scalars().all()
    return list(rows[:limit]), len(rows) > limit


async def intersects_layers(
    engine: AsyncEngine, layers: list[Layer], geometry: Any, crs: CRS = CRS84
) -> dict[str, tuple[list[str], bool]]:
    """For each layer, the features intersecting ``geometry`` (in ``crs``) and whether the
    result was cut at the limit."""
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise BadRequest(f"name 1 to {MAX_LAYERS} layers", code="invalid_parameter")
    shape = query_shape(geometry, crs)
    return {layer.id: await intersects(engine, layer, shape) for layer in layers}
