"""/grid/partition and `cityhex grid partition`: territories written as assignments, each
connected and balanced — recomputed from the stored assignments with SQL and h3."""

from __future__ import annotations

from collections.abc import Iterator

import h3
import pytest
import shapely
from typer.testing import CliRunner

from layers.db.settings import storage_settings
from layers.grid.build import build_from
from spatial_api.cli import app as cli
from tests.helpers import GridCity, connected

POPULATION = "property:population"


def concave_city() -> shapely.Polygon:
    """A C-shaped city with a lake in its spine."""
    outer = shapely.Polygon(
        [
            (114.00, 22.50),
            (114.12, 22.50),
            (114.12, 22.53),
            (114.04, 22.535),
            (114.04, 22.565),
            (114.12, 22.57),
            (114.12, 22.60),
            (114.00, 22.60),
        ]
    )
    lake = shapely.Point(114.018, 22.55).buffer(0.008)
    return outer.difference(lake)


@pytest.fixture(scope="module")
def city(grid_city) -> Iterator[GridCity]:
    with grid_city("cityhex_grid_partition") as c:
        c.add_district("440304", "Futian", shapely.box(113.9, 22.4, 114.2, 22.7))
        c.existing = c.add_users(5)
        build_from(c.url, concave_city(), 9, "test")
        c.execute(
            "UPDATE grid_cells SET properties = jsonb_build_object('population', "
            "CASE WHEN h3 % 11 = 0 THEN 900 ELSE 100 + h3 % 200 END)"
        )
        yield c


def stored_territories(city: GridCity) -> dict[int | None, list[str]]:
    """The stored cells of every inspector."""
    out: dict[int | None, list[str]] = {}
    for cell, inspector in city.rows("SELECT h3, inspector_id FROM grid_cells"):
        out.setdefault(inspector, []).append(h3.int_to_str(cell))
    return out


def stored_balance(city: GridCity) -> float:
    """max/mean of the population per inspector, from the stored assignments."""
    loads = [
        w
        for (w,) in city.rows(
            "SELECT sum((properties->>'population')::float8) FROM grid_cells GROUP BY inspector_id"
        )
    ]
    return max(loads) / (sum(loads) / len(loads))


def check_stored(city: GridCity, inspectors: int) -> dict[int | None, list[str]]:
    territories = stored_territories(city)
    assert None not in territories
    assert len(territories) == inspectors
    for cells in territories.values():
        assert connected(cells)
    assert stored_balance(city) <= 1.10
    return territories


def snapshot(city: GridCity) -> tuple:
    return (
        sorted(city.rows("SELECT h3, inspector_id FROM grid_cells")),
        city.value("SELECT count(*) FROM grid_assignments"),
        city.value("SELECT count(*) FROM users"),
    )


def test_dry_run_returns_plan_and_writes_nothing(city: GridCity) -> None:
    before = snapshot(city)
    r = city.client.post(
        "/grid/partition",
        json={"inspectors": 12, "weight": POPULATION},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert snapshot(city) == before
    assert plan["applied"] is False and plan["connected"] is True
    territories = plan["territories"]
    assert len(territories) == 12
    assert sum(t["inspector"]["new"] for t in territories) == 7
    assert {t["inspector"]["id"] for t in territories if not t["inspector"]["new"]} == set(
        city.existing
    )
    listed = [c for t in territories for c in t["cell_list"]]
    assert sorted(listed) == sorted(
        h3.int_to_str(c) for (c,) in city.rows("SELECT h3 FROM grid_cells")
    )
    for t in territories:
        assert connected(t["cell_list"])
    loads = [t["workload"] for t in territories]
    assert max(loads) / (sum(loads) / 12) == pytest.approx(plan["balance"])
    assert plan["balance"] <= 1.10


def test_apply_writes_connected_balanced_territories_with_history(city: GridCity) -> None:
    r = city.client.post(
        "/grid/partition",
        json={"inspectors": 12, "weight": POPULATION, "apply": True},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["applied"] is True and "cell_list" not in plan["territories"][0]
    territories = check_stored(city, 12)
    new = [t["inspector"]["id"] for t in plan["territories"] if t["inspector"]["new"]]
    assert len(new) == 7
    roles = city.rows("SELECT role FROM users WHERE id = ANY(%s)", (new,))
    assert [r[0] for r in roles] == ["inspector"] * 7
    assert set(territories) == set(city.existing) | set(new)
    history = city.value(
        "SELECT count(*) FROM grid_assignments WHERE note = 'balanced territories'"
    )
    assert history == plan["changed"] == city.value("SELECT count(*) FROM grid_cells")


def test_keep_current_moves_few_cells(city: GridCity) -> None:
    before = stored_territories(city)
    ids = sorted(i for i in before if i is not None)
    r = city.client.post(
        "/grid/partition",
        json={"inspectors": ids, "weight": POPULATION, "apply": True, "keep_current": True},
        headers=city.key("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == 0
    extra = city.add_users(1)[0]
    r = city.client.post(
        "/grid/partition",
        json={
            "inspectors": [*ids, extra],
            "weight": POPULATION,
            "apply": True,
            "keep_current": True,
        },
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    territories = check_stored(city, 13)
    assert territories[extra]
    moved = sum(1 for i, cells in before.items() for c in cells if c not in territories[i])
    assert moved == r.json()["changed"]
    total = city.value("SELECT count(*) FROM grid_cells")
    assert moved < total / 3


def test_cli_partition_applies(city: GridCity, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHEX_DATABASE_URL", city.url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli, ["grid", "partition", "--inspectors", "8", "--weight", "area", "--apply"]
        )
    finally:
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    territories = stored_territories(city)
    assert len(territories) == 8 and None not in territories
    assert all(connected(cells) for cells in territories.values())
    loads = [a for (a,) in city.rows("SELECT sum(area_m2) FROM grid_cells GROUP BY inspector_id")]
    assert max(loads) / (sum(loads) / len(loads)) <= 1.10


BAD = [
    ({"inspectors": 0}, 400, "invalid_inspectors"),
    ({"inspectors": [1, 1]}, 400, "invalid_inspectors"),
    ({"inspectors": []}, 400, "invalid_inspectors"),
    ({"inspectors": [999_999]}, 422, "unknown_inspector"),
    ({"inspectors": "many"}, 400, "invalid_parameter"),
    ({"inspectors": True}, 400, "invalid_parameter"),
    ({"inspectors": 3, "weight": "people"}, 400, "invalid_weight"),
    ({"inspectors": 3, "weight": "property:nothing"}, 422, "zero_weight"),
    ({"inspectors": 3, "tolerance": 1.0}, 400, "invalid_tolerance"),
    ({"inspectors": 3, "apply": "yes"}, 400, "invalid_parameter"),
    ({"inspectors": 100_000}, 400, "invalid_inspectors"),
    ({"inspectors": 5000, "apply": True}, 422, "too_many_territories"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD)
def test_bad_partition_is_refused_and_writes_nothing(
    city: GridCity, body: dict, status: int, code: str
) -> None:
    before = snapshot(city)
    r = city.client.post("/grid/partition", json=body, headers=city.key("dispatcher"))
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert snapshot(city) == before


def test_partition_needs_dispatcher(city: GridCity) -> None:
    body = {"inspectors": 3}
    assert city.client.post("/grid/partition", json=body).status_code == 401
    for role in ("app", "inspector", "editor"):
        r = city.client.post("/grid/partition", json=body, headers=city.key(role))
        assert r.status_code == 403
