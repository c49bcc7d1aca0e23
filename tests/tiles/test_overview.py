"""``GET /grid/overview.svg``: the web app's first view drawn by PostGIS, on a copy of the tile
city with a green area (0505) and a water pipe (0130) added, and a catalog file making the
districts layer readable by dispatchers only. The pictures are checked against the h3
package's cell boundaries and shapely geometries projected with pyproj (Web Mercator fitted
into the picture by the textbook formula), within a pixel."""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import h3
import psycopg
import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.helpers import make_key

SVG = "{http://www.w3.org/2000/svg}"
INSPECTOR = 1
"""The tile city gives cell c to inspector 1 + c % 3."""
W, H = 390, 380
GREEN = shapely.Polygon(
    [(114.046, 22.547), (114.049, 22.547), (114.0495, 22.5495), (114.046, 22.549)]
)
PIPE = shapely.LineString([(114.044, 22.545), (114.047, 22.548), (114.05, 22.546)])
DISTRICTS_FOR_DISPATCHERS = """
[layers.districts]
title = "Districts"
table = "districts"
geometry_type = "MultiPolygon"
geometry_3857_column = "geom_3857"
public = false
read_by = ["dispatcher"]
[layers.districts.properties]
code = "string"
name = "string"
"""
MERCATOR = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)


@pytest.fixture(scope="module")
def web(tiles_city, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The app on this module's tile city (with the green area and the pipe), with the
    districts readable by dispatchers only; the client and the database URL."""
    from spatial_api.app import create_app

    url = tiles_city("test_overview")
    with psycopg.connect(url, autocommit=True) as conn:
        for code, kind, geom in (
            ("4403040505000001", "green_area", GREEN),
            ("4403040130000001", "pipe", PIPE),
        ):
            conn.execute(
                "INSERT INTO assets (code, class_code, kind, state, owner_department_id, h3, geom)"
                " VALUES (%s, %s, %s, 'intact', 1, 0, ST_GeomFromText(%s, 4326))",
                (code, code[6:10], kind, geom.wkt),
            )
    catalog = tmp_path_factory.mktemp("catalog") / "districts.toml"
    catalog.write_text(DISTRICTS_FOR_DISPATCHERS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_CATALOG", str(catalog))
        with TestClient(create_app(url)) as client:
            yield client, url


def picture(web: tuple[TestClient, str], headers: dict, **params: object) -> ET.Element:
    """The SVG of an asked picture, parsed (so it must be well-formed XML)."""
    client, _ = web
    r = client.get(
        "/grid/overview.svg", params={"width": W, "height": H, **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.content)
    assert root.tag == f"{SVG}svg"
    assert r.headers["x-bounds"] == root.get("data-bounds")
    return root


def rings(d: str) -> list[list[tuple[float, float]]]:
    """The rings (or lines) of SVG path data written by ST_AsSVG (absolute M/L/Z)."""
    out = []
    for part in re.split(r"M", d)[1:]:
        numbers = [float(v) for v in re.findall(r"-?[0-9.]+", part)]
        out.append(list(zip(numbers[0::2], numbers[1::2], strict=True)))
    return out


def projector(root: ET.Element):
    """lon/lat → picture pixels, from the picture's bounds (pyproj and proportions)."""
    west, south, east, north = (float(v) for v in root.get("data-bounds").split(","))
    x0, y0 = MERCATOR.transform(west, south)
    x1, y1 = MERCATOR.transform(east, north)
    width, height = float(root.get("width")), float(root.get("height"))

    def to_pixels(lon: float, lat: float) -> tuple[float, float]:
        x, y = MERCATOR.transform(lon, lat)
        return (x - x0) / (x1 - x0) * width, (y1 - y) / (y1 - y0) * height

    return to_pixels


def group(root: ET.Element, name: str) -> ET.Element | None:
    """The picture's group of one layer."""
    return root.find(f"{SVG}g[@data-layer='{name}']")


def my_cells_by_h3() -> set[str]:
    """The inspector's cells of the tile city, recomputed with the h3 package."""
    box = h3.LatLngPoly(
        [(22.535, 114.035), (22.535, 114.065), (22.565, 114.065), (22.565, 114.035)]
    )
    return {c for c in h3.h3shape_to_cells(box, 10) if 1 + h3.str_to_int(c) % 3 == INSPECTOR}


def test_my_cells_are_h3s_boundaries_projected_and_fill_the_picture(web) -> None:
    _, url = web
    root = picture(web, make_key(url, "inspector", INSPECTOR))
    cells = group(root, "my-cells")
    paths = cells.findall(f"{SVG}path")
    assert {p.get("data-cell") for p in paths} == my_cells_by_h3()
    with psycopg.connect(url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM grid_cells WHERE inspector_id = %s", (INSPECTOR,)
        ).fetchone()[0]
    assert len(paths) == count
    to_pixels = projector(root)
    drawn = []
    for p in paths:
        (ring,) = rings(p.get("d"))
        expected = shapely.Polygon(
            [to_pixels(lng, lat) for lat, lng in h3.cell_to_boundary(p.get("data-cell"))]
        )
        got = shapely.Polygon(ring)
        assert got.hausdorff_distance(expected) <= 1.0
        drawn.append(got)
    # fitted as MapLibre's fitBounds with 20 px padding: inside, touching the padding one way
    minx, miny, maxx, maxy = shapely.MultiPolygon(drawn).bounds
    assert minx >= 19 and miny >= 19 and maxx <= W - 19 and maxy <= H - 19
    assert min(abs(minx - 20) + abs(W - 20 - maxx), abs(miny - 20) + abs(H - 20 - maxy)) <= 2
    # base layers the inspector reads: the green area and the pipe, drawn where they are
    (green,) = group(root, "green").findall(f"{SVG}path")
    expected = shapely.Polygon([to_pixels(*c) for c in GREEN.exterior.coords])
    assert shapely.Polygon(rings(green.get("d"))[0]).hausdorff_distance(expected) <= 1.0
    (pipe,) = group(root, "water-pipes").findall(f"{SVG}path")
    expected_line = shapely.LineString([to_pixels(*c) for c in PIPE.coords])
    assert shapely.LineString(rings(pipe.get("d"))[0]).hausdorff_distance(expected_line) <= 1.0


def test_a_layer_the_caller_may_not_read_is_left_out(web) -> None:
    _, url = web
    bbox = "114.04,22.54,114.06,22.56"
    for headers in ({}, make_key(url, "inspector", INSPECTOR), make_key(url, "app")):
        root = picture(web, headers, bbox=bbox)
        assert group(root, "districts") is None
        assert group(root, "green") is not None
    dispatcher = picture(web, make_key(url, "dispatcher"), bbox=bbox)
    assert len(group(dispatcher, "districts").findall(f"{SVG}path")) == 2  # both districts
    assert group(dispatcher, "my-cells") is None


def test_nothing_is_shared_between_callers(web) -> None:
    client, url = web
    bbox = "114.04,22.54,114.06,22.56"
    mine = client.get(
        "/grid/overview.svg",
        params={"width": W, "height": H, "bbox": bbox},
        headers=make_key(url, "inspector", INSPECTOR),
    )
    anyone = client.get("/grid/overview.svg", params={"width": W, "height": H, "bbox": bbox})
    for r in (mine, anyone):
        assert "private" in r.headers["cache-control"]
        assert "Authorization" in r.headers["vary"]
    assert group(ET.fromstring(mine.content), "my-cells") is not None
    assert group(ET.fromstring(anyone.content), "my-cells") is None
    assert b"data-cell" not in anyone.content


def test_without_a_bbox_a_caller_without_cells_gets_nothing(web) -> None:
    client, url = web
    for headers in ({}, make_key(url, "dispatcher"), make_key(url, "inspector")):
        r = client.get("/grid/overview.svg", params={"width": W, "height": H}, headers=headers)
        assert (r.status_code, r.content) == (204, b"")


def test_the_inspectors_first_screen_is_small(web) -> None:
    client, url = web
    r = client.get(
        "/grid/overview.svg",
        params={"width": 390, "height": 380},
        headers=make_key(url, "inspector", INSPECTOR),
    )
    assert len(gzip.compress(r.content, 9)) <= 60 * 1024


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"bbox": "114,22.5"}, "invalid_bbox"),
        ({"bbox": "114.1,22.5,114.0,22.6"}, "invalid_bbox"),
        ({"bbox": "114,22,115,23"}, "bbox_too_large"),
        ({"bbox": "114,91,114.1,92"}, "invalid_bbox"),
        ({"width": 10, "bbox": "114.04,22.54,114.06,22.56"}, None),
        ({"height": 99999, "bbox": "114.04,22.54,114.06,22.56"}, None),
    ],
)
def test_bad_input_is_a_400_json_error(web, params: dict, code: str | None) -> None:
    client, _ = web
    r = client.get("/grid/overview.svg", params={"width": W, "height": H, **params})
    assert r.status_code in (400, 422), r.text
    body = r.json()
    assert body["status"] == r.status_code and body["message"]
    if code:
        assert (r.status_code, body["code"]) == (400, code)
