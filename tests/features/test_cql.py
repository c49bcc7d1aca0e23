"""CQL2 filters: every operator against real rows, checked against the same test in Python."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import shapely

from gis.errors import BadRequest
from layers.catalog.registry import load_catalog
from layers.features.cql.compile import filter_clause

ASSETS = load_catalog().get("assets")
KINDS = ["street_lamp", "manhole", "hydrant", "bench", "Lamp post"]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _rows(n: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(4)
    rows = []
    for i in range(n):
        extra: dict[str, Any] = {
            "height": round(rng.uniform(0, 12), 2),
            "material": rng.choice(["steel", "iron", "concrete"]),
        }
        if i % 7 == 0:
            extra["height"] = "n/a"  # a bad value an import brought along
        if i % 11 == 0:
            extra.pop("material")
        if i % 5 == 0:
            extra["installed"] = (T0 - timedelta(days=rng.randint(0, 2000))).isoformat()
        rows.append(
            {
                "id": i + 1,
                "code": f"440304{1000 + i % 50:04d}{i:06d}",
                "class_code": "0101",
                "kind": KINDS[i % len(KINDS)],
                "name": f"asset {i}" if i % 9 else None,
                "state": ["intact", "damaged"][i % 2],
                "owner_department_id": 1 + i % 4,
                "updated_at": T0 + timedelta(hours=i * 7),
                "extra": extra,
                "lon": 114.0 + rng.uniform(0, 0.1),
                "lat": 22.5 + rng.uniform(0, 0.1),
            }
        )
    return rows


ROWS = _rows()


@pytest.fixture(scope="module")
def cql_db(new_database) -> Iterator[str]:
    url = new_database("cityhex_cql")
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assets (id, code, class_code, kind, name, state, owner_department_id,"
            " updated_at, properties, geom) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [
                (
                    r["id"],
                    r["code"],
                    r["class_code"],
                    r["kind"],
                    r["name"],
                    r["state"],
                    r["owner_department_id"],
                    r["updated_at"],
                    json.dumps(r["extra"]),
                    r["lon"],
                    r["lat"],
                )
                for r in ROWS
            ],
        )
    yield url


def _ids(url: str, value: Any, lang: str = "cql2-text") -> set[int]:
    sql, params = filter_clause(ASSETS, value, lang, style="psycopg")
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(f"SELECT id FROM assets WHERE {sql}", params)}


def _expect(test: Callable[[dict[str, Any]], bool]) -> set[int]:
    return {r["id"] for r in ROWS if test(r)}


def _height(r: dict[str, Any]) -> float | None:
    h = r["extra"].get("height")
    return h if isinstance(h, float | int) else None


BOX = shapely.box(114.02, 22.52, 114.06, 22.57)

CASES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("kind = 'manhole'", lambda r: r["kind"] == "manhole"),
    ("kind <> 'manhole'", lambda r: r["kind"] != "manhole"),
    ("owner_department_id >= 3", lambda r: r["owner_department_id"] >= 3),
    (
        "owner_department_id < 2 OR state = 'damaged'",
        lambda r: r["owner_department_id"] < 2 or r["state"] == "damaged",
    ),
    ("kind LIKE '%lamp%'", lambda r: "lamp" in r["kind"]),
    ("kind NOT LIKE 'street\\_%'", lambda r: not r["kind"].startswith("street_")),
    ("CASEI(kind) LIKE '%lamp%'", lambda r: "lamp" in r["kind"].lower()),
    (
        "name LIKE 'asset 1_'",
        lambda r: r["name"] is not None and len(r["name"]) == 8 and r["name"].startswith("asset 1"),
    ),
    ("kind IN ('hydrant', 'bench')", lambda r: r["kind"] in ("hydrant", "bench")),
    ("kind NOT IN ('hydrant', 'bench')", lambda r: r["kind"] not in ("hydrant", "bench")),
    ("owner_department_id BETWEEN 2 AND 3", lambda r: 2 <= r["owner_department_id"] <= 3),
    ("owner_department_id NOT BETWEEN 2 AND 3", lambda r: not 2 <= r["owner_department_id"] <= 3),
    ("name IS NULL", lambda r: r["name"] is None),
    (
        "name IS NOT NULL AND NOT (state = 'intact')",
        lambda r: r["name"] is not None and r["state"] != "intact",
    ),
    (
        "S_INTERSECTS(geom, POLYGON((114.02 22.52, 114.06 22.52, 114.06 22.57, 114.02 22.57, "
        "114.02 22.52)))",
        lambda r: BOX.intersects(shapely.Point(r["lon"], r["lat"])),
    ),
    (
        "S_INTERSECTS(geometry, BBOX(114.02, 22.52, 114.06, 22.57))",
        lambda r: BOX.intersects(shapely.Point(r["lon"], r["lat"])),
    ),
    (
        "S_DISJOINT(geom, BBOX(114.02, 22.52, 114.06, 22.57))",
        lambda r: not BOX.intersects(shapely.Point(r["lon"], r["lat"])),
    ),
    (
        "T_AFTER(updated_at, TIMESTAMP('2024-02-01T00:00:00Z'))",
        lambda r: r["updated_at"] > datetime(2024, 2, 1, tzinfo=UTC),
    ),
    (
        "T_BEFORE(updated_at, DATE('2024-01-20'))",
        lambda r: r["updated_at"] < datetime(2024, 1, 20, tzinfo=UTC),
    ),
    (
        "T_DURING(updated_at, INTERVAL('2024-01-10T00:00:00Z', '2024-01-20T00:00:00Z'))",
        lambda r: (
            datetime(2024, 1, 10, tzinfo=UTC) < r["updated_at"] < datetime(2024, 1, 20, tzinfo=UTC)
        ),
    ),
    (
        "T_AFTER(updated_at, INTERVAL('2024-01-10', '2024-01-20'))",
        lambda r: r["updated_at"] > datetime(2024, 1, 20, tzinfo=UTC),
    ),
    (
        "updated_at > TIMESTAMP('2024-01-15T12:00:00+08:00')",
        lambda r: r["updated_at"] > datetime(2024, 1, 15, 4, tzinfo=UTC),
    ),
    # free-form properties an import brought along
    ("height > 6.5", lambda r: (_height(r) or -1) > 6.5),
    (
        "height <= 3 AND material = 'steel'",
        lambda r: (
            _height(r) is not None and _height(r) <= 3 and r["extra"].get("material") == "steel"
        ),
    ),
    ("material IS NULL", lambda r: "material" not in r["extra"]),
    ("height BETWEEN 2 AND 4", lambda r: _height(r) is not None and 2 <= _height(r) <= 4),
    (
        "material IN ('iron', 'concrete')",
        lambda r: r["extra"].get("material") in ("iron", "concrete"),
    ),
    (
        "T_BEFORE(installed, DATE('2022-01-01'))",
        lambda r: (
            "installed" in r["extra"]
            and datetime.fromisoformat(r["extra"]["installed"]) < datetime(2022, 1, 1, tzinfo=UTC)
        ),
    ),
    ("height * 2 + 1 > 20", lambda r: _height(r) is not None and _height(r) * 2 + 1 > 20),
    (
        "NOT (kind = 'bench' OR kind = 'hydrant') AND owner_department_id = 1",
        lambda r: r["kind"] not in ("bench", "hydrant") and r["owner_department_id"] == 1,
    ),
    ("INCLUDE", lambda r: True),
]


@pytest.mark.parametrize(("text", "test"), CASES, ids=[c[0][:50] for c in CASES])
def test_cql2_text_selects_the_rows_python_selects(
    cql_db: str, text: str, test: Callable[[dict[str, Any]], bool]
) -> None:
    expected = _expect(test)
    assert _ids(cql_db, text) == expected


JSON_CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    (
        {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "state"}, "damaged"]},
                {"op": "like", "args": [{"property": "kind"}, "%lamp%"]},
            ],
        },
        lambda r: r["state"] == "damaged" and "lamp" in r["kind"],
    ),
    (
        {"op": "in", "args": [{"property": "owner_department_id"}, [1, 4]]},
        lambda r: r["owner_department_id"] in (1, 4),
    ),
    (
        {"op": "between", "args": [{"property": "height"}, 1, 5]},
        lambda r: _height(r) is not None and 1 <= _height(r) <= 5,
    ),
    (
        {
            "op": "s_intersects",
            "args": [{"property": "geometry"}, json.loads(shapely.to_geojson(BOX))],
        },
        lambda r: BOX.intersects(shapely.Point(r["lon"], r["lat"])),
    ),
    (
        {
            "op": "t_after",
            "args": [{"property": "updated_at"}, {"timestamp": "2024-03-01T00:00:00Z"}],
        },
        lambda r: r["updated_at"] > datetime(2024, 3, 1, tzinfo=UTC),
    ),
    (
        {"op": "not", "args": [{"op": "isNull", "args": [{"property": "name"}]}]},
        lambda r: r["name"] is not None,
    ),
    (
        {
            "op": "or",
            "args": [
                {"op": "<", "args": [{"property": "owner_department_id"}, 2]},
                {"op": "t_before", "args": [{"property": "updated_at"}, {"date": "2024-01-05"}]},
            ],
        },
        lambda r: (
            r["owner_department_id"] < 2 or r["updated_at"] < datetime(2024, 1, 5, tzinfo=UTC)
        ),
    ),
]


@pytest.mark.parametrize(("value", "test"), JSON_CASES, ids=[c[0]["op"] for c in JSON_CASES])
def test_cql2_json_selects_the_rows_python_selects(
    cql_db: str, value: dict[str, Any], test: Callable[[dict[str, Any]], bool]
) -> None:
    assert _ids(cql_db, value, "cql2-json") == _expect(test)
    assert _ids(cql_db, json.dumps(value), "cql2-json") == _expect(test)


INJECTIONS = [
    "kind = 'x''; DROP TABLE assets; --'",
    "kind = 'x'' OR ''1''=''1'",
    '"kind""; DROP TABLE assets; --" = \'x\'',
    "\"properties\" ->> 'x' = 'y'",
    "\"x') OR 1=1 --\" = 'y'",
    "name LIKE '%'' OR 1=1 --'",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_attempts_are_values_not_sql(cql_db: str, text: str) -> None:
    try:
        sql, params = filter_clause(ASSETS, text, style="psycopg")
    except BadRequest:
        sql = None
    if sql is not None:
        for fragment in ("DROP", "OR 1=1", "'1'='1'"):
            assert fragment not in sql
        with psycopg.connect(cql_db) as conn:
            matched = conn.execute(f"SELECT count(*) FROM assets WHERE {sql}", params).fetchone()
        assert matched[0] == 0
    with psycopg.connect(cql_db) as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == len(ROWS)


def test_json_injection_in_property_name_is_a_parameter(cql_db: str) -> None:
    evil = "x') IS NULL OR true OR ('"
    sql, params = filter_clause(
        ASSETS, {"op": "=", "args": [{"property": evil}, "a"]}, "cql2-json", style="psycopg"
    )
    assert evil not in sql and evil in params
    assert _ids(cql_db, {"op": "=", "args": [{"property": evil}, "a"]}, "cql2-json") == set()


S, E = T0 + timedelta(hours=70), T0 + timedelta(hours=140)  # exactly rows 10 and 20
ALLEN_PY: dict[str, Callable[[datetime, datetime, datetime], bool]] = {
    "T_AFTER": lambda t, s, e: t > e,
    "T_BEFORE": lambda t, s, e: t < s,
    "T_EQUALS": lambda t, s, e: t == s == e,
    "T_DURING": lambda t, s, e: s < t < e,
    "T_INTERSECTS": lambda t, s, e: s <= t <= e,
    "T_DISJOINT": lambda t, s, e: not s <= t <= e,
    "T_MEETS": lambda t, s, e: t == s,
    "T_METBY": lambda t, s, e: t == e,
    "T_OVERLAPS": lambda t, s, e: t < s < t < e,
    "T_OVERLAPPEDBY": lambda t, s, e: s < t < e < t,
    "T_BEGINS": lambda t, s, e: t == s and t < e,
    "T_BEGUNBY": lambda t, s, e: t == s and t > e,
    "T_CONTAINS": lambda t, s, e: t < s and t > e,
    "T_ENDS": lambda t, s, e: t > s and t == e,
    "T_ENDEDBY": lambda t, s, e: t < s and t == e,
}
MIRROR = {
    "T_AFTER": "T_BEFORE",
    "T_BEFORE": "T_AFTER",
    "T_DURING": "T_CONTAINS",
    "T_CONTAINS": "T_DURING",
    "T_MEETS": "T_METBY",
    "T_METBY": "T_MEETS",
    "T_OVERLAPS": "T_OVERLAPPEDBY",
    "T_OVERLAPPEDBY": "T_OVERLAPS",
    "T_BEGINS": "T_BEGUNBY",
    "T_BEGUNBY": "T_BEGINS",
    "T_ENDS": "T_ENDEDBY",
    "T_ENDEDBY": "T_ENDS",
}
FAR_PAST, FAR_FUTURE = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("op", sorted(ALLEN_PY))
def test_every_temporal_function_follows_allen(cql_db: str, op: str) -> None:
    test = ALLEN_PY[op]
    interval = f"INTERVAL('{_stamp(S)}', '{_stamp(E)}')"
    assert _ids(cql_db, f"{op}(updated_at, {interval})") == _expect(
        lambda r: test(r["updated_at"], S, E)
    )
    instant = f"TIMESTAMP('{_stamp(S)}')"
    assert _ids(cql_db, f"{op}(updated_at, {instant})") == _expect(
        lambda r: test(r["updated_at"], S, S)
    )
    mirrored = MIRROR.get(op, op)
    assert _ids(cql_db, f"{mirrored}({interval}, updated_at)") == _expect(
        lambda r: test(r["updated_at"], S, E)
    )
    open_end = f"INTERVAL('{_stamp(S)}', '..')"
    assert _ids(cql_db, f"{op}(updated_at, {open_end})") == _expect(
        lambda r: test(r["updated_at"], S, FAR_FUTURE)
    )
    open_start = f"INTERVAL('..', '{_stamp(E)}')"
    assert _ids(cql_db, f"{op}(updated_at, {open_start})") == _expect(
        lambda r: test(r["updated_at"], FAR_PAST, E)
    )
