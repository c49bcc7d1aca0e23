"""Incident tiles filtered by status alone find their cases through the index on (status,
tile key) (migration 0029, tiles.clusters.value_ranges): tiles of zooms 10–16 with the web
app's open and closed filters, one status, and a mixed filter (which keeps the old path) show
what the cluster rule, applied in Python to the cases that pass the filter (read with SQL,
filtered in Python), says they show, and equal the same tiles built without the status
index condition; the generic plan of a status-only tile names the index."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import mapbox_vector_tile
import psycopg
import pytest

from gis.tilemath import buffer_margin, lonlat_to_mercator, tile_bounds, tile_size
from layers.catalog.registry import Layer, load_catalog
from layers.db.scope import Visibility
from layers.incidents.workflow import STATES
from tests.helpers import CENTER, copy_incidents
from tests.tiles.test_cluster_levels import blob, cell_of, rule
from tiles.clusters import value_ranges
from tiles.filters import TileFilters
from tiles.mvt import Statement
from tiles.service import SESSION_SETTINGS, build_tile
from tiles.sources import Source
from tiles.statement import tile_statement

Case = tuple[int, str, str, float, float]
"""id, status, category, EPSG:3857 x and y."""
FILTERS: dict[str, Callable[[Case], bool]] = {
    "status NOT IN ('closed','cancelled')": lambda c: c[1] not in ("closed", "cancelled"),
    "status = 'reported'": lambda c: c[1] == "reported",
    "status IN ('closed','cancelled')": lambda c: c[1] in ("closed", "cancelled"),
    "status = 'reported' AND category_code = '0101'": lambda c: (
        c[1] == "reported" and c[2] == "0101"
    ),
}
"""The filters, and the same conditions in Python."""
STATUS_ONLY = list(FILTERS)[:3]
MIXED = list(FILTERS)[3]
SPARSE_PLACE = (CENTER[0] + 0.012, CENTER[1] - 0.008)
"""A second place, off the centre of the cases."""


@pytest.fixture(scope="module")
def url(tiles_city) -> str:
    """A copy of the tile city with dense cells of open and closed cases on the seams of the
    zoom-16 tile at the city centre."""
    url = tiles_city("cityhex_status_tiles")
    x, y = lonlat_to_mercator(*CENTER)
    minx, _, maxx, maxy = tile_bounds(16, *cell_of(x, y, 16))
    cell, buffer = tile_size(20), buffer_margin() * tile_size(16)
    add(url, blob(minx + 5.5 * cell, maxy - 5.5 * cell, 30), "reported")
    add(url, blob(minx + 5.5 * cell, maxy - 5.5 * cell, 12), "closed")
    add(url, blob(maxx + buffer / 2, maxy - 2.5 * cell, 30), "closed")
    add(url, blob(minx - buffer / 2, maxy - 9.5 * cell, 3), "cancelled")
    add(url, blob(minx - buffer / 2, maxy - 12.5 * cell, 8), "reported")
    add(url, blob(minx + 10.5 * cell, maxy - 10.5 * cell, 20), "in_progress")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) incidents")  # as autovacuum leaves a table
    return url


def add(url: str, rows: list[tuple[str, datetime, float, float]], status: str) -> None:
    """COPY cases ``rows`` (tests.helpers.copy_incidents), then give them ``status``."""
    with psycopg.connect(url, autocommit=True) as conn:
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM incidents").fetchone()
        copy_incidents(url, rows)
        conn.execute("UPDATE incidents SET status = %s WHERE id > %s", (status, last))


def cases(url: str) -> list[Case]:
    """Every case with what the filters read and its EPSG:3857 point."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, status, category_code, ST_X(geom_3857), ST_Y(geom_3857) FROM incidents"
        ).fetchall()


def places() -> list[tuple[int, int, int]]:
    """Tiles of zooms 10–16: around the dense cells at the centre (the tile and its eight
    neighbours) and the tile holding a sparser place."""
    x, y = lonlat_to_mercator(*CENTER)
    x16, y16 = cell_of(x, y, 16)
    sx, sy = lonlat_to_mercator(*SPARSE_PLACE)
    tiles = []
    for z in range(10, 17):
        k = 1 << (16 - z)
        tiles += [(z, x16 // k + dx, y16 // k + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        tiles.append((z, *cell_of(sx, sy, z)))
    return tiles


def incidents() -> Layer:
    """The catalog's incidents layer."""
    return load_catalog().get("incidents")


async def both(url: str, cql: str, tiles: list[tuple[int, int, int]]) -> list[tuple[list, list]]:
    """Each tile's decoded incidents features with ``cql`` through the layer as catalogued,
    and through the layer without the enum of its status (no status index condition), on a
    connection with the tile service's session settings."""
    layer = incidents()
    plain = layer.model_copy(update={"enums": {}})
    db = await asyncpg.connect(url, server_settings=SESSION_SETTINGS)
    try:
        out = []
        for z, x, y in tiles:
            pair = []
            for view in (layer, plain):
                body, _ = await build_tile(
                    db, [Source("incidents", view)], z, x, y, TileFilters(cql=cql)
                )
                pair.append(
                    mapbox_vector_tile.decode(body).get("incidents", {}).get("features", [])
                )
            out.append((pair[0], pair[1]))
        return out
    finally:
        await db.close()


def test_the_catalog_lists_the_workflow_states() -> None:
    assert incidents().enums["status"] == list(STATES)


def test_only_a_status_only_filter_takes_the_status_index() -> None:
    layer = incidents()
    for cql in STATUS_ONLY:
        assert value_ranges(layer, TileFilters(cql=cql), Statement([10, 0, 0]))
    cql = STATUS_ONLY[0]
    scoped = Visibility(districts=frozenset({"440304"}))
    for view, filters in (
        (layer, TileFilters(cql=MIXED)),
        (layer, TileFilters(cql="id > 3")),
        (layer, TileFilters(categories=("01",), cql=cql)),
        (layer, TileFilters(start=datetime(2026, 1, 1, tzinfo=UTC), cql=cql)),
        (layer, TileFilters(cql=cql, visible=scoped)),
        (layer.model_copy(update={"enums": {}}), TileFilters(cql=cql)),
    ):
        assert value_ranges(view, filters, Statement([10, 0, 0])) == [], filters


@pytest.mark.parametrize("cql", list(FILTERS))
def test_filtered_tiles_follow_the_rule_on_the_passing_cases(url: str, cql: str) -> None:
    passing = [(i, x, y) for i, *rest, x, y in (c for c in cases(url) if FILTERS[cql](c))]
    limit, below = incidents().cluster_cell_max, incidents().cluster_below
    tiles = places()
    clusters_seen = shown_seen = hidden_seen = 0
    for (z, x, y), (fast, plain) in zip(tiles, asyncio.run(both(url, cql, tiles)), strict=True):
        assert sorted(fast, key=str) == sorted(plain, key=str), (cql, z, x, y)
        shown, clusters, hidden, _ = rule(passing, z, x, y, limit if z >= below else 0)
        assert {f["id"] for f in fast if "count" not in f["properties"]} == shown, (cql, z, x, y)
        counts = sorted(f["properties"]["count"] for f in fast if "count" in f["properties"])
        assert counts == clusters, (cql, z, x, y)
        clusters_seen += len(clusters)
        shown_seen += len(shown)
        hidden_seen += hidden if z >= below else 0
    assert clusters_seen and shown_seen and hidden_seen, cql


def generic_plan(url: str, cql: str, z: int, x: int, y: int) -> str:
    """The generic plan (text) of the incidents tile statement with ``cql``, prepared with its
    parameters' types inferred as the tile service's are. A few thousand cases cost the same
    through either key index, and the planner picks by size (at scale, the figures in
    docs/tiles.md): the plan is taken without the plain key index and the sequential scan,
    in a transaction rolled back, so it shows what the status index can serve."""
    statement = tile_statement([Source("incidents", incidents())], z, x, y, TileFilters(cql=cql))
    assert statement is not None
    sql, args = statement
    with psycopg.connect(url) as conn:
        conn.execute("DROP INDEX ix_incidents_tile_key")
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute(f"PREPARE tile AS {sql}")
        # a generic plan does not depend on the values: NULLs stand for them
        nulls = ", ".join(["NULL"] * len(args))
        plan = "\n".join(line for (line,) in conn.execute(f"EXPLAIN EXECUTE tile({nulls})"))
        conn.rollback()
    return plan


def status_ranges(plan: str) -> list[str]:
    """The index conditions of the plan's scans of ix_incidents_status_tile_key."""
    lines = plan.splitlines()
    return [
        after.strip()
        for line, after in itertools.pairwise(lines)
        if "ix_incidents_status_tile_key" in line and "Index Cond" in after
    ]


@pytest.mark.parametrize("z", [11, 14])
def test_a_status_only_tile_counts_stored_cells_and_reads_status_ranges(url: str, z: int) -> None:
    """Cells are counted from the stored cells by status (zoom 17 for a z11 tile, zoom 18
    for a z14 one); the cases a z14 tile shows are read one status range of the index at a
    time; a z11 tile, all clusters, reads no case."""
    x, y = cell_of(*lonlat_to_mercator(*CENTER), z)
    stored = "incident_cluster_cells" if z == 11 else "incident_cluster_levels"
    for cql in STATUS_ONLY:
        plan = generic_plan(url, cql, z, x, y)
        assert f"on {stored} a" in plan, plan
        ranges = status_ranges(plan)
        if z == 11:
            assert ranges == [] and "on incidents" not in plan, plan
            continue
        assert ranges, plan
        for cond in ranges:
            # one range of keys per passing status
            assert re.search(
                r"status\)?(::text)? = ANY .* AND \(+tile_key\(geom_3857\)\)? >=", cond
            )
