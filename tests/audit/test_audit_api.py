"""GET /audit and /audit/verify: admins only; the filters and the paging give exactly what
SQL gives; bad parameters are 400 JSON."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.audit.conftest import LAMPS
from tests.helpers import City

PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def city(audit_city) -> Iterator[City]:
    """A city whose log holds writes by two keys, refused writes and personal reads."""
    with audit_city("cityhex_audit_api") as city:
        editors = [city.key("editor"), city.key("editor")]
        for n in range(12):
            fid = 1 + n % LAMPS
            etag = city.client.get(f"/collections/assets/items/{fid}").headers["etag"]
            headers = {**editors[n % 2], **PATCH, "If-Match": etag}
            body = {"properties": {"name": f"n{n}"}}
            assert city.client.patch(
                f"/collections/assets/items/{fid}", json=body, headers=headers
            ).is_success
        city.client.delete("/collections/assets/items/3", headers={"If-Match": "*"})
        for _ in range(3):
            city.client.get("/incidents/1", headers=city.key("dispatcher"))
        yield city


def all_pages(city: City, admin: dict[str, str], params: dict[str, Any]) -> list[int]:
    """The seqs of every page of /audit with ``params``, following next_before."""
    seqs: list[int] = []
    query = dict(params)
    while True:
        r = city.client.get("/audit", params=query, headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["chain"]["ok"]
        seqs += [e["seq"] for e in body["entries"]]
        if body["next_before"] is None:
            return seqs
        query["before"] = body["next_before"]


@pytest.mark.parametrize("route", ["/audit", "/audit/verify"])
def test_only_admins_read_the_log(city: City, route: str) -> None:
    anonymous = city.client.get(route)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    for role in ("app", "inspector", "editor", "dispatcher"):
        r = city.client.get(route, headers=city.key(role))
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert city.client.get(route, headers=city.key("admin")).status_code == 200


@pytest.mark.parametrize(
    ("params", "where", "args"),
    [
        ({}, "true", ()),
        ({"action": "write"}, "action = 'write'", ()),
        ({"action": "personal.read"}, "action = 'personal.read'", ()),
        ({"actor": "anonymous"}, "actor = 'anonymous'", ()),
        ({"path": "/collections/assets/items/1"}, "path LIKE '/collections/assets/items/1%%'", ()),
        ({"path": "/collections/%"}, "false", ()),
        (
            {"action": "write", "path": "/collections/assets/items/3"},
            "action = 'write' AND path = '/collections/assets/items/3'",
            (),
        ),
    ],
)
def test_filters_and_pages_match_sql(
    city: City, params: dict[str, Any], where: str, args: tuple
) -> None:
    admin = city.key("admin")
    top = city.value("SELECT seq FROM audit_head")
    expected = [
        s
        for (s,) in city.rows(
            f"SELECT seq FROM audit_log WHERE {where} AND seq <= %s ORDER BY seq DESC",
            (*args, top),
        )
    ]
    got = all_pages(city, admin, {**params, "limit": 4, "before": top + 1})
    assert got == expected
    if params.get("path") == "/collections/assets/items/1":
        # the prefix holds items 1, 10..19 and nothing else
        paths = {p for (p,) in city.rows("SELECT path FROM audit_log WHERE seq = ANY(%s)", (got,))}
        assert paths == {"/collections/assets/items/1"} | {
            f"/collections/assets/items/{i}" for i in range(10, 13)
        }


def test_a_time_range(city: City) -> None:
    admin = city.key("admin")
    rows = city.rows("SELECT seq, at FROM audit_log WHERE action = 'write' ORDER BY seq")
    (first, start), (last, end) = rows[2], rows[-3]
    page = city.client.get(
        "/audit",
        params={"from": start.isoformat(), "to": end.isoformat(), "action": "write"},
        headers=admin,
    ).json()
    assert [e["seq"] for e in page["entries"]] == [s for s, _ in reversed(rows[2:-3])]
    assert page["entries"][-1]["seq"] == first and last not in [e["seq"] for e in page["entries"]]
    later = city.client.get(
        "/audit", params={"from": (end + timedelta(days=1)).isoformat()}, headers=admin
    ).json()
    assert later["entries"] == [] and later["next_before"] is None


def test_an_entry_reads_as_stored(city: City) -> None:
    admin = city.key("admin")
    seq = city.value("SELECT max(seq) FROM audit_log WHERE action = 'personal.read'")
    (entry,) = city.client.get(
        "/audit", params={"before": seq + 1, "limit": 1}, headers=admin
    ).json()["entries"]
    at, key_id, target, detail, prev_hash, hash_ = city.rows(
        "SELECT at, key_id, target, detail, encode(prev_hash, 'hex'), encode(hash, 'hex') "
        "FROM audit_log WHERE seq = %s",
        (seq,),
    )[0]
    assert entry == {
        "seq": seq,
        "at": at.isoformat(),
        "action": "personal.read",
        "actor": "dispatcher:dispatcher-any",
        "role": "dispatcher",
        "key_id": key_id,
        "method": "GET",
        "route": "/incidents/{incident_id}",
        "path": "/incidents/1",
        "target": target,
        "status": 200,
        "client": "testclient",
        "detail": detail,
        "prev_hash": prev_hash,
        "hash": hash_,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"before": 0},
        {"before": 2**63},
        {"from": "yesterday"},
        {"actor": "a\x00b"},
        {"path": "/x\x00"},
    ],
)
def test_bad_parameters_are_400(city: City, params: dict[str, Any]) -> None:
    r = city.client.get("/audit", params=params, headers=city.key("admin"))
    assert r.status_code == 400
    assert set(r.json()) >= {"status", "code", "message"}
