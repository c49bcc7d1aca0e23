"""What an anonymous caller can read holds no personal data of staff: every GET operation of
/openapi.json is called without a key, on a city whose users have real names and phone
numbers, whose cells have inspectors and supervisors, whose assets were edited by named
staff and whose cases were reported by named inspectors and by a member of the public who
left a phone number in the description. Every answer, JSON, text, file or vector tile, is
scanned for those names and numbers, any mobile number, and any field that names staff.

The operations are read from the served OpenAPI document, so a new one is scanned too (a new
required parameter fails the test until ``FILL`` says how to fill it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h3
import mapbox_vector_tile
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from spatial_api.webapp import current_build
from tests.helpers import make_key, tile_of

CENTRE = (114.05, 22.54)
SPLIT_LON = 114.05
RING = 8
STAFF = {
    11: ("欧阳秀英", "13812345671", "inspector", 1),
    12: ("司马建国", "13987654322", "inspector", 2),
    13: ("诸葛慧敏", "15011112223", "supervisor", 1),
    14: ("上官志强", "18622223334", "supervisor", 2),
    15: ("皇甫丽娟", "17733334445", "dispatcher", None),
    16: ("东方文博", "+86 139 0000 5556", "staff", None),
}
"""Users: id → (name, phone, role, district)."""
CASE_LAYERS = ("incidents", "hotspots")
"""Layers that need a key, named too: an anonymous call with them must be refused."""
REPORTER_PHONE = "13600001357"
"""A member of the public's phone number, left in a report's description."""
MOBILE = re.compile(r"(?<![0-9A-Za-z.])1[3-9][0-9]{9}(?![0-9A-Za-z.])")
"""An 11-digit mainland mobile number standing alone (not inside a longer number or word)."""
STAFF_FIELDS = frozenset(
    {"inspector_id", "inspector", "supervisor", "reporter", "updated_by", "actor", "phone"}
)
"""Field names that name or identify staff."""
MVT = "application/vnd.mapbox-vector-tile"
STREAMS = ("/events",)
"""Endpoints that stream without end: checked to refuse anonymous callers, not scanned."""
ZOOMS = (12, 14, 16)
FILL: dict[str, str] = {
    "lon": str(CENTRE[0]),
    "lat": str(CENTRE[1]),
    "radius_m": "500",
    "bbox": "114.02,22.51,114.08,22.57",
    "property": "pm25",
    "interval": "day",
    "a_from": "2020-01-01",
    "a_to": "2030-01-01",
    "b_from": "2030-01-01",
    "b_to": "2040-01-01",
    "width": "390",
    "height": "380",
}
"""Values of the required query parameters (``layer`` takes every readable layer)."""
OPTIONS = {
    "/collections/{layer_id}/items": {"limit": "10000"},
    "/sensors/{sensor}/readings": {"property": "pm25"},
    "/grid/overview.svg": {"bbox": "114.02,22.51,114.08,22.57"},
}
"""Optional parameters that widen an answer (every feature, not the first page)."""


def digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def build_city(url: str) -> None:
    """Two districts split at ``SPLIT_LON``, staff with names and phones, a disk of cells
    each with an inspector and its district as supervisor area, assets and sensors."""
    with psycopg.connect(url, autocommit=True) as conn:
        for did, code, name, (x0, x1) in (
            (1, "440304", "福田区", (113.9, SPLIT_LON)),
            (2, "440305", "南山区", (SPLIT_LON, 114.2)),
        ):
            conn.execute(
                "INSERT INTO districts (id, code, name, name_en, geom) VALUES (%s, %s, %s, %s, "
                "ST_Multi(ST_MakeEnvelope(%s, 22.4, %s, 22.7, 4326)))",
                (did, code, name, f"District {did}", x0, x1),
            )
        for uid, (name, phone, role, district) in STAFF.items():
            conn.execute(
                "INSERT INTO users (id, name, role, district_id, phone) "
                "VALUES (%s, %s, %s, %s, %s)",
                (uid, name, role, district, phone),
            )
        centre = h3.latlng_to_cell(CENTRE[1], CENTRE[0], 10)
        with conn.cursor() as cur:
            for cell in h3.grid_disk(centre, RING):
                _, clon = h3.cell_to_latlng(cell)
                west = clon < SPLIT_LON
                ring = [(x, y) for y, x in h3.cell_to_boundary(cell)]
                wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
                cur.execute(
                    "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, "
                    "supervisor, geom) VALUES (%s, 10, %s, 15000, %s, %s, "
                    "ST_GeomFromText(%s, 4326))",
                    (h3.str_to_int(cell), 1 if west else 2, 11 if west else 12,
                     "440304" if west else "440305", wkt),
                )  # fmt: skip
            for i in range(12):
                lon, lat = CENTRE[0] - 0.006 + 0.001 * i, CENTRE[1] + 0.0004 * (i % 5)
                cur.execute(
                    "INSERT INTO assets (code, class_code, kind, name, state, h3, geom) "
                    "VALUES (%s, '0117', 'street_lamp', %s, 'intact', %s, "
                    "ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                    (f"4403040117{i:06d}", f"lamp {i}", _cell(lon, lat), lon, lat),
                )


def _cell(lon: float, lat: float) -> int:
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, 10))


def staff_key(url: str, role: str, user: int) -> dict[str, str]:
    """A key for a member of staff, named after them (as keys handed to people are)."""
    return make_key(url, role, user, STAFF[user][0])


def act_as_staff(client: TestClient, url: str) -> None:
    """Named staff edit an asset, report cases and take a case a step on; the public reports
    a case with a phone number in its description."""
    editor = staff_key(url, "editor", 16)
    first = client.get("/collections/assets/items?limit=1", headers=editor).json()["features"][0]
    etag = client.get(f"/collections/assets/items/{first['id']}", headers=editor).headers["etag"]
    r = client.patch(
        f"/collections/assets/items/{first['id']}",
        json={"properties": {"state": "damaged"}},
        headers={**editor, "If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    inspector = staff_key(url, "inspector", 11)
    case = client.post(
        "/incidents",
        json={"category": "0102", "description": "垃圾满溢", "lon": 114.046, "lat": 22.541},
        headers=inspector,
    )
    assert case.status_code == 201, case.text
    dispatcher = staff_key(url, "dispatcher", 15)
    r = client.post(
        f"/incidents/{case.json()['id']}/transitions",
        json={"action": "register", "note": "已立案"},
        headers={**dispatcher, "If-Match": case.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    public = client.post(
        "/incidents",
        json={
            "category": "0102",
            "description": f"路灯不亮，请联系我 {REPORTER_PHONE}",
            "lon": 114.053,
            "lat": 22.538,
        },
    )
    assert public.status_code == 201, public.text
    admin, app = make_key(url, "admin"), make_key(url, "app")
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(3):
        sensor = {
            "code": f"AQ-{i}",
            "kind": "air_quality",
            "name": f"air {i}",
            "lon": CENTRE[0] + 0.002 * i,
            "lat": CENTRE[1] - 0.002,
            "measures": {"pm25": {"unit": "ug/m3", "min": 0, "max": 1000}},
        }
        assert client.post("/sensors", json=sensor, headers=admin).status_code == 201
    readings = [
        {"sensor": f"AQ-{i}", "property": "pm25", "ts": now.isoformat(), "value": 30.0 + i}
        for i in range(3)
    ]
    assert client.post("/sensors/readings", json=readings, headers=app).status_code == 200


@pytest.fixture(scope="module")
def city(new_database) -> Iterator[tuple[str, TestClient]]:
    """The city, served in process, after staff and the public have acted in it."""
    from spatial_api.app import create_app

    url = new_database("cityhex_privacy_scan")
    build_city(url)
    with TestClient(create_app(url)) as client:
        act_as_staff(client, url)
        yield url, client


# --- scanning answers ------------------------------------------------------------------------


@dataclass
class Finding:
    """Personal data found in one answer."""

    url: str
    what: str


@dataclass
class Scan:
    """Every answer scanned and what was found in them."""

    names: list[str]
    phones: list[str]
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=dict)

    def text(self, url: str, value: str) -> None:
        """Look for names and phone numbers in a piece of text."""
        bare = re.sub(r"[\s-]", "", value)
        for name in self.names:
            if name in value:
                self.findings.append(Finding(url, f"staff name {name}"))
        for phone in self.phones:
            if phone in bare:
                self.findings.append(Finding(url, f"phone {phone}"))
        for m in MOBILE.finditer(value):
            self.findings.append(Finding(url, f"mobile number {m[0]}"))

    def field_name(self, url: str, name: str) -> None:
        """Flag a field that names staff."""
        if name in STAFF_FIELDS:
            self.findings.append(Finding(url, f"staff field {name!r}"))

    def json(self, url: str, value: Any) -> None:
        """Scan a parsed JSON document: keys, strings and numbers."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.field_name(url, k)
                self.text(url, k)
                self.json(url, v)
        elif isinstance(value, list):
            for v in value:
                self.json(url, v)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            self.text(url, str(value))

    def tile(self, url: str, body: bytes) -> None:
        """Scan a vector tile: every layer's attribute names and values."""
        for layer in mapbox_vector_tile.decode(body).values():
            for feature in layer["features"]:
                self.json(url, feature["properties"])

    def answer(self, url: str, status: int, content_type: str, body: bytes) -> None:
        """Scan one answer by its media type (anything else as text)."""
        self.statuses.setdefault(url, set()).add(status)
        if not body:
            return
        kind = content_type.split(";")[0].strip()
        if kind == MVT:
            self.tile(url, body)
        elif kind.endswith("json"):
            self.json(url, orjson.loads(body))
        else:
            text = body.decode("utf-8", errors="ignore")
            self.text(url, text)
            if kind == "text/csv":
                for name in text.splitlines()[0].split(","):
                    self.field_name(url, name.strip().strip('"'))


# --- filling the operations ---------------------------------------------------------------


@dataclass
class Values:
    """Real values of the city for path and query parameters."""

    layers: list[str]
    features: dict[str, str]
    cells: list[str]
    sensors: list[str]
    cases: list[str]
    categories: list[str]
    styles: list[str]
    downloads: list[str]


def values_of(url: str, client: TestClient) -> Values:
    """What the city holds, read straight from its tables and from anonymous listings."""
    with psycopg.connect(url) as conn:
        cases = [str(r[0]) for r in conn.execute("SELECT id FROM incidents ORDER BY id")]
        cell = conn.execute("SELECT h3 FROM grid_cells ORDER BY h3 LIMIT 1").fetchone()[0]
        sensors = [r[0] for r in conn.execute("SELECT code FROM sensors ORDER BY id")]
        categories = [r[0] for r in conn.execute("SELECT code FROM incident_categories LIMIT 2")]
    layers = [c["id"] for c in client.get("/collections").json()["collections"]]
    layers += [name for name in CASE_LAYERS if name not in layers]
    features = {}
    for layer in layers:
        found = client.get(f"/collections/{layer}/items?limit=1").json().get("features")
        if found:
            features[layer] = str(found[0]["id"])
    catalog = client.get("/open/").content.decode()
    downloads = sorted(set(re.findall(r"/open/([A-Za-z0-9_.-]+\.(?:csv|geojson|gpkg))", catalog)))
    return Values(
        layers=layers,
        features=features,
        cells=[h3.int_to_str(cell)],
        sensors=sensors,
        cases=cases,
        categories=categories,
        styles=[s["name"] for s in client.get("/styles").json()["styles"]],
        downloads=downloads,
    )


def tiles_of(layers: list[str]) -> list[dict[str, str]]:
    """Tile numbers at a few zooms over the city, for every layer and its aggregate."""
    out = []
    for z in ZOOMS:
        _, x, y = tile_of(*CENTRE, z)
        for layer in layers:
            for name in (layer, f"{layer}_hex"):
                out.append({"layers": name, "layer": name, "z": str(z), "x": str(x), "y": str(y)})
    return out


def path_values(path: str, v: Values) -> list[dict[str, str]]:
    """Every filling of the path's parameters worth calling."""
    names = set(re.findall(r"{(\w+)}", path))
    if not names:
        return [{}]
    if "attachment_id" in names:  # any id: a case's or feature's attachment, or none
        return [
            {**d, "attachment_id": "1"}
            for d in path_values(path.replace("{attachment_id}", "1"), v)
        ]
    if {"z", "x", "y"} <= names:
        return tiles_of(v.layers)
    if "feature_id" in names:
        return [{"layer_id": k, "feature_id": f} for k, f in v.features.items()]
    if "layers" in names:
        return [{"layers": n} for layer in v.layers for n in (layer, f"{layer}_hex")]
    if "fontstack" in names:
        return [{"fontstack": "Noto Sans Regular", "range_name": "0-255"}]
    if path.startswith("/styles/"):
        return [{"name": s} for s in v.styles]
    if path.startswith("/open/"):
        return [{"name": d} for d in v.downloads]
    if path.startswith("/app/"):  # the web app's built files: code, no data
        return [{"name": sorted(current_build().files)[0]}]
    choices = {
        "layer_id": v.layers,
        "cell": v.cells,
        "sensor": v.sensors,
        "code": v.categories,
        "incident_id": v.cases,
        "request_id": v.cases,
    }
    (name,) = names
    return [{name: value} for value in choices[name]]


def query_values(operation: dict[str, Any], v: Values) -> list[dict[str, str]]:
    """Fillings of the operation's required query parameters (one per readable layer when
    it takes a layer)."""
    required = [
        p["name"]
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    ]
    fixed = {name: FILL[name] for name in required if name != "layer"}
    if "layer" in required:
        return [{**fixed, "layer": layer} for layer in v.layers]
    return [fixed]


def calls(openapi: dict[str, Any], v: Values) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(path template, URL path, query) of every anonymous GET worth making."""
    for template, ops in openapi["paths"].items():
        operation = ops.get("get")
        if operation is None or template in STREAMS:
            continue
        for path_params in path_values(template, v):
            path = template.format(**path_params)
            for query in query_values(operation, v):
                yield template, path, {**query, **OPTIONS.get(template, {})}


# --- the test -----------------------------------------------------------------------------


def test_no_anonymous_answer_holds_personal_data_of_staff(
    city: tuple[str, TestClient],
) -> None:
    url, client = city
    openapi = client.get("/openapi.json").json()
    for stream in STREAMS:
        assert client.get(stream).status_code == 401, stream
    values = values_of(url, client)
    assert {"assets", "grid", "sensors", "districts"} <= set(values.layers)
    assert values.downloads, "the open data catalog lists no downloads"
    scan = Scan(
        names=[name for name, *_ in STAFF.values()],
        phones=[digits(p) for _, p, *_ in STAFF.values()] + [REPORTER_PHONE],
    )
    answered: dict[str, set[int]] = {}
    for template, path, query in calls(openapi, values):
        r = client.get(path, params=query)
        assert r.status_code < 500, (path, query, r.text)
        answered.setdefault(template, set()).add(r.status_code)
        scan.answer(f"{path}?{query}", r.status_code, r.headers.get("content-type", ""), r.content)
    unanswered = [t for t, s in answered.items() if not s & {200, 204, 401}]
    assert not unanswered, f"never answered (fill them better): {unanswered}"
    readable = {t for t, s in answered.items() if s & {200, 204}}
    assert {
        "/collections/{layer_id}/items",
        "/collections/{layer_id}/items/{feature_id}",
        "/tiles/{layers}/{z}/{x}/{y}.mvt",
        "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}",
        "/tiles/{layers}/tilejson.json",
        "/styles/{name}.json",
        "/open311/v2/requests.json",
        "/open311/v2/requests/{request_id}.json",
        "/open/{name}",
        "/query/nearest",
    } <= readable
    found = sorted({f"{f.what} in {f.url}" for f in scan.findings})
    assert not found, "\n".join(found)
