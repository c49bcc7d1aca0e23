"""OSM import through pyosmium presets: street furniture becomes coded assets that keep their
OSM ids, roads become lines, buildings polygons (holes included); files made here with
osmium's own writer, as PBF and as XML."""

from __future__ import annotations

from pathlib import Path

import orjson
import osmium
import psycopg
import pytest
import shapely
from osmium.osm.mutable import Node, Relation, Way
from typer.testing import CliRunner

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from gis.errors import BadRequest, Unprocessable
from layers.catalog.registry import load_catalog
from layers.db.settings import storage_settings
from spatial_api.cli import app
from tests.helpers import scalar

FURNITURE = {  # node id: (tags, expected kind, expected class code)
    1: ({"highway": "street_lamp"}, "lamp", "0220"),
    2: ({"emergency": "fire_hydrant", "name": "H-2"}, "hydrant", "0114"),
    3: ({"amenity": "bench"}, "bench", "0407"),
    4: ({"amenity": "waste_basket"}, "waste_basket", "0304"),
    5: ({"man_made": "surveillance"}, "surveillance_camera", "0120"),
    6: ({"highway": "traffic_signals"}, "traffic_signal", "0211"),
    7: ({"man_made": "manhole", "manhole": "sewer"}, "manhole", "0102"),
    8: ({"man_made": "manhole"}, "manhole", "0113"),
}
SQUARE = [(114.000, 22.500), (114.002, 22.500), (114.002, 22.502), (114.000, 22.502)]
HOLE = [(114.0005, 22.5005), (114.0015, 22.5005), (114.0015, 22.5015), (114.0005, 22.5015)]
BLOCK = [(114.010, 22.500), (114.011, 22.500), (114.011, 22.501), (114.010, 22.501)]


def location(node_id: int) -> tuple[float, float]:
    """Where furniture node ``node_id`` stands."""
    return 114.05 + node_id / 1000, 22.54 + node_id / 2000


def write_city(path: Path) -> Path:
    """A small city: furniture, a shop, roads, a stream, buildings (one with a hole) and a way
    that refers to a node the file lacks."""
    path.unlink(missing_ok=True)
    writer = osmium.SimpleWriter(str(path))
    for node_id, (tags, _, _) in FURNITURE.items():
        writer.add_node(Node(id=node_id, location=location(node_id), tags=tags))
    writer.add_node(Node(id=9, location=(114.06, 22.55), tags={"shop": "bakery"}))
    ring_ids = {}
    for offset, ring in ((100, SQUARE), (110, HOLE), (120, BLOCK)):
        for i, point in enumerate(ring):
            writer.add_node(Node(id=offset + i, location=point))
        ring_ids[offset] = [offset + i for i in range(len(ring))] + [offset]
    writer.add_way(
        Way(id=200, nodes=[100, 101, 102], tags={"highway": "residential", "name": "Lane A"})
    )
    writer.add_way(Way(id=201, nodes=[102, 103], tags={"highway": "footway"}))
    writer.add_way(Way(id=202, nodes=[101, 103], tags={"waterway": "stream"}))
    writer.add_way(Way(id=203, nodes=[100, 999], tags={"highway": "service"}))
    writer.add_way(Way(id=210, nodes=ring_ids[120], tags={"building": "yes", "name": "Block"}))
    writer.add_way(Way(id=211, nodes=ring_ids[100]))
    writer.add_way(Way(id=212, nodes=ring_ids[110]))
    writer.add_relation(
        Relation(
            id=300,
            members=[("w", 211, "outer"), ("w", 212, "inner")],
            tags={"type": "multipolygon", "building": "school"},
        )
    )
    writer.close()
    return path


pytestmark = pytest.mark.usefixtures("own_catalog")


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The city as an .osm.pbf file."""
    return write_city(tmp_path_factory.mktemp("osm") / "city.osm.pbf")


def test_street_furniture_becomes_coded_assets_with_osm_ids(
    url: str,
    city: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CITYHEX_DATABASE_URL", url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            [
                "import",
                str(city),
                "--layer",
                "assets",
                "--osm-preset",
                "street-furniture",
                "--division",
                "440304",
                "--json",
            ],
        )
    finally:
        monkeypatch.delenv("CITYHEX_DATABASE_URL")
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["written"] == len(FURNITURE)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code, class_code, kind, name, state, properties, "
            "ST_X(geom), ST_Y(geom) FROM assets"
        ).fetchall()
    by_id = {r[5]["osm_id"]: r for r in rows}
    assert set(by_id) == set(FURNITURE)
    for node_id, (tags, kind, klass) in FURNITURE.items():
        code, class_code, got_kind, name, state, props, x, y = by_id[node_id]
        assert code.startswith("440304" + klass) and len(code) == 16
        assert (class_code, got_kind, state) == (klass, kind, "intact")
        assert name == tags.get("name") and props["osm_type"] == "node"
        assert props["osm_tags"] == tags
        assert (x, y) == pytest.approx(location(node_id), abs=1e-7)


def test_reimport_with_osm_id_as_key_updates_in_place(url: str, city: Path) -> None:
    codes = set(r[0] for r in psycopg.connect(url).execute("SELECT code FROM assets"))
    report = import_file(
        url,
        city,
        ImportOptions(
            layer="assets",
            osm_preset="street-furniture",
            division="440304",
            mode="upsert",
            key="osm_id",
        ),
    )
    assert (report.updated, report.inserted) == (len(FURNITURE), 0)
    assert set(r[0] for r in psycopg.connect(url).execute("SELECT code FROM assets")) == codes
    assert scalar(url, "SELECT min(version) FROM assets") == 2


def test_roads_become_lines_and_cut_ways_are_noted(url: str, city: Path) -> None:
    report = import_file(url, city, ImportOptions(layer="streets", osm_preset="roads", create=True))
    assert report.written == 2
    assert any("1 OSM objects left out" in note for note in report.notes)
    with psycopg.connect(url) as conn:
        rows = dict(conn.execute("SELECT osm_id, ST_AsText(geom) FROM streets").fetchall())
    assert shapely.from_wkt(rows[200]).equals(shapely.LineString(SQUARE[:3]))
    assert shapely.from_wkt(rows[201]).equals(shapely.LineString([SQUARE[2], SQUARE[3]]))
    assert load_catalog().get("streets").geometry_type == "LineString"


def test_buildings_become_polygons_with_their_holes(url: str, tmp_path: Path) -> None:
    xml = write_city(tmp_path / "city.osm")
    report = import_file(
        url, xml, ImportOptions(layer="buildings", osm_preset="buildings", create=True)
    )
    assert report.written == 2
    with psycopg.connect(url) as conn:
        rows = {
            (t, i): (a, s)
            for t, i, a, s in conn.execute(
                "SELECT osm_type, osm_id, ST_Area(geom), subtype FROM buildings"
            ).fetchall()
        }
    school = shapely.Polygon(SQUARE, [HOLE])
    assert rows[("relation", 300)] == (pytest.approx(school.area), "school")
    assert rows[("way", 210)] == (pytest.approx(shapely.Polygon(BLOCK).area), "yes")


def test_osm_refusals(url: str, city: Path, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="street-furniture, roads, buildings"):
        import_file(url, city, ImportOptions(layer="assets", osm_preset="benches"))
    with pytest.raises(BadRequest, match="needs --osm-preset"):
        import_file(url, city, ImportOptions(layer="assets"))
    csv = tmp_path / "a.csv"
    csv.write_text("lon,lat\n114,22.5\n")
    with pytest.raises(BadRequest, match="reads OSM files"):
        import_file(url, csv, ImportOptions(layer="assets", osm_preset="roads"))
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(city.read_bytes()[: city.stat().st_size // 2])
    before = scalar(url, "SELECT count(*) FROM assets")
    with pytest.raises(Unprocessable, match=r"cannot read cut\.osm\.pbf"):
        import_file(
            url,
            cut,
            ImportOptions(layer="assets", osm_preset="street-furniture", division="440304"),
        )
    assert scalar(url, "SELECT count(*) FROM assets") == before
