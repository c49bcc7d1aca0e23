"""Free-form asset properties (the jsonb ``properties`` extras of a feature) are shown only
to the roles that should see them:

- anonymous callers and app keys get the declared (catalog) attributes only;
- staff keys (inspector, dispatcher) get the extras without the keys named like personal
  data (phone, contact, address, ID numbers, plates, people's names, 姓名/电话/…) and
  without nested objects or lists (which could hold personal data under any key);
- the layer's editors and admins get them whole (a write answers with the whole feature).

Checked on a copy of the tile city whose first assets are given extras here; what each
role should get is computed from the stored jsonb and the test's own list of personal keys,
through items, one item, filters, queryables, spatial queries and history.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from layers.catalog.registry import load_catalog
from tests.helpers import make_key

EXTRAS = {
    "height_m": 9.5,
    "pole_material": "steel",
    "contact_phone": "13800138000",
    "owner_name": "张三",
    "manager": {"tel": "0755-1234567"},
    "管理员姓名": "李四",
    "name": "Wang Wei",
    "address": "深南大道 1 号",
}
PERSONAL = {"contact_phone", "owner_name", "管理员姓名", "address"}
"""The keys named like personal data (the test's own reading of the rule). ``name`` is a
declared asset attribute, so the extras' ``name`` never shows (the column wins)."""
IMPERSONAL = {"height_m", "pole_material"}
NESTED = {"manager"}
DECLARED = set(load_catalog().get("assets").properties) | {"h3"}


@pytest.fixture(scope="module")
def web(tiles_city) -> Iterator[tuple[str, TestClient]]:
    """The tile city, its first ten assets given the extras, served in process."""
    from spatial_api.app import create_app

    url = tiles_city("cityhex_asset_extras")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE assets SET properties = %s WHERE id <= 10", (Jsonb(EXTRAS),))
    with TestClient(create_app(url)) as client:
        yield url, client


@pytest.fixture(scope="module")
def keys(web) -> dict[str, dict[str, str] | None]:
    url, _ = web
    roles = ("app", "inspector", "dispatcher", "editor", "admin")
    return {"anonymous": None} | {r: make_key(url, r) for r in roles}


def shown_extras(role: str) -> set[str]:
    """The extras keys ``role`` should get."""
    if role in ("anonymous", "app"):
        return set()
    if role in ("inspector", "dispatcher"):
        return IMPERSONAL
    return IMPERSONAL | PERSONAL | NESTED


def stored_keys(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT DISTINCT jsonb_object_keys(properties) FROM assets")
        return {r[0] for r in rows}


def test_each_role_gets_the_extras_it_may_read(web, keys) -> None:
    url, client = web
    assert stored_keys(url) == set(EXTRAS)
    with psycopg.connect(url) as conn:
        lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE id = 1").fetchone()
    for role, header in keys.items():
        one = client.get("/collections/assets/items/1", headers=header or {})
        assert one.status_code == 200, (role, one.text)
        props = set(one.json()["properties"])
        assert props - DECLARED == shown_extras(role), role
        page = client.get("/collections/assets/items", params={"limit": 50}, headers=header or {})
        extra_keys = set().union(*(set(f["properties"]) for f in page.json()["features"]))
        assert extra_keys - DECLARED == shown_extras(role), role
        near = client.get(
            "/query/nearest",
            params={"layer": "assets", "lon": lon, "lat": lat, "k": 1},
            headers=header or {},
        )
        assert near.status_code == 200, near.text
        found = set().union(*(set(f["properties"]) for f in near.json()["features"]))
        assert found - DECLARED - {"distance_m"} == shown_extras(role), role
    # the editor sees the name the extras carry under a declared attribute's name: never
    assert client.get("/collections/assets/items/1").json()["properties"].get("name") != "Wang Wei"


def test_filters_and_queryables_follow_the_same_rule(web, keys) -> None:
    url, client = web
    with psycopg.connect(url) as conn:
        tall = conn.execute("SELECT count(*) FROM assets WHERE properties->>'height_m' = '9.5'")
        expected = tall.fetchone()[0]
    assert expected == 10
    for role, header in keys.items():
        by_height = client.get(
            "/collections/assets/items",
            params={"filter": "height_m = '9.5'", "limit": 1},
            headers=header or {},
        )
        by_phone = client.get(
            "/collections/assets/items",
            params={"filter": "contact_phone = '13800138000'", "limit": 1},
            headers=header or {},
        )
        by_equality = client.get(
            "/collections/assets/items",
            params={"contact_phone": "13800138000", "limit": 1},
            headers=header or {},
        )
        queryables = client.get("/collections/assets/queryables", headers=header or {}).json()
        names = set(queryables["properties"])
        if "height_m" in shown_extras(role):
            assert by_height.json()["numberMatched"] == expected, role
            assert "height_m" in names
        else:
            assert by_height.status_code == 400 and "height_m" not in names, role
        if "contact_phone" in shown_extras(role):
            assert by_phone.json()["numberMatched"] == expected, role
            assert by_equality.json()["numberMatched"] == expected, role
            assert "contact_phone" in names
        else:
            assert by_phone.status_code == 400, role
            assert by_equality.status_code == 400, role
            assert "contact_phone" not in names, role


def test_history_follows_the_same_rule(web, keys) -> None:
    _, client = web
    editor = keys["editor"]
    etag = client.get("/collections/assets/items/2", headers=editor).headers["etag"]
    patched = client.patch(
        "/collections/assets/items/2",
        json={"properties": {"state": "damaged"}},
        headers={**editor, "If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert set(patched.json()["properties"]) - DECLARED == IMPERSONAL | PERSONAL | NESTED
    for role in ("app", "dispatcher", "editor"):
        history = client.get("/collections/assets/items/2/history", headers=keys[role])
        assert history.status_code == 200, history.text
        for version in history.json()["versions"]:
            for state in (version.get("before"), version.get("after")):
                if state:
                    assert set(state["properties"]) - DECLARED == shown_extras(role), role


def test_a_hidden_nested_key_is_no_filter_oracle(web, keys) -> None:
    """``manager`` holds an object, which staff keys never see: a filter on it (CQL2 or
    ``manager=…``) is a 400 naming it, not a yes/no answer about the phone number inside;
    the layer's editors (who see it) filter by it."""
    url, client = web
    with psycopg.connect(url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM assets WHERE properties->>'manager' LIKE '%0755%'"
        ).fetchone()[0]
    assert expected == 10
    for role, header in keys.items():
        asked = (
            {"filter": "manager LIKE '%0755%'", "limit": 1},
            {"filter": "manager IS NOT NULL", "limit": 1},
            {"manager": '{"tel": "0755-1234567"}', "limit": 1},
        )
        for params in asked:
            r = client.get("/collections/assets/items", params=params, headers=header or {})
            if "manager" in shown_extras(role):
                assert r.status_code == 200, (role, r.text)
            else:
                assert r.status_code == 400, (role, params, r.text)
                assert r.json()["code"] == "unknown_property" and "manager" in r.json()["message"]
        if "manager" in shown_extras(role):
            r = client.get("/collections/assets/items", params=asked[0], headers=header or {})
            assert r.json()["numberMatched"] == expected, role
        queryables = client.get("/collections/assets/queryables", headers=header or {}).json()
        assert ("manager" in queryables["properties"]) == ("manager" in shown_extras(role)), role


def test_a_nested_value_the_sample_missed_still_reads_as_absent(web, keys) -> None:
    """A filter compiled for a staff view reads a nested value as absent, whatever rows
    the sample of nested keys saw (the check is in the SQL itself)."""
    from layers.catalog.registry import load_catalog
    from layers.features.cql.compile import filter_clause

    view = load_catalog().get("assets").for_role("dispatcher")
    assert view.extras_view == "impersonal" and not view.hidden_extras
    url, _ = web
    sql, params = filter_clause(view, "manager LIKE '%0755%'", "cql2-text", style="psycopg")
    with psycopg.connect(url) as conn:
        seen = conn.execute(f"SELECT count(*) FROM assets WHERE {sql}", params).fetchone()[0]
        whole = load_catalog().get("assets")
        sql, params = filter_clause(whole, "manager LIKE '%0755%'", "cql2-text", style="psycopg")
        unguarded = conn.execute(f"SELECT count(*) FROM assets WHERE {sql}", params).fetchone()[0]
    assert (seen, unguarded) == (0, 10)
