"""OGC API Features over HTTP: discovery, items with bbox/datetime/filter/CRS and paging,
and every write with its checks, checked against SQL, the h3 package and pyproj."""

from __future__ import annotations

import json
import math
import random
import select
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer

from tests.helpers import make_key

N_ASSETS = 240
R = 6378137.0


def _assets() -> list[tuple]:
    rng = random.Random(11)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = []
    for i in range(N_ASSETS):
        extra = {"height": round(rng.uniform(2, 12), 1), "material": rng.choice(["steel", "iron"])}
        rows.append(
            (
                f"44030401{i % 3:02d}{i:06d}",
                f"01{i % 3:02d}",
                ["lamp", "manhole"][i % 2],
                json.dumps(extra),
                t0 + timedelta(days=i),
                114.0 + rng.uniform(0, 0.1),
                22.5 + rng.uniform(0, 0.1),
            )
        )
    return rows


@pytest.fixture(scope="module")
def fdb(new_database) -> str:
    url = new_database("cityhex_features_api")
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assets (code, class_code, kind, properties, updated_at, geom) VALUES "
            "(%s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            _assets(),
        )
        cur.execute(
            "INSERT INTO districts (code, name, geom) VALUES ('440304', 'Futian', "
            "ST_Multi(ST_MakeEnvelope(114.0, 22.5, 114.1, 22.6, 4326)))"
        )
    return url


@pytest.fixture(scope="module")
def api(fdb: str) -> Iterator[TestClient]:
    from spatial_api.app import create_app

    with TestClient(create_app(fdb)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(fdb: str) -> dict[str, dict[str, str]]:
    roles = ("app", "dispatcher", "editor", "admin")
    return {role: make_key(fdb, role, name=f"t-{role}") for role in roles}


def sql(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def lamp(
    code: str = "4403040101999001", lon: float = 114.05, lat: float = 22.55, **props: Any
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"code": code, "kind": "lamp", **props},
    }


# --------------------------------------------------------------------------- discovery


def test_landing_conformance_and_collections(api: TestClient, keys: dict) -> None:
    rels = {link["rel"] for link in api.get("/").json()["links"]}
    assert {"conformance", "data"} <= rels
    conforms = api.get("/conformance").json()["conformsTo"]
    for part in (
        "features-1/1.0/conf/core",
        "features-2/1.0/conf/crs",
        "features-3/1.0/conf/filter",
        "features-4/1.0/conf/create-replace-delete",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
    ):
        assert any(part in c for c in conforms)
    anonymous = {c["id"] for c in api.get("/collections").json()["collections"]}
    assert "assets" in anonymous and "incidents" not in anonymous
    with_key = {c["id"] for c in api.get("/collections", headers=keys["app"]).json()["collections"]}
    assert "incidents" in with_key
    assert api.get("/collections/incidents").status_code == 401
    assert api.get("/collections/nope").status_code == 404


def test_collection_extent_matches_sql(api: TestClient, fdb: str) -> None:
    body = api.get("/collections/assets").json()
    box = body["extent"]["spatial"]["bbox"][0]
    with psycopg.connect(fdb) as conn:
        expected = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM assets) s"
        ).fetchone()
    assert box == pytest.approx(list(expected), abs=1e-9)
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in body["crs"]


def test_queryables_list_catalog_and_free_form_properties(api: TestClient, keys) -> None:
    # free-form properties are for staff keys (docs/auth.md); anonymous callers see none
    assert "height" not in api.get("/collections/assets/queryables").json()["properties"]
    r = api.get("/collections/assets/queryables", headers=keys["dispatcher"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["code"]["pattern"] == "^[0-9]{16}$"
    assert props["state"]["enum"] == ["intact", "damaged", "lost", "removed"]
    assert props["updated_at"]["format"] == "date-time"
    assert props["height"]["type"] == "number" and props["material"]["type"] == "string"


# --------------------------------------------------------------------------- items


def test_bbox_returns_exactly_what_postgis_intersects(api: TestClient, fdb: str) -> None:
    box = (114.02, 22.53, 114.07, 22.58)
    r = api.get(
        "/collections/assets/items", params={"bbox": ",".join(map(str, box)), "limit": 1000}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    body = r.json()
    expected = sql(
        fdb,
        "SELECT count(*) FROM assets WHERE ST_Intersects(geom, "
        "ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        *box,
    )
    assert body["numberMatched"] == body["numberReturned"] == expected > 10
    poly = shapely.box(*box)
    for feature in body["features"]:
        assert poly.intersects(shapely.geometry.shape(feature["geometry"]))


def test_paging_links_walk_every_feature_once(api: TestClient) -> None:
    url, seen, pages = "/collections/assets/items?limit=50", [], 0
    while url:
        body = api.get(url).json()
        assert body["numberMatched"] == N_ASSETS
        seen += [f["id"] for f in body["features"]]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        pages += 1
    assert pages == math.ceil(N_ASSETS / 50) and len(seen) == len(set(seen)) == N_ASSETS
    body = api.get("/collections/assets/items?limit=50&offset=50").json()
    assert any(lk["rel"] == "prev" for lk in body["links"])


def test_limit_is_capped_at_ten_thousand(api: TestClient) -> None:
    r = api.get("/collections/assets/items?limit=50000")
    assert r.status_code == 200 and r.json()["numberReturned"] == N_ASSETS


def test_filters_datetime_and_property_parameters(api: TestClient, fdb: str, keys) -> None:
    cases = [
        (
            {"filter": "kind = 'lamp' AND height > 6"},
            "kind = 'lamp' AND (properties->>'height')::float > 6",
        ),
        (
            {
                "filter": json.dumps(
                    {"op": "in", "args": [{"property": "class_code"}, ["0100", "0102"]]}
                ),
                "filter-lang": "cql2-json",
            },
            "class_code IN ('0100', '0102')",
        ),
        (
            {"datetime": "2024-03-10T00:00:00Z/2024-04-01T00:00:00Z"},
            "updated_at BETWEEN '2024-03-10T00:00:00Z' AND '2024-04-01T00:00:00Z'",
        ),
        ({"datetime": "../2024-03-05T00:00:00Z"}, "updated_at <= '2024-03-05T00:00:00Z'"),
        ({"kind": "manhole"}, "kind = 'manhole'"),
        (
            {"material": "iron", "kind": "lamp"},
            "properties->>'material' = 'iron' AND kind = 'lamp'",
        ),
    ]
    for params, where in cases:
        body = api.get(
            "/collections/assets/items",
            params={**params, "limit": 1000},
            headers=keys["dispatcher"],  # a staff key filters by free-form properties too
        ).json()
        assert body["numberReturned"] == sql(fdb, f"SELECT count(*) FROM assets WHERE {where}"), (
            params
        )


def test_properties_parameter_selects_properties(api: TestClient, keys) -> None:
    feature = api.get(
        "/collections/assets/items?limit=1&properties=code,height", headers=keys["dispatcher"]
    ).json()["features"][0]
    assert set(feature["properties"]) == {"code", "height"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "10,80,20,70"}, "bbox"),
        ({"limit": "0"}, "limit"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"filter": "kind = "}, "ends too early"),
        ({"filter": "kind = 'x'", "filter-lang": "sql"}, "filter-lang"),
        ({"crs": "EPSG:2000"}, "unsupported CRS"),
        ({"filter": "owner_department_id = 'x'"}, "integer"),
    ],
)
def test_bad_item_parameters_are_400_naming_the_problem(
    api: TestClient, params: dict, named: str
) -> None:
    r = api.get("/collections/assets/items", params=params)
    assert r.status_code == 400, r.text
    assert named in r.json()["message"] and r.json()["status"] == 400


def test_crs_output_axis_order_and_transforms(api: TestClient, fdb: str) -> None:
    lon, lat = (
        sql(fdb, "SELECT ST_X(geom) FROM assets WHERE id = 1"),
        sql(fdb, "SELECT ST_Y(geom) FROM assets WHERE id = 1"),
    )
    r = api.get("/collections/assets/items/1", params={"crs": "EPSG:4326"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    assert r.json()["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-8)
    x, y = api.get("/collections/assets/items/1?crs=EPSG:3857").json()["geometry"]["coordinates"]
    assert x == pytest.approx(R * math.radians(lon), abs=0.01)
    assert y == pytest.approx(R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)), abs=0.01)
    e, n = api.get("/collections/assets/items/1?crs=EPSG:32650").json()["geometry"]["coordinates"]
    ee, en = Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
    assert (e, n) == pytest.approx((ee, en), abs=0.01)
    assert api.get("/collections/assets/items/1").headers["content-crs"].endswith("CRS84>")


def test_bbox_crs_in_web_mercator(api: TestClient, fdb: str) -> None:
    to3857 = Transformer.from_crs(4326, 3857, always_xy=True)
    minx, miny = to3857.transform(114.02, 22.53)
    maxx, maxy = to3857.transform(114.07, 22.58)
    body = api.get(
        "/collections/assets/items",
        params={"bbox": f"{minx},{miny},{maxx},{maxy}", "bbox-crs": "EPSG:3857", "limit": 1000},
    ).json()
    expected = sql(
        fdb,
        "SELECT count(*) FROM assets WHERE ST_Intersects(geom_3857, "
        "ST_MakeEnvelope(%s, %s, %s, %s, 3857))",
        minx,
        miny,
        maxx,
        maxy,
    )
    assert body["numberReturned"] == expected


# --------------------------------------------------------------------------- writes


def test_create_sets_location_etag_h3_history_and_derived_class(
    api: TestClient, fdb: str, keys: dict
) -> None:
    r = api.post(
        "/collections/assets/items",
        json=lamp("4403040205000001", 114.061, 22.571, colour="green"),
        headers=keys["editor"],
    )
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.headers["location"].endswith(f"/collections/assets/items/{fid}")
    got = api.get(r.headers["location"])
    assert got.headers["etag"] == r.headers["etag"] and got.headers["etag"].startswith('"')
    row = (
        psycopg.connect(fdb)
        .execute(
            "SELECT h3, class_code, version, updated_by, properties->>'colour', ST_X(geom),"
            " ST_Y(geom)"
            " FROM assets WHERE id = %s",
            (fid,),
        )
        .fetchone()
    )
    assert row[0] == h3.str_to_int(h3.latlng_to_cell(22.571, 114.061, 10))
    assert row[1:5] == ("0205", 1, "editor:t-editor", "green")
    assert (row[5], row[6]) == (114.061, 22.571)
    assert got.json()["properties"]["h3"] == h3.latlng_to_cell(22.571, 114.061, 10)
    hist = sql(
        fdb,
        "SELECT count(*) FROM feature_history WHERE layer = 'assets' AND "
        "feature_id = %s AND op = 'create' AND version = 1",
        str(fid),
    )
    assert hist == 1


def test_create_in_lat_lon_and_utm_is_stored_in_lon_lat(
    api: TestClient, fdb: str, keys: dict
) -> None:
    body = lamp("4403040101999101")
    body["geometry"]["coordinates"] = [22.552, 114.052]
    r = api.post(
        "/collections/assets/items",
        json=body,
        headers={**keys["editor"], "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4326>"},
    )
    assert r.status_code == 201, r.text
    xy = (
        psycopg.connect(fdb)
        .execute("SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE id = %s", (r.json()["id"],))
        .fetchone()
    )
    assert xy == pytest.approx((114.052, 22.552), abs=1e-9)
    e, n = Transformer.from_crs(4326, 32650, always_xy=True).transform(114.053, 22.553)
    body = lamp("4403040101999102")
    body["geometry"]["coordinates"] = [e, n]
    r = api.post(
        "/collections/assets/items",
        json=body,
        headers={**keys["editor"], "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/32650>"},
    )
    assert r.status_code == 201
    xy = (
        psycopg.connect(fdb)
        .execute("SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE id = %s", (r.json()["id"],))
        .fetchone()
    )
    assert xy == pytest.approx((114.053, 22.553), abs=1e-7)


BAD_WRITES = [
    (lamp("440304010199"), 422, "16 digits"),
    (lamp("4403040101999201", owner_department_id=9999), 422, "owner_department_id"),
    (lamp("4403040101999202", state="broken"), 422, "state"),
    (lamp("4403040101999203", class_code="0303"), 422, "class_code"),
    (lamp("4403040101999204", owner_department_id="one"), 422, "integer"),
    (lamp("4403040101999205", lat=200.0), 422, "out of range"),
    (
        {
            "type": "Feature",
            "geometry": None,
            "properties": {"code": "4403040101999206", "kind": "lamp"},
        },
        422,
        "geometry",
    ),
    (
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": []},
            "properties": {"code": "4403040101999207", "kind": "lamp"},
        },
        422,
        "geometry",
    ),
    ({"type": "FeatureCollection", "features": []}, 400, "Feature"),
    (lamp("4403040100000000"), 409, "already"),
    ({**lamp("4403040101999208"), "properties": {"kind": "lamp"}}, 422, "code"),
]


@pytest.mark.parametrize(
    ("body", "status", "named"), BAD_WRITES, ids=[b[2] + str(i) for i, b in enumerate(BAD_WRITES)]
)
def test_bad_writes_are_4xx_and_write_nothing(
    api: TestClient, fdb: str, keys: dict, body: dict, status: int, named: str
) -> None:
    before = (
        sql(fdb, "SELECT count(*) FROM assets"),
        sql(fdb, "SELECT count(*) FROM feature_history"),
    )
    r = api.post("/collections/assets/items", json=body, headers=keys["editor"])
    assert r.status_code == status, r.text
    assert named in r.json()["message"]
    after = (
        sql(fdb, "SELECT count(*) FROM assets"),
        sql(fdb, "SELECT count(*) FROM feature_history"),
    )
    assert after == before


def test_not_json_body_is_400(api: TestClient, keys: dict) -> None:
    r = api.post("/collections/assets/items", content=b"{nope", headers=keys["editor"])
    assert r.status_code == 400 and "JSON" in r.json()["message"]


BOWTIE = {
    "type": "Polygon",
    "coordinates": [
        [[114.0, 22.5], [114.01, 22.51], [114.01, 22.5], [114.0, 22.51], [114.0, 22.5]]
    ],
}


def test_self_intersecting_polygon_is_422_naming_where_or_repaired(
    api: TestClient, fdb: str, keys: dict
) -> None:
    body = {
        "type": "Feature",
        "geometry": BOWTIE,
        "properties": {"code": "4403040601000001", "kind": "green"},
    }
    r = api.post("/collections/assets/items", json=body, headers=keys["editor"])
    assert r.status_code == 422
    err = r.json()
    assert "Self-intersection" in err["message"]
    assert err["details"]["location"] == pytest.approx([114.005, 22.505])
    r = api.post("/collections/assets/items?repair=true", json=body, headers=keys["editor"])
    assert r.status_code == 201
    assert "make_valid" in r.headers["x-geometry-repaired"]
    assert "make_valid" in r.json()["cityhex:repaired"]
    valid, kind = (
        psycopg.connect(fdb)
        .execute(
            "SELECT ST_IsValid(geom), GeometryType(geom) FROM assets WHERE id = %s",
            (r.json()["id"],),
        )
        .fetchone()
    )
    assert valid and kind == "MULTIPOLYGON"


def test_roles_from_the_catalog(api: TestClient, keys: dict) -> None:
    body = lamp("4403040101999301")
    assert api.post("/collections/assets/items", json=body).status_code == 401
    assert api.post("/collections/assets/items", json=body, headers=keys["app"]).status_code == 403
    r = api.post("/collections/incidents/items", json=body, headers=keys["admin"])
    assert r.status_code == 403 and "not editable" in r.json()["message"]
    sensor = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.0, 22.5]},
        "properties": {"code": "S-1", "kind": "pm25"},
    }
    assert (
        api.post("/collections/sensors/items", json=sensor, headers=keys["editor"]).status_code
        == 403
    )


def test_layer_refuses_a_geometry_of_another_type(api: TestClient, keys: dict) -> None:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.0, 22.5]},
        "properties": {"code": "440399", "name": "a point is no district"},
    }
    r = api.post("/collections/districts/items", json=body, headers=keys["admin"])
    assert r.status_code == 422 and "Point" in r.json()["message"], r.text


def test_sensors_change_only_through_the_sensor_registry(api: TestClient, keys: dict) -> None:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.0, 22.5]},
        "properties": {"code": "S-2", "kind": "noise"},
    }
    r = api.post("/collections/sensors/items", json=body, headers=keys["admin"])
    assert r.status_code == 403 and "not editable" in r.json()["message"]


def _create(api: TestClient, keys: dict, code: str, **props: Any) -> tuple[str, str]:
    r = api.post("/collections/assets/items", json=lamp(code, **props), headers=keys["editor"])
    assert r.status_code == 201, r.text
    return r.headers["location"], r.headers["etag"]


def test_replace_and_patch_need_the_current_etag(api: TestClient, fdb: str, keys: dict) -> None:
    url, etag = _create(api, keys, "4403040101999401", name="old", colour="red", size=3)
    fid = url.rsplit("/", 1)[1]
    body = lamp("4403040101999401", 114.07, 22.57, name="new")
    assert api.put(url, json=body, headers=keys["editor"]).status_code == 428
    assert (
        api.put(url, json=body, headers={**keys["editor"], "If-Match": '"stale"'}).status_code
        == 412
    )
    assert (
        api.put(
            url, json=body, headers={**keys["editor"], "If-Match": etag.replace('"', 'W/"', 1)}
        ).status_code
        == 412
    )
    r = api.put(url, json=body, headers={**keys["editor"], "If-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    props = r.json()["properties"]
    assert props["name"] == "new" and "colour" not in props and props["version"] == 2
    etag2 = r.headers["etag"]
    r = api.patch(
        url,
        json={"properties": {"colour": "blue", "name": None}},
        headers={
            **keys["editor"],
            "If-Match": etag2,
            "Content-Type": "application/merge-patch+json",
        },
    )
    assert r.status_code == 200
    props = r.json()["properties"]
    assert props["colour"] == "blue" and props["name"] is None and props["version"] == 3
    assert r.json()["geometry"]["coordinates"] == [114.07, 22.57]
    assert (
        api.patch(
            url, json={"properties": {"colour": "x"}}, headers={**keys["editor"], "If-Match": etag2}
        ).status_code
        == 412
    )
    ops = (
        psycopg.connect(fdb)
        .execute(
            "SELECT version, op, before->'properties'->>'name', after->'properties'->>'name' "
            "FROM feature_history WHERE layer = 'assets' AND feature_id = %s ORDER BY version",
            (fid,),
        )
        .fetchall()
    )
    assert ops == [
        (1, "create", None, "old"),
        (2, "replace", "old", "new"),
        (3, "update", "new", None),
    ]


def test_invalid_patch_writes_nothing(api: TestClient, fdb: str, keys: dict) -> None:
    url, etag = _create(api, keys, "4403040101999402")
    fid = url.rsplit("/", 1)[1]
    r = api.patch(
        url, json={"properties": {"state": "melted"}}, headers={**keys["editor"], "If-Match": etag}
    )
    assert r.status_code == 422
    assert sql(fdb, "SELECT version FROM assets WHERE id = %s", int(fid)) == 1
    assert api.get(url).headers["etag"] == etag


def test_delete_then_restore_brings_the_feature_back(api: TestClient, fdb: str, keys: dict) -> None:
    url, etag = _create(api, keys, "4403040101999501", name="keep me")
    fid = url.rsplit("/", 1)[1]
    assert api.delete(url, headers=keys["editor"]).status_code == 428
    assert api.delete(url, headers={**keys["editor"], "If-Match": '"x"'}).status_code == 412
    assert api.delete(url, headers={**keys["editor"], "If-Match": etag}).status_code == 204
    assert api.get(url).status_code == 404
    versions = api.get(f"{url}/history", headers=keys["app"]).json()["versions"]
    assert [v["op"] for v in versions] == ["create", "delete"]
    assert api.get(f"{url}/history").status_code == 401
    r = api.post(f"{url}/history/1/restore", headers=keys["editor"])
    assert r.status_code == 201, r.text
    assert r.json()["id"] == int(fid) and r.json()["properties"]["name"] == "keep me"
    assert api.get(url).status_code == 200
    assert sql(fdb, "SELECT count(*) FROM assets WHERE id = %s", int(fid)) == 1
    versions = api.get(f"{url}/history", headers=keys["app"]).json()["versions"]
    assert [(v["version"], v["op"]) for v in versions] == [
        (1, "create"),
        (2, "delete"),
        (3, "restore"),
    ]
    assert api.post(f"{url}/history/9/restore", headers=keys["editor"]).status_code == 404


def test_write_announces_old_and_new_boxes(api: TestClient, fdb: str, keys: dict) -> None:
    url, etag = _create(api, keys, "4403040101999601", lon=114.01, lat=22.51)
    with psycopg.connect(fdb, autocommit=True) as listener:
        listener.execute("LISTEN cityhex_changes")
        moved = lamp("4403040101999601", 114.09, 22.59)
        assert (
            api.put(url, json=moved, headers={**keys["editor"], "If-Match": etag}).status_code
            == 200
        )
        select.select([listener.pgconn.socket], [], [], 5)
        notices = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=1)]
    assert notices[0]["layer"] == "assets"
    boxes = notices[0]["bboxes"]
    assert [114.01, 22.51, 114.01, 22.51] in boxes and [114.09, 22.59, 114.09, 22.59] in boxes


def test_unversioned_layer_uses_content_etag(api: TestClient, fdb: str, keys: dict) -> None:
    fid = sql(fdb, "SELECT id FROM districts LIMIT 1")
    url = f"/collections/districts/items/{fid}"
    etag = api.get(url).headers["etag"]
    body = api.get(url).json()
    body["properties"]["name_en"] = "Futian"
    assert api.put(url, json=body, headers={**keys["admin"], "If-Match": etag}).status_code == 200
    assert api.put(url, json=body, headers={**keys["admin"], "If-Match": etag}).status_code == 412
    assert sql(fdb, "SELECT name_en FROM districts WHERE id = %s", fid) == "Futian"


def test_filter_crs_takes_lat_lon_geometries(api: TestClient, fdb: str) -> None:
    polygon = "POLYGON((22.53 114.02, 22.53 114.07, 22.58 114.07, 22.58 114.02, 22.53 114.02))"
    body = api.get(
        "/collections/assets/items",
        params={
            "filter": f"S_INTERSECTS(geometry, {polygon})",
            "limit": 1000,
            "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
        },
    ).json()
    expected = sql(
        fdb,
        "SELECT count(*) FROM assets WHERE ST_Intersects(geom, "
        "ST_MakeEnvelope(114.02, 22.53, 114.07, 22.58, 4326))",
    )
    assert body["numberReturned"] == expected > 0


def test_restoring_over_an_existing_feature_is_a_conditional_replace(
    api: TestClient, keys: dict
) -> None:
    url, etag = _create(api, keys, "4403040101999701", name="first")
    r = api.patch(
        url, json={"properties": {"name": "second"}}, headers={**keys["editor"], "If-Match": etag}
    )
    assert r.status_code == 200
    assert api.post(f"{url}/history/1/restore", headers=keys["editor"]).status_code == 428
    r = api.post(
        f"{url}/history/1/restore", headers={**keys["editor"], "If-Match": r.headers["etag"]}
    )
    assert r.status_code == 200 and r.json()["properties"]["name"] == "first"
    ops = [v["op"] for v in api.get(f"{url}/history", headers=keys["app"]).json()["versions"]]
    assert ops == ["create", "update", "restore"]
