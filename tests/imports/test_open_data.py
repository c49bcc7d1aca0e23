"""Open data at /open/: the demo city at scale 0.05, with personal data planted where staff
really write it (supervisor names on cells, contacts in asset names and properties,
reporters and phone numbers on cases), downloaded anonymously in every format and checked
against independent counts (SQL, the h3 package, shapely) and scanned for personal data."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import h3
import orjson
import psycopg
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from httpx import Response
from typer.testing import CliRunner

from etl.demo.loader import load_demo
from etl.exports.open_data.export import export_to_file
from etl.exports.open_data.settings import open_data_settings
from gis.errors import ServiceUnavailable
from layers.catalog.registry import BUILTIN
from layers.db.settings import storage_settings
from spatial_api.app import create_app
from spatial_api.cli import app as cli

SCALE = 0.05
CITY_TZ = ZoneInfo("Asia/Shanghai")
DERIVED = {"incidents_h3_monthly", "sensor_daily_means", "asset_inventory"}
MEDIA_TYPES = {"csv": "text/csv", "geojson": "application/geo+json",
               "gpkg": "application/geopackage+sqlite3"}  # fmt: skip
MOBILE = re.compile(rb"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")
CHINESE_ID = re.compile(rb"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
SPOT = (114.0571234, 22.5432109)
"""Where the planted cases were reported: an exact location that must not be published."""
PLANTED = ("粤B12345", "440305199001011234", "13912345678")
"""A plate, an ID number and a phone number written into case descriptions."""


@pytest.fixture(scope="module")
def url(new_database: Callable[..., str]) -> str:
    """A fresh database with the demo city and the personal data staff write in it."""
    url = new_database("open_data_test")
    load_demo(url, SCALE, progress=False)
    with psycopg.connect(url, autocommit=True) as conn:
        plant_personal_data(conn)
    return url


def plant_personal_data(conn: psycopg.Connection) -> None:
    """Names, phones, ID numbers and plates where staff and reporters put them."""
    conn.execute(
        "UPDATE grid_cells g SET supervisor = u.name FROM users u"
        " WHERE u.role = 'supervisor' AND u.district_id = g.district_id"
    )
    conn.execute(
        "UPDATE assets a SET name = a.name || ' 维护 ' || u.name || ' ' || u.phone,"
        " updated_by = u.name, properties = a.properties || jsonb_build_object('contact', u.phone)"
        " FROM users u WHERE u.role = 'staff' AND u.department_id = a.owner_department_id"
        " AND a.id % 7 = 0"
    )
    conn.execute(
        "UPDATE sensors s SET name = s.name || ' 负责人 ' || u.name || ' ' || u.phone"
        " FROM users u WHERE u.id = (SELECT min(id) FROM users WHERE role = 'staff')"
    )
    conn.execute(
        "UPDATE incidents i SET reporter = u.name || ' ' || u.phone,"
        " description = i.description || ' 联系 ' || u.phone"
        " FROM users u WHERE u.id = i.inspector_id AND i.id % 5 = 0"
    )
    conn.execute(
        "INSERT INTO incidents (category_code, status, description, source, reporter,"
        " reported_at, geom)"
        " SELECT (SELECT min(code) FROM incident_categories), 'reported', %s, 'public',"
        " '市民 陈思雨 13800138000', '2026-10-15T10:00:00+08:00', ST_Point(%s, %s, 4326)"
        " FROM generate_series(1, 6)",
        (" ".join(PLANTED), *SPOT),
    )


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[TestClient]:
    """The app on the open-data database; no key is ever sent."""
    with TestClient(create_app(url)) as c:
        yield c


@pytest.fixture(scope="module")
def db(url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the open-data database."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def catalog(client: TestClient) -> dict:
    """The catalog, fetched anonymously."""
    answer = client.get("/open/")
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def downloads(client: TestClient, catalog: dict) -> dict[tuple[str, str], Response]:
    """Every distribution of every dataset, fetched anonymously by its downloadURL, as it is
    stored (not compressed in transit, so its Content-Length is the file's)."""
    got = {}
    for dataset in catalog["dataset"]:
        for dist in dataset["distribution"]:
            path = dist["downloadURL"].removeprefix("http://testserver")
            fmt = path.rsplit(".", 1)[1]
            got[(dataset["identifier"], fmt)] = client.get(
                path, headers={"Accept-Encoding": "identity"}
            )
    return got


def geojson_rows(answer: Response) -> list[dict]:
    """The properties of every feature, each with its geometry under ``geometry``."""
    doc = orjson.loads(answer.content)
    assert doc["type"] == "FeatureCollection"
    return [{**f["properties"], "geometry": f["geometry"]} for f in doc["features"]]


def csv_rows(answer: Response) -> list[dict]:
    """The rows of a CSV download."""
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"))))


def gpkg_table(answer: Response, tmp: Path, layer: str) -> tuple[dict, list, dict[str, list]]:
    """A GeoPackage download read back with pyogrio: its metadata, geometries and columns."""
    path = tmp / f"{layer}.gpkg"
    path.write_bytes(answer.content)
    assert [row[0] for row in pyogrio.list_layers(path)] == [layer]
    meta, _, geometry, values = pyogrio.raw.read(path, layer=layer)
    geoms = [] if geometry is None else list(shapely.from_wkb(geometry))
    return meta, geoms, dict(zip(meta["fields"], values, strict=True))


def public_layers() -> set[str]:
    """The public layers of the built-in catalog, read from the TOML file itself."""
    layers = tomllib.loads(BUILTIN.read_text())["layers"]
    return {name for name, spec in layers.items() if spec.get("public", True)}


def test_catalog_is_dcat_and_lists_every_public_layer_and_aggregate(
    catalog: dict, db: psycopg.Connection
) -> None:
    assert catalog["@type"] == "dcat:Catalog"
    assert catalog["license"] == "https://creativecommons.org/licenses/by/4.0/"
    ids = [d["identifier"] for d in catalog["dataset"]]
    assert set(ids) == public_layers() | DERIVED and len(ids) == len(set(ids))
    for dataset in catalog["dataset"]:
        assert dataset["@type"] == "dcat:Dataset"
        assert dataset["title"]["zh"] and dataset["title"]["en"]
        assert dataset["description"]["zh"] and dataset["description"]["en"]
        assert dataset["license"] == catalog["license"]
        assert dataset["accrualPeriodicity"].startswith("http://purl.org/cld/freq/")
        assert dataset["spatial"]["bbox"].startswith("POLYGON((113.")
        assert {d["mediaType"] for d in dataset["distribution"]} == set(MEDIA_TYPES.values())
        for dist in dataset["distribution"]:
            fmt = dist["downloadURL"].rsplit(".", 1)[1]
            assert dist["downloadURL"] == f"http://testserver/open/{dataset['identifier']}.{fmt}"
            assert dist["mediaType"] == MEDIA_TYPES[fmt]
    cases = next(d for d in catalog["dataset"] if d["identifier"] == "incidents_h3_monthly")
    assert "below 5 is suppressed" in cases["description"]["en"]
    days = [t.astimezone(CITY_TZ).date().isoformat()
            for (t,) in db.execute("SELECT reported_at FROM incidents")]  # fmt: skip
    assert (cases["temporal"]["startDate"], cases["temporal"]["endDate"]) == (min(days), max(days))


def test_every_download_answers_in_every_format_with_the_catalog_fields(
    catalog: dict, downloads: dict[tuple[str, str], Response], tmp_path: Path
) -> None:
    for dataset in catalog["dataset"]:
        name = dataset["identifier"]
        fields = [f["name"] for f in dataset["fields"]]
        counts = {}
        for fmt, media_type in MEDIA_TYPES.items():
            answer = downloads[(name, fmt)]
            assert answer.status_code == 200, (name, fmt, answer.text)
            assert answer.headers["content-type"].split(";")[0] == media_type
            disposition = f'attachment; filename="{name}.{fmt}"'
            assert answer.headers["content-disposition"] == disposition
            assert answer.headers["etag"].startswith('W/"')
            assert int(answer.headers["content-length"]) == len(answer.content)
        rows = geojson_rows(downloads[(name, "geojson")])
        assert all(set(r) == {*fields, "geometry"} for r in rows), name
        counts["geojson"] = len(rows)
        table = csv_rows(downloads[(name, "csv")])
        spatial = ["wkt"] if rows[0]["geometry"] is not None else []
        assert all(list(r) == fields + spatial for r in table), name
        counts["csv"] = len(table)
        meta, geoms, columns = gpkg_table(downloads[(name, "gpkg")], tmp_path, name)
        assert list(meta["fields"]) == fields
        assert meta["crs"] == ("EPSG:4326" if spatial else None)
        counts["gpkg"] = len(next(iter(columns.values())))
        assert len(set(counts.values())) == 1 and counts["csv"] > 0, (name, counts)
        if spatial:
            assert len(geoms) == counts["gpkg"]
            shapes = [shapely.geometry.shape(r["geometry"]) for r in rows]
            wkt = shapely.from_wkt([r["wkt"] for r in table])
            assert all(shapely.equals_exact(a, b, 1e-9) for a, b in zip(shapes, wkt, strict=True))
            assert all(shapely.equals_exact(a, b, 1e-9) for a, b in zip(shapes, geoms, strict=True))


LAYER_TABLES = {"assets": ("assets", "id"), "sensors": ("sensors", "id"),
                "grid": ("grid_cells", "h3"), "districts": ("districts", "id")}  # fmt: skip
STAFF_FIELDS = {"inspector_id", "supervisor", "updated_by", "phone", "reporter", "description",
                "properties", "contact", "latest"}  # fmt: skip


def test_layers_hold_every_feature_and_no_staff_field(
    db: psycopg.Connection, downloads: dict[tuple[str, str], Response]
) -> None:
    for layer, (table, key) in LAYER_TABLES.items():
        rows = geojson_rows(downloads[(layer, "geojson")])
        assert not STAFF_FIELDS & set(rows[0]), layer
        assert layer == "districts" or "name" not in rows[0]  # asset and sensor names are text
        ids = [r[0] for r in db.execute(f"SELECT {key} FROM {table} ORDER BY {key}")]
        if key == "h3":
            ids = [h3.int_to_str(i) for i in ids]
        assert [r["id"] for r in rows] == ids, layer
    grid = geojson_rows(downloads[("grid", "geojson")])
    for row in grid[:: len(grid) // 500]:
        hexagon = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(row["id"])])
        assert shapely.geometry.shape(row["geometry"]).equals_exact(hexagon, 2e-7)


def independent_case_counts(db: psycopg.Connection) -> Counter[tuple[str, str, str]]:
    """Cases by (res-8 cell of the point, month in city time, category), cancelled left out,
    counted in Python with the h3 package."""
    counts: Counter[tuple[str, str, str]] = Counter()
    rows = db.execute(
        "SELECT ST_X(geom), ST_Y(geom), reported_at, category_code, status FROM incidents"
    )
    for lon, lat, reported_at, category, status in rows:
        if status != "cancelled":
            month = reported_at.astimezone(CITY_TZ).strftime("%Y-%m")
            counts[(h3.latlng_to_cell(lat, lon, 8), month, category)] += 1
    return counts


def test_case_counts_equal_an_independent_count_with_small_counts_left_out(
    db: psycopg.Connection, downloads: dict[tuple[str, str], Response]
) -> None:
    counts = independent_case_counts(db)
    expected = {key: n for key, n in counts.items() if n >= 5}
    assert len(expected) >= 20 and len(expected) < len(counts)  # the rule leaves rows out
    readers = {"geojson": geojson_rows, "csv": csv_rows}
    for fmt, read in readers.items():
        rows = read(downloads[("incidents_h3_monthly", fmt)])
        got = {(r["cell"], r["month"], r["category_code"]): int(r["cases"]) for r in rows}
        assert len(got) == len(rows) and got == expected, fmt
        assert min(int(r["cases"]) for r in rows) >= 5
    names = dict(db.execute("SELECT code, name FROM incident_categories").fetchall())
    for row in geojson_rows(downloads[("incidents_h3_monthly", "geojson")]):
        assert row["category"] == names[row["category_code"]]
        hexagon = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(row["cell"])])
        assert shapely.geometry.shape(row["geometry"]).equals_exact(hexagon, 2e-7)


def test_case_counts_are_not_the_parents_of_the_stored_cells(
    db: psycopg.Connection, downloads: dict[tuple[str, str], Response]
) -> None:
    rows = db.execute(
        "SELECT h3, ST_X(geom), ST_Y(geom) FROM incidents WHERE h3 IS NOT NULL"
    ).fetchall()
    moved = [r for r in rows if h3.cell_to_parent(h3.int_to_str(r[0]), 8)
             != h3.latlng_to_cell(r[2], r[1], 8)]  # fmt: skip
    assert moved  # the parent of a res-10 cell is not always the res-8 cell of the point
    expected = {k: n for k, n in independent_case_counts(db).items() if n >= 5}
    got = geojson_rows(downloads[("incidents_h3_monthly", "geojson")])
    assert sum(r["cases"] for r in got) == sum(expected.values())


def test_sensor_daily_means_equal_an_independent_mean(
    db: psycopg.Connection, downloads: dict[tuple[str, str], Response]
) -> None:
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    rows = db.execute(
        "SELECT s.code, r.property, r.ts, r.value"
        " FROM readings r JOIN sensors s ON s.id = r.sensor_id"
    )
    for code, prop, ts, value in rows:
        values[(code, prop, ts.astimezone(CITY_TZ).date().isoformat())].append(value)
    got = geojson_rows(downloads[("sensor_daily_means", "geojson")])
    assert {(r["sensor"], r["property"], r["day"]) for r in got} == set(values)
    for r in got:
        series = values[(r["sensor"], r["property"], r["day"])]
        assert r["readings"] == len(series)
        assert r["mean"] == pytest.approx(sum(series) / len(series), rel=1e-9)
    points = dict(db.execute("SELECT code, ST_AsText(geom) FROM sensors").fetchall())
    for r in got[:: max(1, len(got) // 200)]:
        assert shapely.geometry.shape(r["geometry"]).equals_exact(
            shapely.from_wkt(points[r["sensor"]]), 2e-7
        )


def test_asset_inventory_equals_an_independent_count(
    db: psycopg.Connection, downloads: dict[tuple[str, str], Response]
) -> None:
    counts = Counter(
        (code[:6], class_code, kind, state)
        for code, class_code, kind, state in db.execute(
            "SELECT code, class_code, kind, state FROM assets"
        )
    )
    names = dict(db.execute("SELECT code, name FROM districts").fetchall())
    got = geojson_rows(downloads[("asset_inventory", "geojson")])
    assert {(r["district_code"], r["class_code"], r["kind"], r["state"]): r["assets"]
            for r in got} == counts  # fmt: skip
    assert all(r["district"] == names[r["district_code"]] and r["geometry"] is None for r in got)


def every_open_answer(
    client: TestClient, downloads: dict[tuple[str, str], Response]
) -> dict[str, bytes]:
    """The bytes of every answer an anonymous caller can get under /open/."""
    answers = {f"{d}.{f}": a.content for (d, f), a in downloads.items()}
    for path in ("/open/", "/open/catalog.json", "/open/nope.csv", "/open/grid.xlsx", "/open/x"):
        answers[path] = client.get(path).content
    return answers


def any_of(words: set[bytes]) -> re.Pattern[bytes]:
    """A regular expression matching any of ``words``, written as a trie, so that one
    search over a body costs about one pass whatever the number of words."""
    trie: dict = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = {}

    def branch(node: dict) -> bytes:
        ways = [re.escape(bytes([b])) + branch(rest) for b, rest in node.items() if b is not None]
        if not ways:
            return b""
        group = b"(?:" + b"|".join(ways) + b")"
        return group + b"?" if None in node else group

    return re.compile(branch(trie))


def test_no_personal_data_in_any_open_answer(
    db: psycopg.Connection, client: TestClient, downloads: dict[tuple[str, str], Response]
) -> None:
    people = db.execute("SELECT name, phone FROM users").fetchall()
    reporters = [r[0] for r in db.execute("SELECT DISTINCT reporter FROM incidents"
                                          " WHERE reporter IS NOT NULL")]  # fmt: skip
    assert any(" " in r for r in reporters)  # the planted names and phones are there
    secrets = {n for n, _ in people} | {p for _, p in people} | set(reporters) | set(PLANTED)
    secrets |= {f"{SPOT[0]}", f"{SPOT[1]}"}
    leak = any_of({s.encode() for s in secrets})
    for where, body in every_open_answer(client, downloads).items():
        found = leak.search(body)
        assert not found, (where, found and found.group().decode(errors="replace"))
        assert not MOBILE.search(body), (where, MOBILE.search(body))
        assert not CHINESE_ID.search(body), (where, CHINESE_ID.search(body))


def test_unknown_dataset_or_format_is_a_json_error(client: TestClient) -> None:
    for path, status, code in (
        ("/open/nope.csv", 404, "unknown_dataset"),
        ("/open/users.csv", 404, "unknown_dataset"),
        ("/open/incidents.geojson", 404, "unknown_dataset"),
        ("/open/grid", 404, "unknown_dataset"),
        ("/open/grid.xlsx", 400, "unknown_format"),
        ("/open/grid.", 400, "unknown_format"),
    ):
        answer = client.get(path)
        assert answer.status_code == status, (path, answer.text)
        body = answer.json()
        assert body["status"] == status and body["code"] == code and body["message"], path


def test_etag_answers_304_and_a_download_is_rebuilt_after_max_age(
    client: TestClient, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/open/asset_inventory.csv"
    first = client.get(path)
    assert first.headers["cache-control"] == "public, max-age=300"
    etag = first.headers["etag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    catalog = client.get("/open/")
    assert (
        client.get("/open/", headers={"If-None-Match": catalog.headers["etag"]}).status_code == 304
    )
    asset = db.execute("SELECT id, state FROM assets WHERE state = 'intact' LIMIT 1").fetchone()
    db.execute("UPDATE assets SET state = 'damaged' WHERE id = %s", (asset[0],))
    try:
        reused = client.get(path)  # younger than the max age: the file built before
        assert reused.headers["etag"] == etag and reused.content == first.content
        monkeypatch.setenv("CITYHEX_OPEN_DATA_MAX_AGE", "0")
        open_data_settings.cache_clear()
        changed = client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.headers["cache-control"] == "public, max-age=0"
        assert changed.content != first.content
    finally:
        db.execute("UPDATE assets SET state = %s WHERE id = %s", (asset[1], asset[0]))
        assert client.get(path).headers["etag"] == etag  # rebuilt from the data as they were
        monkeypatch.undo()
        open_data_settings.cache_clear()


def test_a_query_past_the_statement_timeout_is_cancelled(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYHEX_OPEN_DATA_STATEMENT_TIMEOUT_MS", "300")
    open_data_settings.cache_clear()
    try:
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            started = datetime.now(UTC)
            with pytest.raises(ServiceUnavailable) as caught:
                export_to_file(url, "sensor_daily_means", tmp_path / "means.csv")
            assert (datetime.now(UTC) - started).total_seconds() < 5
            holder.rollback()
    finally:
        monkeypatch.undo()
        open_data_settings.cache_clear()
    assert caught.value.code == "statement_timeout"
    assert not list(tmp_path.iterdir())


def test_cli_writes_what_the_api_serves(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    downloads: dict[tuple[str, str], Response],
) -> None:  # fmt: skip
    out = tmp_path / "cases.gpkg"
    monkeypatch.setenv("CITYHEX_DATABASE_URL", url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli, ["export", "open", "--dataset", "incidents_h3_monthly", "-o", str(out)]
        )
    finally:
        monkeypatch.undo()
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    served = geojson_rows(downloads[("incidents_h3_monthly", "geojson")])
    _, _, _, (cells, months, categories, *_, cases) = pyogrio.raw.read(out)
    written = list(zip(cells, months, categories, cases.tolist(), strict=True))
    assert written == [(r["cell"], r["month"], r["category_code"], r["cases"]) for r in served]
