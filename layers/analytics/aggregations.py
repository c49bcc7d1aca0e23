"""SQL roll-ups of layers onto H3 cells: counts, densities, time series, period
comparisons, the study area of the grid, the points themselves and sensor readings.

A row counts in the cell that contains its point at the resolution asked (as
``h3.latlng_to_cell`` says; a line or polygon by its point on surface). Layers store that
cell for every resolution they list (``Layer.cell_columns``: ``h3`` at res 10, ``h3_5`` …
``h3_11``), computed on write; at a resolution with no column the cells are computed here
from the points. Cells are never rolled up from finer ones: H3 children do not tile their
parent. Everything runs on the asyncpg connection under a SQLAlchemy one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, NotFound
from gis.hexgrid import DEFAULT_RES, cell_polygon, latlng_cells
from layers.catalog.registry import Layer, load_catalog
from layers.db.engine import raw_connection

GRID_RES = DEFAULT_RES
"""The resolution of the unit grid's cells (grid_cells)."""

MIN_RES, MAX_RES = 5, 11
INTERVALS = ("hour", "day", "week")
MAX_BUCKETS = 10_000
CATEGORY = re.compile(r"^[0-9]{2}([0-9]{2})?$")
PROPERTY = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
BBox = tuple[float, float, float, float]


def analysis_layer(layer_id: str) -> Layer:
    """The catalog layer ``layer_id`` if its rows carry an H3 cell (points, or lines and
    polygons counted by their point on surface)."""
    layer = load_catalog().get(layer_id)
    if not layer.h3_column:
        raise BadRequest(
            f"layer {layer_id!r} cannot be analysed: only layers with an H3 column can",
            code="layer_not_aggregatable",
        )
    return layer


def point_sql(layer: Layer) -> str:
    """SQL for the point a row counts at: the point itself, or a line's or polygon's point
    on surface."""
    geom = layer.geometry_column
    return geom if layer.is_point else f"ST_PointOnSurface({geom})"


def check_res(res: int) -> int:
    """``res`` if it is an analysis resolution (5–11)."""
    if not MIN_RES <= res <= MAX_RES:
        raise BadRequest(f"res must be {MIN_RES}–{MAX_RES}, not {res}", code="invalid_res")
    return res


def parse_categories(text: str | None) -> list[str]:
    """A comma list of 4-digit category codes or 2-digit major classes."""
    if not text:
        return []
    codes = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in codes if not CATEGORY.match(c)]
    if bad:
        raise BadRequest(
            f"category {', '.join(bad)!s} is not a 4-digit code or a 2-digit major class",
            code="invalid_category",
        )
    return codes


class SqlParams:
    """Positional parameters ($1, $2, ...) collected while a query is put together."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        """The placeholder of ``value``."""
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Filters:
    """Which rows of a point layer an analysis counts (of the view of the layer the caller
    has: ``Layer.for_caller`` keeps a scoped caller to its rows)."""

    layer: Layer
    start: datetime | None = None
    end: datetime | None = None
    categories: list[str] = field(default_factory=list)
    bbox: BBox | None = None

    def __post_init__(self) -> None:
        if (self.start or self.end) and not self.layer.time_column:
            raise BadRequest(
                f"layer {self.layer.id!r} has no time column: from/to do not apply",
                code="unknown_property",
            )
        if self.start and self.end and self.start >= self.end:
            raise BadRequest("'from' must be before 'to'", code="invalid_period")
        if self.categories and "category_code" not in self.layer.properties:
            raise BadRequest(
                f"layer {self.layer.id!r} has no category_code: category does not apply",
                code="unknown_property",
            )

    def where(self, params: SqlParams, cell_column: str | None = None) -> str:
        """The SQL condition (never empty) selecting the rows that have a cell (in
        ``cell_column``, the layer's ``h3_column`` by default)."""
        parts = [f"{cell_column or self.layer.h3_column} IS NOT NULL"]
        if self.start:
            parts.append(f"{self.layer.time_column} >= {params.add(self.start)}")
        if self.end:
            parts.append(f"{self.layer.time_column} < {params.add(self.end)}")
        codes = [c for c in self.categories if len(c) == 4]
        majors = [c for c in self.categories if len(c) == 2]
        if codes or majors:
            parts.append(
                f"(category_code = ANY({params.add(codes)}::text[])"
                f" OR left(category_code, 2) = ANY({params.add(majors)}::text[]))"
            )
        if self.bbox:
            env = ",".join(params.add(float(v)) for v in self.bbox)
            parts.append(f"{self.layer.geometry_column} && ST_MakeEnvelope({env}, 4326)")
        return " AND ".join(parts + self.visible(params))

    def visible(self, params: SqlParams) -> list[str]:
        """The caller's read scope on a layer that has one (``Layer.for_caller``): its
        districts, departments, an inspector key's own rows; none for an unlimited view."""
        layer = self.layer
        if not layer.read_scope or not layer.visible.limited:
            return []
        return layer.visible.conditions(
            dict(layer.read_scope), layer.table, lambda value, kind: f"{params.add(value)}::{kind}"
        )

    @property
    def everything(self) -> bool:
        """Whether every row with a cell counts (no period, category, bbox or scope)."""
        return not (
            self.start or self.end or self.categories or self.bbox or self.visible(SqlParams())
        )

    def between(self, start: datetime | None, end: datetime | None) -> Filters:
        """The same filters over another period."""
        return Filters(self.layer, start, end, self.categories, self.bbox)


async def check_categories_exist(conn: AsyncConnection, categories: list[str]) -> None:
    """NotFound naming the codes or major classes that match no incident category."""
    if not categories:
        return
    async with raw_connection(conn) as raw:
        rows = await raw.fetch(
            "SELECT c FROM unnest($1::text[]) AS c WHERE NOT EXISTS ("
            " SELECT 1 FROM incident_categories WHERE code = c OR major = c)",
            categories,
        )
    if rows:
        missing = ", ".join(r[0] for r in rows)
        raise NotFound(f"no incident category {missing}", code="unknown_category")


async def cell_counts(
    conn: AsyncConnection, filters: Filters, res: int
) -> tuple[np.ndarray, np.ndarray]:
    """(cells, counts) of the filtered rows per cell at ``res`` (the cell containing each
    row's point), cells as int64, sorted."""
    check_res(res)
    cell = filters.layer.cell_columns.get(res)
    if cell is None:
        lon, lat = await point_coordinates(conn, filters)
        cells, counts = np.unique(latlng_cells(lon, lat, res), return_counts=True)
        return cells.astype(np.int64), counts.astype(np.int64)
    params = SqlParams()
    if filters.layer.cell_counts and filters.everything:  # counted on write
        sql = (
            f"SELECT cell, sum(n)::bigint FROM {filters.layer.cell_counts}"
            f" WHERE res = {params.add(res)} AND n > 0 GROUP BY 1 ORDER BY 1"
        )
    else:
        sql = (
            f"SELECT {cell} AS cell, count(*) AS n FROM {filters.layer.table}"
            f" WHERE {filters.where(params, cell)} GROUP BY 1 ORDER BY 1"
        )
    async with raw_connection(conn) as raw:
        rows = await raw.fetch(sql, *params.values)
    cells = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    counts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    return cells, counts


def cell_areas_km2(cells: np.ndarray) -> np.ndarray:
    """The true area of every cell in km²."""
    return np.fromiter(
        (h3.cell_area(h3.int_to_str(int(c)), unit="km^2") for c in cells),
        dtype=np.float64,
        count=len(cells),
    )


async def study_area_cells(conn: AsyncConnection, res: int, bbox: BBox | None = None) -> np.ndarray:
    """The cells at ``res`` over the grid (within ``bbox``), sorted: at the grid's resolution
    and coarser, the cells containing a unit cell's centre; finer, the unit cells' children."""
    check_res(res)
    params = SqlParams()
    where = ""
    if bbox:
        env = ",".join(params.add(float(v)) for v in bbox)
        where = f" WHERE geom && ST_MakeEnvelope({env}, 4326)"
    sql = f"SELECT coalesce(array_agg(h3), '{{}}') FROM grid_cells{where}"  # one value, not rows
    async with raw_connection(conn) as raw:
        units = await raw.fetchval(sql, *params.values)
    basic = h3.api.basic_int
    if res == GRID_RES:  # a unit cell holds its own centre
        cells = iter(units)
    elif res > GRID_RES:
        cells = (child for c in units for child in basic.cell_to_children(c, res))
    else:
        cells = (basic.latlng_to_cell(*basic.cell_to_latlng(c), res) for c in units)
    return np.unique(np.fromiter(cells, dtype=np.int64))


async def data_extent(conn: AsyncConnection, filters: Filters) -> BBox | None:
    """The lon/lat bounding box of the filtered rows (None when there are none)."""
    params = SqlParams()
    geom = filters.layer.geometry_column
    sql = (
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
        f" (SELECT ST_Extent({geom}) AS e FROM {filters.layer.table}"
        f" WHERE {filters.where(params)}) AS t"
    )
    async with raw_connection(conn) as raw:
        row = await raw.fetchrow(sql, *params.values)
    return None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])


async def point_coordinates(
    conn: AsyncConnection, filters: Filters
) -> tuple[np.ndarray, np.ndarray]:
    """Lon and lat of every filtered row, as float64 arrays."""
    params = SqlParams()
    geom = point_sql(filters.layer)
    sql = (
        f"SELECT string_agg(float8send(ST_X({geom})) || float8send(ST_Y({geom})), ''::bytea)"
        f" FROM {filters.layer.table} WHERE {filters.where(params)}"
    )
    async with raw_connection(conn) as raw:
        blob = await raw.fetchval(sql, *params.values)
    xy = np.frombuffer(blob or b"", dtype=">f8").astype(np.float64).reshape(-1, 2)
    return xy[:, 0].copy(), xy[:, 1].copy()


def interval_step(interval: str) -> timedelta:
    """The length of one bucket."""
    return {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}[
        interval
    ]


@dataclass(frozen=True)
class Series:
    """Counts per time bucket, zero-filled, buckets starting at ``starts``."""

    interval: str
    starts: list[datetime]
    counts: list[int]


async def time_series(
    conn: AsyncConnection,
    filters: Filters,
    interval: str,
    cell: int | None = None,
    tz: str = "UTC",
) -> Series:
    """Counts per ``interval`` bucket (in time zone ``tz``) between filters.start and .end,
    of the rows in ``cell`` (any resolution 5–11: the rows whose point it contains) when
    given."""
    if interval not in INTERVALS:
        raise BadRequest(f"interval must be one of {', '.join(INTERVALS)}", code="invalid_interval")
    if not filters.layer.time_column:
        raise BadRequest(f"layer {filters.layer.id!r} has no time column", code="unknown_property")
    end = filters.end or datetime.now(UTC)
    start = filters.start or end - interval_step(interval) * 90
    if (end - start) / interval_step(interval) > MAX_BUCKETS:
        raise BadRequest(
            f"the period holds more than {MAX_BUCKETS:,} {interval}s: use a longer interval",
            code="too_many_buckets",
        )
    filters = filters.between(start, end)
    params = SqlParams()
    where = filters.where(params)
    if cell is not None:
        column = filters.layer.cell_columns.get(h3.api.basic_int.get_resolution(cell))
        if column:
            where += f" AND {column} = {params.add(cell)}"
        else:
            where += (
                f" AND ST_Intersects({point_sql(filters.layer)},"
                f" ST_GeomFromText({params.add(cell_polygon(cell).wkt)}, 4326))"
            )
    unit, zone = params.add(interval), params.add(tz)
    lo_ts, hi_ts = params.add(start), params.add(end)
    local = f"({filters.layer.time_column} AT TIME ZONE {zone})"
    sql = f"""
        WITH counts AS (
            SELECT date_trunc({unit}, {local}) AS bucket, count(*) AS n
            FROM {filters.layer.table} WHERE {where} GROUP BY 1
        ), buckets AS (
            SELECT generate_series(
                date_trunc({unit}, {lo_ts}::timestamptz AT TIME ZONE {zone}),
                ({hi_ts}::timestamptz AT TIME ZONE {zone}) - interval '1 microsecond',
                ('1 ' || {unit})::interval) AS bucket
        )
        SELECT b.bucket AT TIME ZONE {zone}, coalesce(c.n, 0)
        FROM buckets b LEFT JOIN counts c USING (bucket) ORDER BY b.bucket"""
    async with raw_connection(conn) as raw:
        rows = await raw.fetch(sql, *params.values)
    return Series(interval, [r[0] for r in rows], [int(r[1]) for r in rows])


@dataclass(frozen=True)
class PeriodComparison:
    """Counts per cell in period a and period b."""

    cells: np.ndarray
    count_a: np.ndarray
    count_b: np.ndarray


async def compare_periods(
    conn: AsyncConnection, filters_a: Filters, filters_b: Filters, res: int
) -> PeriodComparison:
    """Counts per cell at ``res`` in two periods, over every cell with a row in either."""
    cells_a, counts_a = await cell_counts(conn, filters_a, res)
    cells_b, counts_b = await cell_counts(conn, filters_b, res)
    cells = np.union1d(cells_a, cells_b)
    a = np.zeros(len(cells), dtype=np.int64)
    b = np.zeros(len(cells), dtype=np.int64)
    a[np.searchsorted(cells, cells_a)] = counts_a
    b[np.searchsorted(cells, cells_b)] = counts_b
    return PeriodComparison(cells, a, b)


@dataclass(frozen=True)
class SiteReadings:
    """One reading per sensor: the sensor, where it stands, the value and when it was taken."""

    sensor_ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    values: np.ndarray
    times: list[datetime]


def check_property(name: str) -> str:
    """``name`` if it can be a reading's property name."""
    if not PROPERTY.match(name):
        raise BadRequest(f"property {name!r} is not a property name", code="invalid_property")
    return name


async def readings_near(
    conn: AsyncConnection, prop: str, at: datetime, window: timedelta
) -> SiteReadings:
    """Each sensor's reading of ``prop`` nearest in time to ``at``, within ``window`` either
    side. NotFound when the property was never measured."""
    check_property(prop)
    sql = """
        SELECT DISTINCT ON (r.sensor_id) r.sensor_id, ST_X(s.geom), ST_Y(s.geom), r.value, r.ts
        FROM readings r JOIN sensors s ON s.id = r.sensor_id
        WHERE r.property = $1 AND r.ts BETWEEN $2::timestamptz - $3::interval
                                           AND $2::timestamptz + $3::interval
          AND r.value = r.value
        ORDER BY r.sensor_id, abs(extract(epoch FROM r.ts - $2::timestamptz)), r.ts"""
    async with raw_connection(conn) as raw:
        rows = await raw.fetch(sql, prop, at, window)
        if not rows and not await raw.fetchval(
            "SELECT EXISTS (SELECT 1 FROM readings WHERE property = $1)", prop
        ):
            raise NotFound(f"no sensor measures {prop!r}", code="unknown_property")
    n = len(rows)
    return SiteReadings(
        np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        np.fromiter((r[1] for r in rows), dtype=np.float64, count=n),
        np.fromiter((r[2] for r in rows), dtype=np.float64, count=n),
        np.fromiter((r[3] for r in rows), dtype=np.float64, count=n),
        [r[4] for r in rows],
    )


NEAREST_READING = """
    SELECT {pick}(r.ts) FROM sensors s CROSS JOIN LATERAL (
        SELECT ts FROM readings
        WHERE sensor_id = s.id AND property = $1 AND ts {op} $2::timestamptz AND value = value
        ORDER BY ts {order} LIMIT 1) r"""


async def nearest_reading_time(conn: AsyncConnection, prop: str, at: datetime) -> datetime | None:
    """The time of the reading of ``prop`` nearest to ``at`` (None when there is none)."""
    check_property(prop)
    async with raw_connection(conn) as raw:
        before = await raw.fetchval(
            NEAREST_READING.format(pick="max", op="<=", order="DESC"), prop, at
        )
        after = await raw.fetchval(
            NEAREST_READING.format(pick="min", op=">=", order="ASC"), prop, at
        )
    found = [t for t in (before, after) if t is not None]
    return min(found, key=lambda t: abs((t - at).total_seconds()), default=None)


def expand_bbox(bbox: BBox, metres: float) -> BBox:
    """``bbox`` widened by ``metres`` on every side (clamped to valid lon/lat)."""
    dlat = metres / 111_320.0
    coslat = max(math.cos(math.radians(max(abs(bbox[1]), abs(bbox[3])))), 0.01)
    dlon = dlat / coslat
    return (
        max(bbox[0] - dlon, -180.0),
        max(bbox[1] - dlat, -90.0),
        min(bbox[2] + dlon, 180.0),
        min(bbox[3] + dlat, 90.0),
    )
