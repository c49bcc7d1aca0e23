"""tile_key(geometry) puts a point in exactly the key range of every tile holding it, checked
against the slippy-map tile formula; the function works under any search_path, and tile
statements work whatever the layer's table is called."""

from __future__ import annotations

import asyncio
import math

import asyncpg
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest

from gis.tilemath import tile_key_range
from layers.catalog.registry import Layer
from tiles.filters import TileFilters
from tiles.service import build_tile
from tiles.sources import Source

ORIGIN = math.pi * 6378137


def tile_of_3857(x: float, y: float, z: int) -> tuple[int, int]:
    """The column and row of the zoom-``z`` tile holding EPSG:3857 point ``x, y``."""
    n = 2**z
    return math.floor((x + ORIGIN) / (2 * ORIGIN) * n), math.floor((ORIGIN - y) / (2 * ORIGIN) * n)


def keys(conn: psycopg.Connection, wkts: list[str]) -> list[int]:
    """tile_key of each EPSG:3857 geometry given as WKT."""
    return [
        k
        for (k,) in conn.execute(
            "SELECT tile_key(ST_GeomFromText(w, 3857)) FROM unnest(%s::text[]) WITH ORDINALITY "
            "AS u(w, i) ORDER BY i",
            (wkts,),
        ).fetchall()
    ]


def test_a_point_key_lies_in_the_range_of_its_tile_and_no_other(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(7)
    world = rng.uniform(-ORIGIN * 0.999, ORIGIN * 0.999, size=(1000, 2))
    city = np.column_stack([rng.uniform(12.66e6, 12.73e6, 1000), rng.uniform(2.56e6, 2.62e6, 1000)])
    pts = np.vstack([world, city])
    got = keys(conn, [f"POINT({x:.6f} {y:.6f})" for x, y in pts])
    for (x, y), key in zip(np.round(pts, 6), got, strict=True):
        for z in range(0, 23):
            tx, ty = tile_of_3857(x, y, z)
            low, high = tile_key_range(z, tx, ty)
            assert low <= key < high, (x, y, z)
            right = tile_key_range(z, (tx + 1) % 2**z, ty)
            below = tile_key_range(z, tx, (ty + 1) % 2**z)
            if z:
                assert not right[0] <= key < right[1] and not below[0] <= key < below[1]


def test_an_empty_point_or_one_off_the_map_has_no_key(conn: psycopg.Connection) -> None:
    beyond = ORIGIN * 1.01
    wkts = ["POINT EMPTY", f"POINT(0 {beyond!r})", f"POINT({-beyond!r} 0)", "POINT(0 0)"]
    assert keys(conn, wkts)[:3] == [None, None, None]
    assert keys(conn, wkts)[3] is not None


def test_the_key_index_survives_an_empty_search_path(conn: psycopg.Connection) -> None:
    # autovacuum, pg_restore and REINDEX run with an empty search_path
    conn.execute("SET search_path = ''")
    try:
        conn.execute("ANALYZE public.incidents")
        conn.execute("REINDEX INDEX public.ix_incidents_tile_key")
        conn.execute("SELECT public.tile_key(public.ST_MakePoint(1, 2))")
    finally:
        conn.execute("RESET search_path")


@pytest.mark.parametrize("table", ["n", "rows"])
def test_any_table_name_serves_tiles(conn: psycopg.Connection, db_url: str, table: str) -> None:
    name = f'"{table}"'
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(
        f"CREATE TABLE {name} (id bigint PRIMARY KEY, geom geometry(Point, 4326), "
        "geom_3857 geometry(Point, 3857))"
    )
    conn.execute(
        f"INSERT INTO {name} SELECT i, ST_MakePoint(i * 0.001, 0), "
        f"ST_Transform(ST_SetSRID(ST_MakePoint(i * 0.001, 0), 4326), 3857) "
        "FROM generate_series(1, 50) AS i"
    )
    conn.execute(f"CREATE INDEX ON {name} (tile_key(geom_3857)) INCLUDE (geom_3857)")
    conn.commit()
    for keyed, limit in ((True, 10), (True, 100), (False, 10), (False, 100)):
        layer = Layer(
            id="probe",
            title="probe",
            table="probe",
            geometry_type="Point",
            geometry_3857_column="geom_3857",
            tile_key=keyed,
            cluster_cell_max=limit,
        ).model_copy(update={"table": table})
        body = asyncio.run(tile(db_url, Source("probe", layer), 0, 0, 0))
        feats = mapbox_vector_tile.decode(body)["probe"]["features"]
        counts = [f["properties"].get("count", 1) for f in feats]
        assert sum(counts) == 50, (table, keyed, limit)
        assert (len(feats) == 50) == (limit == 100)


async def tile(url: str, source: Source, z: int, x: int, y: int) -> bytes:
    """One tile of ``source``, built on a connection of its own."""
    db = await asyncpg.connect(url)
    try:
        return (await build_tile(db, [source], z, x, y, TileFilters()))[0]
    finally:
        await db.close()
