"""Least privilege: keys and OIDC tokens limited to districts, departments and layers.

The incident city (two districts, 440301 west and 440302 east of the split) with cases in
both, two assets owned by different departments, and a second layer editors may write
(``roads``, published for this module through CITYHEX_CATALOG). What a scoped caller may
see is compared with SQL over the same tables; that an unscoped caller may do the same thing
shows the 403 comes from the scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from gis.errors import BadRequest
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.db.settings import storage_settings
from tests.api.conftest import Issuer, app_trusting
from tests.helpers import City
from tests.incidents.conftest import build_city

WEST, EAST = "440301", "440302"
WEST_POINTS = [(114.04, 22.535), (114.045, 22.545), (114.042, 22.541)]
EAST_POINTS = [(114.058, 22.535), (114.055, 22.545)]
ROADS = """
[layers.roads]
title = "Roads"
table = "scope_test_roads"
geometry_type = "LineString"
public = true
editable_by = ["editor"]
[layers.roads.properties]
name = "string"
"""
LINE = {"type": "LineString", "coordinates": [[114.04, 22.53], [114.05, 22.54]]}


@pytest.fixture(scope="module")
def city(new_database, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """The incident city with a roads table published as an editable layer, served by an
    app that trusts the test issuer."""
    url = new_database("cityhex_scopes")
    build_city(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE scope_test_roads (id serial PRIMARY KEY, name text,"
            " geom geometry(LineString, 4326) NOT NULL)"
        )
    catalog = tmp_path_factory.mktemp("catalog") / "roads.toml"
    catalog.write_text(ROADS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_CATALOG", str(catalog))
        with app_trusting(url, issuer.url) as client:
            yield City(url, client)


@pytest.fixture(scope="module")
def cases(city: City) -> dict[str, list[int]]:
    """Cases reported in both districts (by an app key), by district code."""
    app = city.key("app")
    made: dict[str, list[int]] = {WEST: [], EAST: []}
    for code, points in ((WEST, WEST_POINTS), (EAST, EAST_POINTS)):
        for lon, lat in points:
            body = {"category": "0102", "lon": lon, "lat": lat}
            r = city.client.post("/incidents", json=body, headers=app)
            assert r.status_code == 201, r.text
            made[code].append(r.json()["id"])
    return made


def scoped_key(city: City, role: str, user: int | None = None, **scope: list[str]) -> dict:
    """The Authorization header of a new key of ``role`` limited to ``scope``."""
    with psycopg.connect(city.url, autocommit=True) as conn:
        token = create_key(conn, role, f"scoped-{role}", user, Scope.of(**scope))
    return {"Authorization": f"Bearer {token}"}


def token(issuer: Issuer, role: str, **claims: Any) -> dict[str, str]:
    """The Authorization header of an issuer's token for ``role`` with extra claims."""
    return {"Authorization": f"Bearer {issuer.token(issuer.keys[0], cityhex_role=role, **claims)}"}


def act(city: City, case_id: int, action: str, key: dict) -> Any:
    """Take ``action`` on the case at its current version."""
    version = city.value("SELECT version FROM incidents WHERE id = %s", (case_id,))
    return city.client.post(
        f"/incidents/{case_id}/transitions",
        json={"action": action},
        headers={**key, "If-Match": f'"{version}"'},
    )


def district_cases(city: City, code: str) -> set[int]:
    """The ids of the cases of district ``code``, straight from SQL."""
    rows = city.rows(
        "SELECT i.id FROM incidents i JOIN districts d ON d.id = i.district_id WHERE d.code = %s",
        (code,),
    )
    return {r[0] for r in rows}


def listed(city: City, key: dict) -> tuple[set[int], int]:
    """The ids and total of the caller's case list."""
    r = city.client.get("/incidents", params={"limit": 1000}, headers=key)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}, r.json()["total"]


def assert_out_of_scope(response: Any, code: str = "out_of_scope") -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == code


def test_a_district_dispatcher_dispatches_in_its_district_only(
    city: City, cases: dict[str, list[int]], issuer: Issuer
) -> None:
    west = scoped_key(city, "dispatcher", districts=[WEST])
    case = cases[WEST][0]
    assert act(city, case, "register", west).status_code == 200
    r = act(city, case, "dispatch", west)
    assert r.status_code == 200 and r.json()["status"] == "dispatched"
    other = cases[EAST][0]
    assert_out_of_scope(act(city, other, "register", west))
    assert city.value("SELECT status FROM incidents WHERE id = %s", (other,)) == "reported"
    assert_out_of_scope(city.client.get(f"/incidents/{other}", headers=west))
    assert_out_of_scope(city.client.get(f"/incidents/{other}/transitions", headers=west))
    assert city.client.get(f"/incidents/{case}", headers=west).status_code == 200
    east_token = token(issuer, "dispatcher", cityhex_districts=[EAST])
    assert act(city, other, "register", east_token).status_code == 200
    assert_out_of_scope(act(city, cases[WEST][1], "register", east_token))
    assert act(city, cases[WEST][1], "register", city.key("dispatcher")).status_code == 200


def test_a_district_dispatchers_list_and_metrics_hold_only_its_districts(
    city: City, cases: dict[str, list[int]], issuer: Issuer
) -> None:
    for code, key in (
        (WEST, scoped_key(city, "dispatcher", districts=[WEST])),
        (EAST, token(issuer, "dispatcher", cityhex_districts=[EAST])),
    ):
        expected = district_cases(city, code)
        assert set(cases[code]) <= expected
        assert listed(city, key) == (expected, len(expected))
        r = city.client.get("/incidents/metrics", headers=key)
        assert r.status_code == 200 and r.json()["total"]["reported"] == len(expected)
    every = {r[0] for r in city.rows("SELECT id FROM incidents")}
    assert listed(city, city.key("dispatcher")) == (every, len(every))
    assert listed(city, scoped_key(city, "dispatcher", districts=[])) == (set(), 0)


def test_inspectors_see_only_their_own_cases(city: City, cases: dict[str, list[int]]) -> None:
    inspector = city.key("inspector", 101)
    own = {r[0] for r in city.rows("SELECT id FROM incidents WHERE inspector_id = 101")}
    assert own and listed(city, inspector) == (own, len(own))
    other = city.value("SELECT min(id) FROM incidents WHERE inspector_id <> 101")
    assert_out_of_scope(city.client.get(f"/incidents/{other}", headers=inspector), "not_your_case")


def test_department_scoped_staff_see_their_departments_cases(
    city: City, cases: dict[str, list[int]], issuer: Issuer
) -> None:
    hw = city.department_id("hw")  # handles 0102, the category of every case here
    assert city.category_department("0102") == hw
    theirs = {r[0] for r in city.rows("SELECT id FROM incidents WHERE department_id = %s", (hw,))}
    assert listed(city, scoped_key(city, "editor", departments=["hw"])) == (theirs, len(theirs))
    cgj = token(issuer, "editor", cityhex_departments=["cgj"])
    assert listed(city, cgj) == (set(), 0)
    assert_out_of_scope(city.client.get(f"/incidents/{cases[WEST][0]}", headers=cgj))


@pytest.fixture(scope="module")
def assets(city: City) -> dict[str, int]:
    """One asset owned by sanitation (hw) and one by urban management (cgj); their ids."""
    made = {}
    for serial, dept in ((1, "hw"), (2, "cgj")):
        made[dept] = city.value(
            "INSERT INTO assets (code, class_code, kind, owner_department_id, geom) VALUES"
            " (%s, '0117', 'street_lamp', %s, ST_SetSRID(ST_MakePoint(114.04, 22.54), 4326))"
            " RETURNING id",
            (f"440301011790000{serial}", city.department_id(dept)),
        )
    return made


def patch(city: City, layer: str, fid: int, props: dict[str, Any], key: dict) -> Any:
    """Merge-patch a feature's properties at its current ETag."""
    etag = city.client.get(f"/collections/{layer}/items/{fid}").headers["etag"]
    return city.client.patch(
        f"/collections/{layer}/items/{fid}",
        json={"properties": props},
        headers={**key, "If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )


def new_asset(city: City, serial: int, department: str, key: dict) -> Any:
    """Create a lamp owned by ``department``."""
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.041, 22.541]},
        "properties": {
            "code": f"44030101179100{serial:02d}",
            "kind": "street_lamp",
            "owner_department_id": city.department_id(department),
        },
    }
    return city.client.post("/collections/assets/items", json=body, headers=key)


def new_road(city: City, key: dict) -> Any:
    body = {"type": "Feature", "geometry": LINE, "properties": {"name": "Shennan Blvd"}}
    return city.client.post("/collections/roads/items", json=body, headers=key)


def test_a_scoped_editor_edits_only_its_departments_assets_and_its_layers(
    city: City, assets: dict[str, int]
) -> None:
    editor = scoped_key(city, "editor", layers=["assets"], departments=["hw"])
    assert patch(city, "assets", assets["hw"], {"state": "damaged"}, editor).status_code == 200
    assert_out_of_scope(patch(city, "assets", assets["cgj"], {"state": "damaged"}, editor))
    cgj = city.department_id("cgj")
    assert_out_of_scope(patch(city, "assets", assets["hw"], {"owner_department_id": cgj}, editor))
    owners = dict(city.rows("SELECT id, owner_department_id FROM assets"))
    assert owners[assets["hw"]] == city.department_id("hw") and owners[assets["cgj"]] == cgj
    assert city.value("SELECT state FROM assets WHERE id = %s", (assets["cgj"],)) == "intact"
    assert new_asset(city, 1, "hw", editor).status_code == 201
    assert_out_of_scope(new_asset(city, 2, "cgj", editor))
    etag = city.client.get(f"/collections/assets/items/{assets['cgj']}").headers["etag"]
    r = city.client.delete(
        f"/collections/assets/items/{assets['cgj']}", headers={**editor, "If-Match": etag}
    )
    assert_out_of_scope(r)
    assert_out_of_scope(new_road(city, editor))
    assert new_road(city, city.key("editor")).status_code == 201
    assert patch(city, "assets", assets["cgj"], {"state": "lost"}, city.key("editor")).is_success


def test_an_editor_tokens_departments_and_layers_come_from_its_claims(
    city: City, assets: dict[str, int], issuer: Issuer
) -> None:
    roads_only = token(issuer, "editor", cityhex_layers=["roads"], cityhex_departments=["cgj"])
    assert new_road(city, roads_only).status_code == 201
    assert_out_of_scope(patch(city, "assets", assets["cgj"], {"name": "x"}, roads_only))
    cgj_assets = token(issuer, "editor", cityhex_departments=["cgj"])
    assert patch(city, "assets", assets["cgj"], {"name": "lamp 2"}, cgj_assets).status_code == 200
    assert_out_of_scope(patch(city, "assets", assets["hw"], {"name": "lamp 1"}, cgj_assets))


def test_a_district_dispatcher_assigns_and_routes_only_in_its_districts(city: City) -> None:
    west = scoped_key(city, "dispatcher", districts=[WEST])
    by_district = dict(
        city.rows(
            "SELECT d.code, min(g.h3) FROM grid_cells g JOIN districts d ON d.id = g.district_id"
            " GROUP BY d.code"
        )
    )
    body = {"inspector_id": 101}
    west_cell, east_cell = (format(by_district[c], "x") for c in (WEST, EAST))
    r = city.client.put(f"/grid/cells/{west_cell}/assignment", json=body, headers=west)
    assert r.status_code == 200, r.text
    r = city.client.put(f"/grid/cells/{east_cell}/assignment", json=body, headers=west)
    assert_out_of_scope(r)
    r = city.client.post("/grid/assignments", json={**body, "cells": [west_cell, east_cell]},
                         headers=west)  # fmt: skip
    assert_out_of_scope(r)
    assert east_cell in r.json()["message"] and west_cell not in r.json()["message"]
    r = city.client.post("/grid/partition", json={"inspectors": 2}, headers=west)
    assert_out_of_scope(r)
    route = {"department": "cgj"}
    r = city.client.put(f"/grid/category-departments/0102/{EAST}", json=route, headers=west)
    assert_out_of_scope(r)
    r = city.client.put(f"/grid/category-departments/0102/{WEST}", json=route, headers=west)
    assert r.status_code == 200, r.text
    r = city.client.delete(f"/grid/category-departments/0102/{WEST}", headers=west)
    assert r.status_code == 204


def test_key_scopes_are_checked_when_made(city: City) -> None:
    with psycopg.connect(city.url, autocommit=True) as conn:
        for role, scope in (
            ("dispatcher", Scope.of(districts=["999999"])),
            ("dispatcher", Scope.of(districts=["west"])),
            ("editor", Scope.of(departments=["no-such-department"])),
            ("admin", Scope.of(districts=[WEST])),
        ):
            with pytest.raises(BadRequest) as refused:
                create_key(conn, role, None, None, scope)
            assert refused.value.code == "invalid_scope"


@pytest.fixture
def cli_database(city: City) -> Iterator[str]:
    """CITYHEX_DATABASE_URL pointing at the city while a test runs the CLI in process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_DATABASE_URL", city.url)
        storage_settings.cache_clear()
        try:
            yield city.url
        finally:
            storage_settings.cache_clear()


def test_keys_create_takes_scope_options(city: City, cli_database: str) -> None:
    from spatial_api.cli import app

    runner = CliRunner()
    args = ["keys", "create", "--role", "dispatcher", "--name", "west-and-east"]
    result = runner.invoke(app, [*args, "--district", WEST, "--district", EAST])
    assert result.exit_code == 0, result.output
    new_token = result.output.strip().splitlines()[-1]
    row = city.rows("SELECT role, districts, departments, layers FROM api_keys WHERE name = %s",
                    ("west-and-east",))  # fmt: skip
    assert row == [("dispatcher", [WEST, EAST], None, None)]
    both = {"Authorization": f"Bearer {new_token}"}
    expected = district_cases(city, WEST) | district_cases(city, EAST)
    assert listed(city, both)[0] == expected
    result = runner.invoke(app, ["keys", "create", "--role", "editor", "--layer", "nope"])
    assert result.exit_code == 1 and "unknown_layer" in result.output
