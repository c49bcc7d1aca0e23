"""CQL2 without a database: placeholder styles, and malformed filters refused naming the
problem (text and JSON)."""

from __future__ import annotations

import pytest

from gis.errors import BadRequest
from layers.catalog.registry import load_catalog
from layers.features.cql.compile import filter_clause

ASSETS = load_catalog().get("assets")


@pytest.mark.parametrize("style", ["asyncpg", "sqlalchemy", "psycopg"])
def test_every_placeholder_style_binds_the_same_values(style: str) -> None:
    sql, params = filter_clause(
        ASSETS, "height > 2 AND kind IN ('a', 'b')", style=style, first_param=5, alias="t"
    )
    if style == "asyncpg":
        assert "$5" in sql and "$8" in sql and params == ["height", 2.0, "a", "b"]
    elif style == "sqlalchemy":
        assert params == {"cql_5": "height", "cql_6": 2.0, "cql_7": "a", "cql_8": "b"}
    else:
        assert sql.count("%s") == len(params) == 4
    assert 't."kind"' in sql.replace('"t".', "t.")


MALFORMED = [
    ("kind = ", "ends too early"),
    ("kind = 'lamp' AND", "ends too early"),
    ("kind ==== 2", "column 7"),
    ("S_INTERSECTS(geom, POINT(1))", "column"),
    ("owner_department_id = 'many'", "not an integer"),
    ("kind > 3", "'kind' is a string; 3 is not a string"),
    ("FOO(kind) = 1", "FOO"),
    ("T_AFTER(updated_at, TIMESTAMP('yesterday'))", "yesterday"),
    ("S_INTERSECTS(geom, POLYGON((0 0, 1 1)))", "geometry"),
    ("T_AFTER(TIMESTAMP('2024-01-01T00:00:00Z'), DATE('2024-01-02'))", "property"),
    ("NOT " * 3000 + "kind = 'x'", "filter"),
]


@pytest.mark.parametrize(("text", "named"), MALFORMED, ids=[m[0][:30] for m in MALFORMED])
def test_malformed_filter_is_a_bad_request_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(BadRequest) as err:
        filter_clause(ASSETS, text)
    assert named in err.value.message


def test_unknown_property_on_a_layer_without_free_form_properties() -> None:
    with pytest.raises(BadRequest, match=r"unknown property 'colour'.*queryable"):
        filter_clause(load_catalog().get("districts"), "colour = 'red'")


MALFORMED_JSON = [
    ('{"op": "=", "args": [1]}', "2 arguments"),
    ('{"op": "frobnicate", "args": []}', "frobnicate"),
    ('{"op": "=", "args": [{"property": 1}, 2]', "not JSON"),
    ('"kind"', "operation"),
    ('{"op": "=", "args": [{"property": 7}, 2]}', "property name"),
]


@pytest.mark.parametrize(("text", "named"), MALFORMED_JSON)
def test_malformed_json_filter_names_the_problem(text: str, named: str) -> None:
    with pytest.raises(BadRequest) as err:
        filter_clause(ASSETS, text, "cql2-json")
    assert named in err.value.message
