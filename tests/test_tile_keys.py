"""tile_key(geometry) puts a geometry in exactly the key range of every tile holding its box
centre, checked against the slippy-map tile formula."""

from __future__ import annotations

import math

import numpy as np
import psycopg

from gis.tilemath import tile_key_range

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


def test_a_line_or_polygon_is_keyed_by_its_box_centre(conn: psycopg.Connection) -> None:
    shapes = {
        "LINESTRING(12700000 2580000, 12700900 2580100, 12700300 2580800)": (12700450, 2580400),
        "POLYGON((12710000 2590000, 12712000 2590000, 12710000 2591000, 12710000 2590000))": (
            12711000,
            2590500,
        ),
    }
    got = keys(conn, list(shapes))
    for key, (cx, cy) in zip(got, shapes.values(), strict=True):
        tx, ty = tile_of_3857(cx, cy, 22)
        low, high = tile_key_range(22, tx, ty)
        assert low <= key < high
