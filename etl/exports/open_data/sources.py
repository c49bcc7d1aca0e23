"""The rows of the open datasets, read from the database in chunks.

Every source yields ``Chunk``s: plain values (text, numbers, None) in the order of the
dataset's fields, and one lon/lat geometry a row (or none, for a table). Queries name the
columns they publish; nothing else is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely

from gis.hexgrid import cell_polygons, latlng_cells, to_hex
from layers.catalog.registry import load_catalog
from layers.incidents.working_time import working_time_settings

CHUNK_ROWS = 5_000
CASE_RESOLUTION = 8
"""The H3 resolution that cases are counted in (about 0.74 km² a cell)."""
MIN_COUNT = 5
"""Counts of cases below this are left out of the open data."""
LEFT_OUT_STATUS = "cancelled"
"""Cancelled cases (作废: duplicates, false reports) are not counted."""


@dataclass(frozen=True)
class Chunk:
    """Some rows of a dataset: values in field order, and their geometries (None: a table)."""

    rows: list[tuple[Any, ...]]
    geometries: np.ndarray | None


def fetch_chunks(
    conn: psycopg.Connection, query: str, params: Sequence[Any] = ()
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``query`` a chunk at a time, through a server-side cursor."""
    with conn.cursor(name="open_data") as cur:
        cur.execute(query, params)
        while rows := cur.fetchmany(CHUNK_ROWS):
            yield rows


def with_wkb_geometry(rows: list[tuple[Any, ...]]) -> Chunk:
    """A chunk of rows whose last value is a WKB geometry."""
    geometries = shapely.from_wkb(np.array([bytes(r[-1]) for r in rows], dtype=object))
    return Chunk([r[:-1] for r in rows], geometries)


def layer_rows(conn: psycopg.Connection, layer_id: str, fields: Sequence[str]) -> Iterator[Chunk]:
    """The ``fields`` of every feature of a catalog layer (``id`` is the layer's id, H3 ids
    as hex text), ordered by id, with the geometry in lon/lat."""
    layer = load_catalog().get(layer_id)
    columns = [layer.id_column if f == "id" else f for f in fields]
    query = (
        f"SELECT {', '.join(columns)}, ST_AsBinary(ST_Transform({layer.geometry_column}, 4326))"
        f" FROM {layer.table} ORDER BY {layer.id_column}"
    )
    hex_at = fields.index("id") if layer.id_type == "h3" and "id" in fields else None
    for rows in fetch_chunks(conn, query):
        chunk = with_wkb_geometry(rows)
        if hex_at is None:
            yield chunk
        else:
            hexed = [(*r[:hex_at], to_hex(r[hex_at]), *r[hex_at + 1 :]) for r in chunk.rows]
            yield Chunk(hexed, chunk.geometries)


def case_counts(conn: psycopg.Connection) -> Counter[tuple[int, str, str]]:
    """The number of cases by (res-8 cell holding the case's point, month of report in the
    city's time zone, category), cancelled cases left out."""
    query = (
        "SELECT ST_X(geom), ST_Y(geom), to_char(reported_at AT TIME ZONE %s, 'YYYY-MM'),"
        " category_code FROM incidents WHERE status <> %s"
    )
    counts: Counter[tuple[int, str, str]] = Counter()
    for rows in fetch_chunks(conn, query, (working_time_settings().timezone, LEFT_OUT_STATUS)):
        lon = np.array([r[0] for r in rows], dtype=float)
        lat = np.array([r[1] for r in rows], dtype=float)
        cells = latlng_cells(lon, lat, CASE_RESOLUTION).tolist()
        counts.update(zip(cells, (r[2] for r in rows), (r[3] for r in rows), strict=True))
    return counts


def case_cell_rows(conn: psycopg.Connection) -> Iterator[Chunk]:
    """Cases counted by res-8 cell, month and category, counts under ``MIN_COUNT`` left out;
    ordered by month, category and cell, each with the cell's hexagon."""
    names = {
        code: (name, name_en)
        for code, name, name_en in conn.execute(
            "SELECT code, name, name_en FROM incident_categories"
        )
    }
    kept = sorted(
        ((key, n) for key, n in case_counts(conn).items() if n >= MIN_COUNT),
        key=lambda item: (item[0][1], item[0][2], item[0][0]),
    )
    for start in range(0, len(kept), CHUNK_ROWS):
        part = kept[start : start + CHUNK_ROWS]
        rows = [
            (to_hex(cell), month, category, *names.get(category, (None, None)), n)
            for (cell, month, category), n in part
        ]
        yield Chunk(rows, cell_polygons(cell for (cell, _, _), _ in part))


SENSOR_DAYS = """
SELECT s.code, s.kind, d.property, s.measures -> d.property ->> 'unit', d.day::text, d.mean,
       d.n, ST_AsBinary(s.geom)
FROM (SELECT sensor_id, property, (ts AT TIME ZONE %s)::date AS day, avg(value) AS mean,
             count(*) AS n
      FROM readings GROUP BY sensor_id, property, day) d
JOIN sensors s ON s.id = d.sensor_id
ORDER BY s.code, d.property, d.day
"""


def sensor_day_rows(conn: psycopg.Connection) -> Iterator[Chunk]:
    """The mean of each sensor's readings of each property on each day (in the city's time
    zone), at the sensor."""
    for rows in fetch_chunks(conn, SENSOR_DAYS, (working_time_settings().timezone,)):
        yield with_wkb_geometry(rows)


ASSET_INVENTORY = """
SELECT left(a.code, 6), d.name, d.name_en, a.class_code, a.kind, a.state, count(*)
FROM assets a LEFT JOIN districts d ON d.code = left(a.code, 6)
GROUP BY left(a.code, 6), d.name, d.name_en, a.class_code, a.kind, a.state
ORDER BY 1, 4, 6
"""


def asset_inventory_rows(conn: psycopg.Connection) -> Iterator[Chunk]:
    """The number of assets by district (the division code their code starts with), class
    and state."""
    for rows in fetch_chunks(conn, ASSET_INVENTORY):
        yield Chunk(rows, None)
