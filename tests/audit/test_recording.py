"""What the audit trail records, checked in SQL: a write (in its own transaction), a refused
write, an admin action, a key's first use in an hour, a read of personal data; and what
happens when an entry cannot be recorded."""

from __future__ import annotations

from typing import Any

import h3
import pytest
from fastapi.testclient import TestClient

from tests.audit.conftest import CENTRE, REPORTER, chain_break, wait_out_the_hour
from tests.helpers import City, tile_of

PATCH = {"Content-Type": "application/merge-patch+json"}


def key_id(city: City, headers: dict[str, str]) -> int:
    """The id of the key an Authorization header carries (by its stored prefix)."""
    token = headers["Authorization"].split()[1]
    return city.value("SELECT id FROM api_keys WHERE prefix = %s", (token[:10],))


def rows_since(city: City, seq: int, action: str | None = None) -> list[tuple[Any, ...]]:
    """The entries after ``seq`` (of one action), in chain order, as ROW's columns."""
    where = "seq > %s" + (" AND action = %s" if action else "")
    params = (seq, action) if action else (seq,)
    return city.rows(
        "SELECT action, actor, role, key_id, method, route, path, target, status, client, "
        f"detail FROM audit_log WHERE {where} ORDER BY seq",
        params,
    )


def head(city: City) -> int:
    return city.value("SELECT seq FROM audit_head")


def patch_name(city: City, headers: dict[str, str], fid: int, name: str) -> Any:
    etag = city.client.get(f"/collections/assets/items/{fid}").headers["etag"]
    return city.client.patch(
        f"/collections/assets/items/{fid}",
        json={"properties": {"name": name}},
        headers={**headers, **PATCH, "If-Match": etag},
    )


def test_a_write_is_recorded_in_its_own_transaction(audit_city) -> None:
    with audit_city("cityhex_audit_write") as city:
        editor = city.key("editor")
        patch_name(city, editor, 3, "warmed")  # the key's first use of the hour is behind us
        before = head(city)
        assert patch_name(city, editor, 3, "renamed").status_code == 200
        (row,) = rows_since(city, before)
        assert row == (
            "write",
            "editor:editor-any",
            "editor",
            key_id(city, editor),
            "PATCH",
            "/collections/{layer_id}/items/{feature_id}",
            "/collections/assets/items/3",
            {"layer_id": "assets", "feature_id": "3"},
            None,  # written before the commit: no HTTP status yet
            "testclient",
            None,
        )
        # the same transaction as the change: the entry and the new row share their xmin
        entry_xmin = city.value("SELECT xmin::text FROM audit_log WHERE seq = %s", (before + 1,))
        asset_xmin = city.value("SELECT xmin::text FROM assets WHERE id = 3")
        assert entry_xmin == asset_xmin
        assert chain_break(city.url) is None


def test_refused_writes_are_recorded_with_their_status(audit_city) -> None:
    with audit_city("cityhex_audit_refused") as city:
        editor = city.key("editor")
        etag = city.client.get("/collections/assets/items/4").headers["etag"]
        patch_name(city, editor, 4, "first")
        before = head(city)
        stale = city.client.patch(
            "/collections/assets/items/4",
            json={"properties": {"name": "late"}},
            headers={**editor, **PATCH, "If-Match": etag},
        )
        assert stale.status_code == 412
        anonymous = city.client.delete("/collections/assets/items/4", headers={"If-Match": "*"})
        assert anonymous.status_code == 401
        rows = rows_since(city, before)
        assert [(r[0], r[1], r[4], r[6], r[8]) for r in rows] == [
            ("write", "editor:editor-any", "PATCH", "/collections/assets/items/4", 412),
            ("write", "anonymous", "DELETE", "/collections/assets/items/4", 401),
        ]
        assert city.value("SELECT name FROM assets WHERE id = 4") == "first"


def test_an_admin_action_is_recorded_as_admin(audit_city) -> None:
    with audit_city("cityhex_audit_admin") as city:
        admin = city.key("admin")
        new = {
            "code": "0999",
            "major_name": "测试",
            "name": "测试",
            "name_en": "Test",
            "time_limit_hours": 24,
            "department_id": city.department_id("cgj"),
        }
        city.client.get("/incidents/categories", headers=admin)  # the key's first use
        before = head(city)
        assert city.client.post("/incidents/categories", json=new, headers=admin).status_code == 201
        assert city.client.get("/audit", headers=admin).status_code == 200
        rows = rows_since(city, before)
        assert [(r[0], r[1], r[2], r[4], r[5], r[8]) for r in rows] == [
            ("admin", "admin:admin-any", "admin", "POST", "/incidents/categories", None),
            ("admin", "admin:admin-any", "admin", "GET", "/audit", 200),
        ]
        assert city.value("SELECT count(*) FROM incident_categories WHERE code = '0999'") == 1


def test_a_key_is_recorded_on_its_first_use_in_an_hour_only(audit_city) -> None:
    from spatial_api.app import create_app

    z, x, y = tile_of(*CENTRE, 16)
    wait_out_the_hour()
    with audit_city("cityhex_audit_keys") as city:
        app_key, other = city.key("app"), city.key("dispatcher")
        before = head(city)
        for _ in range(5):
            assert city.client.get(f"/tiles/assets/{z}/{x}/{y}.mvt", headers=app_key).is_success
        assert city.client.get("/sensors", headers=other).status_code == 200
        # another process (its own memory of keys) asks the database, which keeps one per hour
        with TestClient(create_app(city.url)) as second:
            assert second.get("/collections", headers=app_key).status_code == 200
        uses = rows_since(city, before, "key.use")
        assert [(r[1], r[3], r[4], r[5], r[8]) for r in uses] == [
            ("app:app-any", key_id(city, app_key), "GET", "/tiles/{layers}/{z}/{x}/{y}.mvt", 200),
            ("dispatcher:dispatcher-any", key_id(city, other), "GET", "/sensors", 200),
        ]
        assert city.value(
            "SELECT count(*) FROM audit_log WHERE action = 'key.use' AND at >= "
            "date_trunc('hour', now(), 'UTC')"
        ) == len(uses)


def test_a_read_of_personal_data_is_recorded_without_the_data(audit_city) -> None:
    with audit_city("cityhex_audit_personal") as city:
        dispatcher = city.key("dispatcher")
        city.client.get("/sensors", headers=dispatcher)  # the key's first use
        before = head(city)
        case = city.client.get("/incidents/1", headers=dispatcher)
        assert case.status_code == 200 and case.json()["reporter"] == REPORTER
        assert city.client.get("/incidents/categories", headers=dispatcher).status_code == 200
        assert city.client.get("/incidents/1").status_code == 401
        assert city.client.get("/incidents/999", headers=dispatcher).status_code == 404
        (row,) = rows_since(city, before)
        assert row == (
            "personal.read",
            "dispatcher:dispatcher-any",
            "dispatcher",
            key_id(city, dispatcher),
            "GET",
            "/incidents/{incident_id}",
            "/incidents/1",
            {"incident_id": "1"},
            200,
            "testclient",
            {"personal": ["reporter"]},
        )
        assert not city.value(
            "SELECT count(*) FROM audit_log WHERE audit_log::text LIKE %s", (f"%{REPORTER}%",)
        )


@pytest.mark.parametrize(
    "path",
    ["/grid/cells", "/grid/cells/{cell}", "/grid/cells/{cell}/assignment", "/incidents"],
)
def test_staff_and_reporter_reads_are_personal(audit_city, path: str) -> None:
    hexcell = h3.latlng_to_cell(CENTRE[1], CENTRE[0], 10)
    with audit_city("cityhex_audit_personal_routes") as city:
        inspector = city.key("inspector", 7)
        before = head(city)
        r = city.client.get(path.replace("{cell}", hexcell), headers=inspector)
        assert r.status_code == 200
        reads = rows_since(city, before, "personal.read")
        assert [(r[1], r[5], r[6]) for r in reads] == [
            ("inspector:inspector-7", path, path.replace("{cell}", hexcell))
        ]


def test_a_write_whose_entry_fails_is_not_committed(audit_city) -> None:
    with audit_city("cityhex_audit_fails") as city:
        editor, reader = city.key("editor"), city.key("dispatcher")
        patch_name(city, editor, 5, "before")
        city.client.get("/sensors", headers=reader)
        # the database refuses this editor's and this reader's entries from now on
        city.execute(
            "ALTER TABLE audit_log ADD CONSTRAINT no_more CHECK (actor NOT IN "
            "('editor:editor-any', 'dispatcher:dispatcher-any')) NOT VALID"
        )
        before = head(city)
        refused = patch_name(city, editor, 5, "after")
        assert refused.status_code == 503 and refused.json()["code"] == "audit_unavailable"
        assert city.value("SELECT name FROM assets WHERE id = 5") == "before"
        assert city.value("SELECT version FROM assets WHERE id = 5") == 2
        read = city.client.get("/incidents/1", headers=reader)
        assert read.status_code == 503 and REPORTER not in read.text
        assert head(city) == before
        city.execute("ALTER TABLE audit_log DROP CONSTRAINT no_more")
        assert patch_name(city, editor, 5, "after").status_code == 200
        assert chain_break(city.url) is None
