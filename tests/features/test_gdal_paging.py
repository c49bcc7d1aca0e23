"""What GDAL's OGC API Features driver reads from a running server: the page size from
/openapi.json (GDAL 3.8 and later: the literal items path of the collection, its ``limit``
parameter's ``$ref``, that parameter's schema ``default`` and ``maximum``), and the geometry
type of a layer holding points, lines and polygons from the schema the collection is
``describedBy``.

Item requests are counted from the server's own /metrics. Which GDAL runs is the one the
machine has: ``ogrinfo``/``ogr2ogr`` (gdal-bin) and the library pyogrio carries.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pyogrio
import pyogrio.raw
import pytest

from tests.helpers import running_server

N_POINTS, N_LINES, N_POLYGONS = 2_300, 150, 50
N_ASSETS = N_POINTS + N_LINES + N_POLYGONS
ITEMS = re.compile(
    r'^cityhex_http_requests_total\{method="GET",route="/collections/\{layer_id\}/items"'
)
needs_ogrinfo = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="needs gdal-bin")


@pytest.fixture(scope="module")
def server(new_database) -> Iterator[str]:
    """``cityhex serve`` on assets stored points first (as the demo city's are), then lines
    and polygons, so a client sampling the first page sees only points."""
    url = new_database("cityhex_gdal_paging")
    code = "'44030401' || lpad(mod(i, 3)::text, 2, '0') || lpad(i::text, 6, '0')"
    where = "114 + mod(i, 97) * 0.001, 22.5 + (i / 97) * 0.001"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO assets (code, class_code, kind, geom) SELECT {code}, '0101', 'lamp', "
            f"ST_SetSRID(ST_MakePoint({where}), 4326) FROM generate_series(1, %s) i",
            (N_POINTS,),
        )
        conn.execute(
            f"INSERT INTO assets (code, class_code, kind, geom) SELECT {code}, '0301', 'pipe', "
            f"ST_SetSRID(ST_MakeLine(ST_MakePoint({where}), ST_MakePoint(114.2, 22.6)), 4326) "
            "FROM generate_series(%s::int, %s::int) i",
            (N_POINTS + 1, N_POINTS + N_LINES),
        )
        conn.execute(
            f"INSERT INTO assets (code, class_code, kind, geom) SELECT {code}, '0401', "
            f"'green_area', ST_Expand(ST_SetSRID(ST_MakePoint({where}), 4326), 0.0002) "
            "FROM generate_series(%s::int, %s::int) i",
            (N_POINTS + N_LINES + 1, N_ASSETS),
        )
        conn.execute(
            "INSERT INTO districts (code, name, geom) VALUES ('440304', '福田区', "
            "ST_Multi(ST_MakeEnvelope(114.0, 22.5, 114.1, 22.6, 4326)))"
        )
    with running_server(url) as base:
        yield base


def item_requests(base: str) -> int:
    """How many item pages the server has answered."""
    text = httpx.get(f"{base}/metrics").text
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if ITEMS.match(line))
    )


def resolve(doc: dict, ref: str) -> dict:
    """A local ``$ref`` (JSON pointer) of ``doc``."""
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_limit_is_declared_where_gdal_reads_it(server: str) -> None:
    doc = httpx.get(f"{server}/openapi.json").json()
    for collection in httpx.get(f"{server}/collections").json()["collections"]:
        path = doc["paths"][f"/collections/{collection['id']}/items"]
        refs = [p["$ref"] for p in path["get"]["parameters"] if "limit" in p.get("$ref", "")]
        assert len(refs) == 1
        limit = resolve(doc, refs[0])
        assert limit["name"] == "limit" and limit["in"] == "query"
        assert limit["schema"]["default"] == 1000 and limit["schema"]["maximum"] == 10_000


def test_a_request_without_limit_gets_the_declared_default(server: str) -> None:
    page = httpx.get(f"{server}/collections/assets/items").json()
    assert page["numberReturned"] == 1000 and page["numberMatched"] == N_ASSETS
    capped = httpx.get(f"{server}/collections/assets/items", params={"limit": 50_000}).json()
    assert capped["numberReturned"] == N_ASSETS  # above the maximum: capped, not refused


@pytest.mark.ogrinfo
@needs_ogrinfo
def test_ogrinfo_declares_each_layer_with_its_geometry_type(server: str) -> None:
    def geometry(layer: str) -> str:
        out = subprocess.run(
            ["ogrinfo", "-ro", "-so", f"OAPIF:{server}", layer],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        return re.search(r"^Geometry: (.+)$", out, re.MULTILINE).group(1)

    # the first page of assets holds only points; the layer holds lines and polygons too
    assert geometry("assets") == "Geometry Collection"
    assert geometry("districts") == "Multi Polygon"


def gdal_version(tool: str) -> tuple[int, ...]:
    """The version of the GDAL behind ``tool`` (``cli`` or ``library``)."""
    if tool == "library":
        return pyogrio.__gdal_version__
    out = subprocess.run(["ogrinfo", "--version"], capture_output=True, text=True).stdout
    return tuple(int(n) for n in re.search(r"GDAL (\d+)\.(\d+)\.(\d+)", out).groups())


def copy_assets(
    tool: str, server: str, target: Path, options: tuple[str, ...] = ()
) -> tuple[str, int]:
    """Copy the assets layer to a GeoPackage (with ``options`` for ogr2ogr); its geometry
    type and feature count as GDAL reads them back."""
    if tool == "cli":
        args = ["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{server}", "assets", *options]
        subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    else:
        meta, _, geometry, fields = pyogrio.raw.read(f"OAPIF:{server}", layer="assets")
        pyogrio.raw.write(
            target, geometry, fields, fields=meta["fields"], layer="assets", driver="GPKG",
            crs=meta["crs"], geometry_type=meta["geometry_type"],
        )  # fmt: skip
    info = pyogrio.read_info(target, layer="assets")
    return info["geometry_type"], info["features"]


@pytest.mark.ogrinfo
@pytest.mark.parametrize("tool", ["cli", "library"])
@pytest.mark.filterwarnings("ignore:A geometry of type")
def test_gdal_copies_the_layer_a_thousand_features_a_page(
    server: str, tool: str, tmp_path: Path
) -> None:
    if tool == "cli" and shutil.which("ogr2ogr") is None:
        pytest.skip("needs gdal-bin")
    # GDAL before 3.8 pages by 10 whatever the server declares: there the documented
    # workaround (-oo PAGE_SIZE=10000) is what is checked, and the server must serve it
    old = gdal_version(tool) < (3, 8)
    options, page = (("-oo", "PAGE_SIZE=10000"), 10_000) if old else ((), 1000)
    before = item_requests(server)
    kind, count = copy_assets(tool, server, tmp_path / "assets.gpkg", options)
    pages = item_requests(server) - before
    assert count == N_ASSETS and kind == "GeometryCollection"
    # one small sample page to learn the layer, then full pages
    assert pages <= math.ceil(N_ASSETS / page) + 1, pages
