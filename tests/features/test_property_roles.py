"""Properties only some roles may read (the catalog's ``property_read_by``): the grid's
inspector and supervisor area, who edited an asset. A role that may not read one gets the
layer without it everywhere (items, filters, queryables, spatial queries, history, tiles,
TileJSON), and the tile cache never hands a staff tile to such a caller.

On a copy of the tile city (tests/conftest.py), its cells given a supervisor area and one
asset edited through the API by a named editor.
"""

from __future__ import annotations

from collections.abc import Iterator

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from layers.catalog.registry import Layer
from tests.helpers import CENTER, make_key, tile_of

STAFF_GRID = {"inspector_id", "supervisor"}
EDITOR = "Editor Wang"


@pytest.fixture(scope="module")
def city(tiles_city) -> str:
    """The tile city, every cell supervised by its district."""
    url = tiles_city("cityhex_property_roles")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE grid_cells SET supervisor = '440304'")
    return url


@pytest.fixture(scope="module")
def web(city: str) -> Iterator[TestClient]:
    from spatial_api.app import create_app

    with TestClient(create_app(city)) as client:
        yield client


@pytest.fixture(scope="module")
def keys(city: str) -> dict[str, dict[str, str]]:
    """Authorization headers by role (the editor's key named after them)."""
    roles = ("app", "inspector", "dispatcher", "admin")
    return {r: make_key(city, r) for r in roles} | {
        "editor": make_key(city, "editor", None, EDITOR)
    }


@pytest.fixture(scope="module")
def edited(web: TestClient, keys: dict[str, dict[str, str]]) -> str:
    """The id of an asset (a pipe: its code and class agree) the named editor changed."""
    editor = keys["editor"]
    pipes = web.get("/collections/assets/items?class_code=0301&limit=1", headers=editor).json()
    fid = pipes["features"][0]["id"]
    etag = web.get(f"/collections/assets/items/{fid}", headers=editor).headers["etag"]
    r = web.patch(
        f"/collections/assets/items/{fid}",
        json={"properties": {"state": "lost"}},
        headers={**editor, "If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    return str(fid)


def grid_truth(city: str) -> dict[str, tuple[int, int | None, str | None]]:
    """Every cell (hex) with its district, inspector and supervisor area, from the table."""
    with psycopg.connect(city) as conn:
        rows = conn.execute("SELECT h3, district_id, inspector_id, supervisor FROM grid_cells")
        return {format(h, "x"): (d, i, s) for h, d, i, s in rows}


def test_anonymous_grid_items_show_the_district_but_no_staff(web: TestClient, city: str) -> None:
    truth = grid_truth(city)
    features = web.get("/collections/grid/items?limit=10000").json()["features"]
    assert len(features) == len(truth)
    for f in features:
        props = f["properties"]
        assert not STAFF_GRID & props.keys()
        assert props["district_id"] == truth[f["id"]][0]
    one = web.get(f"/collections/grid/items/{features[0]['id']}").json()["properties"]
    assert not STAFF_GRID & one.keys()


@pytest.mark.parametrize("role", ["app", "inspector", "dispatcher", "admin"])
def test_staff_roles_read_the_inspector_and_supervisor_of_every_cell(
    web: TestClient, city: str, keys: dict[str, dict[str, str]], role: str
) -> None:
    truth = grid_truth(city)
    features = web.get("/collections/grid/items?limit=10000", headers=keys[role]).json()
    for f in features["features"]:
        props = f["properties"]
        assert (props["inspector_id"], props["supervisor"]) == truth[f["id"]][1:]


@pytest.mark.parametrize(
    "query",
    [
        "inspector_id=1",
        "supervisor=440304",
        "properties=inspector_id",
        "filter=inspector_id%3D1",
        "filter=supervisor%20IS%20NULL",
        "filter-lang=cql2-json&filter=%7B%22op%22%3A%22%3D%22%2C%22args%22%3A%5B%7B%22property%22"
        "%3A%22inspector_id%22%7D%2C1%5D%7D",
    ],
)
def test_anonymous_callers_cannot_filter_or_select_by_staff_properties(
    web: TestClient, keys: dict[str, dict[str, str]], query: str
) -> None:
    r = web.get(f"/collections/grid/items?{query}")
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["status"] == 400 and err["code"] and err["message"]
    assert web.get(f"/collections/grid/items?{query}", headers=keys["app"]).status_code == 200


def test_queryables_list_only_what_the_role_reads(
    web: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    public = web.get("/collections/grid/queryables").json()["properties"]
    assert "district_id" in public and not STAFF_GRID & public.keys()
    staff = web.get("/collections/grid/queryables", headers=keys["app"]).json()["properties"]
    assert staff.keys() >= STAFF_GRID


def test_spatial_queries_leave_staff_properties_out(
    web: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    lon, lat = CENTER
    for path in (
        f"/query/nearest?layer=grid&lon={lon}&lat={lat}&k=5",
        f"/query/within?layer=grid&lon={lon}&lat={lat}&radius_m=300",
    ):
        hits = web.get(path).json()["features"]
        assert hits and all(not STAFF_GRID & h["properties"].keys() for h in hits)
        staff = web.get(path, headers=keys["app"]).json()["features"]
        assert all(h["properties"].keys() >= STAFF_GRID for h in staff)
    body = {
        "layers": ["grid"],
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }
    found = web.post("/query/intersects", json=body).json()["layers"]["grid"]["features"]
    assert len(found) == 1 and not STAFF_GRID & found[0]["properties"].keys()


def test_who_edited_an_asset_is_for_staff_who_need_it(
    web: TestClient, keys: dict[str, dict[str, str]], edited: str
) -> None:
    path = f"/collections/assets/items/{edited}"
    assert "updated_by" not in web.get(path).json()["properties"]
    assert "updated_by" not in web.get(path, headers=keys["app"]).json()["properties"]
    props = web.get(path, headers=keys["inspector"]).json()["properties"]
    assert props["updated_by"] == f"editor:{EDITOR}"
    app_history = web.get(f"{path}/history", headers=keys["app"]).json()["versions"]
    assert app_history and all(v["actor"] is None for v in app_history)
    for v in app_history:
        for state in (v["before"], v["after"]):
            assert state is None or "updated_by" not in state["properties"]
    staff_history = web.get(f"{path}/history", headers=keys["dispatcher"]).json()["versions"]
    assert staff_history[-1]["actor"] == f"editor:{EDITOR}"
    assert staff_history[-1]["after"]["properties"]["updated_by"] == f"editor:{EDITOR}"


def decode(body: bytes) -> list[dict]:
    return mapbox_vector_tile.decode(body)["grid"]["features"] if body else []


def test_tiles_show_each_role_its_own_properties_from_one_cache(
    web: TestClient, city: str, keys: dict[str, dict[str, str]]
) -> None:
    truth = grid_truth(city)
    z, x, y = tile_of(*CENTER, 15)
    for path in (
        f"/tiles/grid/{z}/{x}/{y}.mvt",
        f"/collections/grid/tiles/WebMercatorQuad/{z}/{x}/{y}",
        f"/tiles/grid/{z}/{x}/{y}.mvt?category=01",
    ):
        staff_first = web.get(path, headers=keys["app"])
        public = web.get(path)
        staff_again = web.get(path, headers=keys["app"])
        public_again = web.get(path)
        for r in (staff_first, staff_again):
            assert r.headers["cache-control"].startswith("private")
            features = decode(r.content)
            assert features
            for f in features:
                props = f["properties"]
                cell = props["cell"]
                assert (props["inspector_id"], props.get("supervisor")) == truth[cell][1:]
        for r in (public, public_again):
            assert r.headers["cache-control"].startswith("public")
            features = decode(r.content)
            assert features and all(not STAFF_GRID & f["properties"].keys() for f in features)
        assert public.content == public_again.content != staff_first.content
        assert public_again.headers["x-cache"] == "hit" == staff_again.headers["x-cache"]


def test_tile_parameters_cannot_reach_staff_properties(
    web: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    z, x, y = tile_of(*CENTER, 15)
    for query in ("properties=inspector_id", "filter=inspector_id%3D1"):
        r = web.get(f"/tiles/grid/{z}/{x}/{y}.mvt?{query}")
        assert r.status_code == 400 and r.json()["status"] == 400
        assert web.get(f"/tiles/grid/{z}/{x}/{y}.mvt?{query}", headers=keys["app"]).status_code in (
            200,
            204,
        )
    public = web.get("/tiles/grid/tilejson.json").json()["vector_layers"][0]["fields"]
    staff = web.get("/tiles/grid/tilejson.json", headers=keys["app"]).json()
    assert "district_id" in public and not STAFF_GRID & public.keys()
    assert staff["vector_layers"][0]["fields"].keys() >= STAFF_GRID


@pytest.mark.parametrize(
    "spec",
    [
        {"property_read_by": {"nobody": ["app"]}},
        {"property_read_by": {"reported_at": ["app"]}, "time_column": "reported_at"},
        {"property_read_by": {"owner": ["app"]}, "editable_by": ["editor"]},
    ],
)
def test_the_catalog_refuses_a_restriction_that_would_leak(spec: dict) -> None:
    base = {
        "id": "things",
        "title": "Things",
        "table": "things",
        "properties": {"owner": "string", "reported_at": "datetime"},
    }
    with pytest.raises(ValidationError):
        Layer(**{**base, **spec})
