"""Import → export round trips: GeoJSON, GeoPackage and FlatGeobuf through EPSG:4326, 3857
and UTM zone 50N agree within 1 cm with the file that went in, and the database holds what
pyproj says the coordinates are in lon/lat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pyogrio
import pyproj
import pytest
import shapely
from typer.testing import CliRunner

from etl.exports.features import export_features
from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from gis.errors import BadRequest, NotFound
from layers.db.settings import storage_settings
from spatial_api.cli import app
from tests.helpers import lonlat_points, write_file

CRSS = (4326, 3857, 32650)
FORMATS = (".geojson", ".gpkg", ".fgb")
CM = 0.01
GEOD = pyproj.Geod(ellps="WGS84")
pytestmark = pytest.mark.usefixtures("own_catalog")


def shapes() -> np.ndarray:
    """Polygons with holes and odd vertices around Futian, in lon/lat."""
    lon, lat = lonlat_points(12, seed=11)
    out = []
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        outer = shapely.Point(x, y).buffer(0.002 + 0.0001 * i, quad_segs=3 + i % 4)
        out.append(outer.difference(shapely.Point(x, y).buffer(0.0005)))
    return np.array(out, dtype=object)


def apart(a: np.ndarray, b: np.ndarray, epsg: int) -> float:
    """The largest distance between matching coordinates, in metres (CRS units for
    projected CRSs, geodesic metres for lon/lat)."""
    if epsg == 4326:
        return float(np.max(GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])[2]))
    return float(np.max(np.hypot(*(a - b).T)))


def read_back(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], str | None]:
    """Geometries, fields and CRS of an exported file."""
    meta, _, wkb, fields = pyogrio.raw.read(path)
    return shapely.from_wkb(wkb), dict(zip(meta["fields"], fields, strict=True)), meta["crs"]


@pytest.mark.parametrize("epsg", CRSS)
@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("kind", ["points", "polygons"])
def test_round_trip_agrees_within_a_centimetre(
    url: str, tmp_path: Path, suffix: str, epsg: int, kind: str
) -> None:
    truth = shapes() if kind == "polygons" else shapely.points(*lonlat_points(25, seed=epsg))
    refs = np.arange(len(truth), dtype=np.int64)
    fields = {"ref": refs, "label": np.array([f"f{i}" for i in refs], dtype=object)}
    source = write_file(tmp_path / f"in{suffix}", truth, fields, epsg)
    layer = f"rt_{kind}_{suffix[1:]}_{epsg}"

    import_file(url, source, ImportOptions(layer=layer, create=True))
    with psycopg.connect(url) as conn:
        stored = conn.execute(f"SELECT ref, ST_AsBinary(geom) FROM {layer} ORDER BY ref")
        in_db = shapely.from_wkb([bytes(g) for _, g in stored.fetchall()])
    assert apart(shapely.get_coordinates(in_db), shapely.get_coordinates(truth), 4326) < CM

    out = tmp_path / f"out{suffix}"
    assert export_features(url, layer, out, f"EPSG:{epsg}") == len(truth)
    geoms, got, crs = read_back(out)
    order = np.argsort(got["ref"])
    sent, sent_fields, _ = read_back(source)  # FlatGeobuf files keep features in index order
    original = shapely.get_coordinates(sent[np.argsort(sent_fields["ref"])])
    assert pyproj.CRS.from_user_input(crs).to_epsg() == epsg
    assert apart(shapely.get_coordinates(geoms[order]), original, epsg) < CM
    assert list(got["label"][order]) == list(fields["label"])


def test_export_keeps_types_and_spreads_extra_properties(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(3, seed=2)
    fields = {
        "code": np.array(
            ["4403040117000001", "4403040117000002", "4403040117000003"], dtype=object
        ),
        "kind": np.array(["street_lamp"] * 3, dtype=object),
        "height_m": np.array([6.5, 8.0, 9.25]),
        "owner": np.array(["gd", None, "gd"], dtype=object),
    }
    import_file(
        url,
        write_file(tmp_path / "a.geojson", shapely.points(lon, lat), fields),
        ImportOptions(layer="assets"),
    )
    out = tmp_path / "assets.gpkg"
    export_features(url, "assets", out)
    meta, _, _, data = pyogrio.raw.read(out)
    got = dict(zip(meta["fields"], data, strict=True))
    assert list(got["code"]) == list(fields["code"])
    assert got["height_m"].dtype.kind == "f" and list(got["height_m"]) == [6.5, 8.0, 9.25]
    assert list(got["owner"]) == ["gd", None, "gd"]
    assert list(got["state"]) == ["intact"] * 3


def test_export_refuses_unknown_formats_and_layers(url: str, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="format"):
        export_features(url, "assets", tmp_path / "a.kml")
    with pytest.raises(NotFound, match="no layer"):
        export_features(url, "nope", tmp_path / "a.gpkg")
    assert not list(tmp_path.iterdir())


def test_cli_export_features(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "assets.fgb"
    monkeypatch.setenv("CITYHEX_DATABASE_URL", url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["export", "features", "--layer", "assets", "-o", str(out), "--crs", "EPSG:32650"]
        )
    finally:
        monkeypatch.undo()
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    count = psycopg.connect(url).execute("SELECT count(*) FROM assets").fetchone()[0]
    assert pyogrio.read_info(out)["features"] == count
