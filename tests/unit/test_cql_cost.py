"""The cost bound of CQL2 filters: vertices of geometry literals, nesting depth and number of
conditions, checked when a filter is parsed, before any SQL exists."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from gis.errors import BadRequest
from layers.features.cql.cost import check_cost, filter_cost
from layers.features.cql.parse import MAX_FILTER_CHARS, parse_filter
from layers.features.cql.settings import FilterSettings, filter_settings

DEFAULTS = FilterSettings()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the bounds from its own environment."""
    filter_settings.cache_clear()
    yield
    filter_settings.cache_clear()


def ring(n: int, lon: float = 114.05, lat: float = 22.55, r: float = 0.01) -> list[list[float]]:
    """A closed ring of ``n`` positions (the last repeats the first)."""
    points = [
        [
            round(lon + r * math.cos(2 * math.pi * i / (n - 1)), 3),
            round(lat + r * math.sin(2 * math.pi * i / (n - 1)), 3),
        ]
        for i in range(n - 1)
    ]
    return [*points, points[0]]


def wkt_polygon(positions: list[list[float]]) -> str:
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in positions) + "))"


def refusal(text: str, lang: str = "cql2-text") -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_filter(text, lang)
    assert caught.value.code == "filter_too_complex", caught.value.message
    return caught.value


def test_the_reported_relate_filter_is_refused_before_the_database() -> None:
    # The probe's filter: S_RELATE against a 1,100-vertex polygon, under the size limit.
    positions = ring(1_100)
    text = f"S_RELATE(geometry, {wkt_polygon(positions)}, 'T*F**F***')"
    assert len(text) < MAX_FILTER_CHARS
    error = refusal(text)
    assert error.details == {"bound": "vertices", "value": 1_100, "limit": DEFAULTS.max_vertices}
    assert "1,100 geometry vertices" in error.message and "1,000" in error.message


def test_a_polygon_at_the_bound_passes_and_vertices_add_up_over_literals() -> None:
    at_bound = f"S_INTERSECTS(geometry, {wkt_polygon(ring(DEFAULTS.max_vertices))})"
    assert filter_cost(parse_filter(at_bound)).vertices == DEFAULTS.max_vertices
    half = DEFAULTS.max_vertices // 2 + 1
    two = (
        f"S_INTERSECTS(geometry, {wkt_polygon(ring(half))}) OR "
        f"S_WITHIN(geometry, {wkt_polygon(ring(half, lat=22.6))})"
    )
    assert refusal(two).details["value"] == 2 * half


def test_json_geometries_collections_and_boxes_are_counted() -> None:
    collection = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Point", "coordinates": [114.0, 22.5]},
            {"type": "LineString", "coordinates": [[114.0, 22.5], [114.1, 22.6], [114.2, 22.5]]},
        ],
    }
    node = {
        "op": "and",
        "args": [
            {"op": "s_intersects", "args": [{"property": "geometry"}, collection]},
            {"op": "s_within", "args": [{"property": "geometry"}, {"bbox": [114, 22, 115, 23]}]},
        ],
    }
    assert filter_cost(parse_filter(node, "cql2-json")).vertices == 1 + 3 + 4
    big = {"type": "Polygon", "coordinates": [ring(DEFAULTS.max_vertices + 1)]}
    too_big = {"op": "s_intersects", "args": [{"property": "geometry"}, big]}
    assert refusal(json.dumps(too_big), "cql2-json").details["bound"] == "vertices"


def test_depth_counts_operators_and_a_run_of_and_is_one_level() -> None:
    assert filter_cost(parse_filter("a = 1")).depth == 1
    assert filter_cost(parse_filter("a = 1 AND NOT (b = 2 OR c = 3)")).depth == 4
    assert filter_cost(parse_filter("(a + (b * 2)) > 3")).depth == 3
    run = " AND ".join(f"p{i} = {i}" for i in range(DEFAULTS.max_predicates))
    assert filter_cost(parse_filter(run)).depth == 2
    nots = DEFAULTS.max_depth - 1
    assert filter_cost(parse_filter("NOT " * nots + "a = 1")).depth == DEFAULTS.max_depth
    error = refusal("NOT " * (nots + 1) + "a = 1")
    assert error.details == {
        "bound": "depth",
        "value": DEFAULTS.max_depth + 1,
        "limit": DEFAULTS.max_depth,
    }


def test_a_filter_nested_thousands_deep_is_a_400_not_a_crash() -> None:
    deep = "NOT " * 4_000 + "a = 1"
    assert len(deep) < MAX_FILTER_CHARS
    assert refusal(deep).details["value"] == 4_001


def test_the_number_of_conditions_is_bounded() -> None:
    at_bound = " OR ".join(f"kind = 'k{i}'" for i in range(DEFAULTS.max_predicates))
    assert filter_cost(parse_filter(at_bound)).predicates == DEFAULTS.max_predicates
    over = at_bound + " OR kind IS NULL"
    error = refusal(over)
    assert error.details["bound"] == "predicates"
    assert f"{DEFAULTS.max_predicates + 1} conditions" in error.message


def test_the_bounds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"S_INTERSECTS(geometry, {wkt_polygon(ring(20))})"
    parse_filter(text)
    monkeypatch.setenv("CITYHEX_FILTER_MAX_VERTICES", "19")
    filter_settings.cache_clear()
    assert refusal(text).details == {"bound": "vertices", "value": 20, "limit": 19}
    check_cost(parse_filter("a = 1 AND b = 2"), FilterSettings(max_predicates=2))
    with pytest.raises(BadRequest):
        check_cost(parse_filter("a = 1 AND b = 2"), FilterSettings(max_predicates=1))
