"""CQL2 filters (cql2-text and cql2-json) compiled to parameterised SQL for one catalog layer.

Contract of :func:`filter_clause`, the one entry point other packages call
(Features, tiles, spatial queries)::

    sql, params = filter_clause(layer, "kind = 'lamp' AND height > 3", "cql2-text")
    sql, params = filter_clause(layer, {"op": "=", "args": [...]}, "cql2-json",
                                style="asyncpg", first_param=3, alias="t")

* ``sql`` is a boolean SQL expression to AND into a WHERE clause; ``params`` its values.
* ``style`` chooses the placeholders: ``"asyncpg"`` → ``$n`` numbered from ``first_param``
  with ``params`` a list; ``"psycopg"`` → ``%s`` with a list; ``"sqlalchemy"`` →
  ``:cql_n`` with a dict (for ``sqlalchemy.text(sql).bindparams(**params)`` or
  ``conn.execute(text(sql), params)``). Every placeholder carries an explicit
  ``CAST(... AS type)``, so no driver has to guess a type.
* Nothing a client wrote is ever put into the SQL text: values, LIKE patterns, geometries
  and the keys of free-form properties are all parameters; property names are resolved
  against the catalog and emitted only as the layer's own (validated, quoted) column names.
* Columns are qualified with ``alias`` when given (``t."kind"``).
* Names resolve as: the geometry column (or ``geometry``/``geom``) → the layer's geometry;
  ``id`` → the id column; a catalog property → its column with its declared type; any
  other name → a key of the layer's ``extra_properties_column`` (jsonb), typed by the
  value it is compared with (text, number, boolean or timestamp; values that do not fit
  compare as NULL); on a layer without such a column an unknown name is a 400.
* Geometry literals are in ``srid`` (default 4326, lon/lat; ``flip_axes`` for lat/lon
  input) and are transformed to the layer's SRID.
* Free-form numbers and times are read with ``cityhex_try_numeric`` and
  ``cityhex_try_timestamptz`` (migration 0004_features), which give NULL for bad values.
* Any problem — a parse error (with its column), an unknown property, a type mismatch,
  an unsupported operator, too large a filter — raises :class:`gis.errors.BadRequest`
  whose message names it; nothing is executed.

Time properties are instants; every CQL2 temporal function compares one with an instant
or an interval (``'..'`` bounds are open) by Allen's relations, the instant being an
interval whose start and end coincide (``T_AFTER(t, x)`` is ``t >`` the end of x, ``T_MEETS``
``t =`` its start, ``T_OVERLAPS`` never holds for an instant, and so on — see ALLEN).
Parsing lives in :mod:`layers.features.cql.parse`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

import numpy as np
import shapely
import shapely.geometry
from pygeofilter import ast, values

from gis.errors import BadRequest
from gis.hexgrid import parse_cell
from layers.catalog.registry import Layer
from layers.features.cql.parse import TimeIntersects, parse_filter, parse_instant

Style = Literal["asyncpg", "psycopg", "sqlalchemy"]
MAX_NODES = 1_000
MAX_LIST_ITEMS = 1_000
GEOMETRY_NAMES = ("geometry", "geom")
RELATE_PATTERN = re.compile(r"^[012TF*]{9}$")

SQL_TYPES = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "datetime": "timestamptz",
}
SPATIAL_SQL = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps",
    ast.GeometryEquals: "ST_Equals",
}
COMPARISON_SQL = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
ARITHMETIC_SQL = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}
# Allen's interval relations of an instant property t (start = end = t) with a time x
# (an instant, or an interval with start and end): the comparisons of t with x's bounds
# whose conjunction is the relation, and whether it is negated (CQL2 2.0 temporal functions).
ALLEN: dict[type, tuple[list[tuple[str, str]], bool]] = {
    ast.TimeAfter: ([(">", "end")], False),
    ast.TimeBefore: ([("<", "start")], False),
    ast.TimeEquals: ([("=", "start"), ("=", "end")], False),
    ast.TimeDuring: ([(">", "start"), ("<", "end")], False),
    TimeIntersects: ([(">=", "start"), ("<=", "end")], False),
    ast.TimeDisjoint: ([(">=", "start"), ("<=", "end")], True),
    ast.TimeMeets: ([("=", "start")], False),
    ast.TimeMetBy: ([("=", "end")], False),
    ast.TimeOverlaps: ([("<", "start"), (">", "start"), ("<", "end")], False),
    ast.TimeOverlappedBy: ([(">", "start"), ("<", "end"), (">", "end")], False),
    ast.TimeBegins: ([("=", "start"), ("<", "end")], False),
    ast.TimeBegunBy: ([("=", "start"), (">", "end")], False),
    ast.TimeContains: ([("<", "start"), (">", "end")], False),
    ast.TimeEnds: ([(">", "start"), ("=", "end")], False),
    ast.TimeEndedBy: ([("<", "start"), ("=", "end")], False),
}


@dataclass(frozen=True)
class _Expr:
    """A compiled scalar: its SQL and its type (a catalog type, 'geometry' or 'dynamic')."""

    sql: str
    type: str


class _Compiler:
    """Turns one AST into SQL text plus parameters for one layer."""

    def __init__(
        self,
        layer: Layer,
        style: Style,
        first_param: int,
        alias: str | None,
        srid: int,
        flip_axes: bool,
    ) -> None:
        self.layer = layer
        self.style = style
        self.next_number = first_param
        self.prefix = f'"{alias}".' if alias else ""
        if alias is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alias):
            raise ValueError(f"{alias!r} is not a plain SQL alias")
        self.srid = int(srid)
        self.flip_axes = flip_axes
        self.params: list[Any] = []
        self.names: dict[str, Any] = {}
        self.nodes = 0
        self.subject: str | None = None

    # parameters --------------------------------------------------------------------
    def param(self, value: Any, sql_type: str) -> str:
        """A placeholder for ``value``, cast to ``sql_type``."""
        if self.style == "sqlalchemy":
            name = f"cql_{self.next_number}"
            self.names[name] = value
            placeholder = f":{name}"
        elif self.style == "asyncpg":
            self.params.append(value)
            placeholder = f"${self.next_number}"
        else:
            self.params.append(value)
            placeholder = "%s"
        self.next_number += 1
        return f"CAST({placeholder} AS {sql_type})"

    def column(self, name: str) -> str:
        return f'{self.prefix}"{name}"'

    # names -------------------------------------------------------------------------
    def attribute(self, name: str) -> _Expr:
        layer = self.layer
        if name in (layer.geometry_column, *GEOMETRY_NAMES):
            return _Expr(self.column(layer.geometry_column), "geometry")
        if name in ("id", layer.id_column):
            kind = {"integer": "integer", "string": "string", "h3": "h3"}[layer.id_type]
            return _Expr(self.column(layer.id_column), kind)
        if name in layer.properties:
            return _Expr(self.column(name), layer.properties[name])
        if layer.shows_extra(name):
            extras = self.column(layer.extra_properties_column)
            key = self.param(name, "text")
            if layer.extras_view == "all":
                return _Expr(f"({extras} ->> {key})", "dynamic")
            # the impersonal view never shows a nested value: a filter reads it as absent
            nested = self.param(name, "text")
            return _Expr(
                f"(CASE WHEN jsonb_typeof({extras} -> {nested}) IN ('object', 'array') "
                f"THEN NULL ELSE {extras} ->> {key} END)",
                "dynamic",
            )
        known = ", ".join(sorted(["id", *layer.properties]))
        raise BadRequest(
            f"unknown property {name!r} in filter; queryable: {known}", code="unknown_property"
        )

    # scalars -----------------------------------------------------------------------
    def scalar(self, node: Any, want: str) -> _Expr:
        """``node`` as SQL of type ``want`` (a catalog type)."""
        self.count()
        if isinstance(node, ast.Attribute):
            return self.typed(self.attribute(node.name), want, node.name)
        if isinstance(node, ast.Function):
            return self.function(node, want)
        if isinstance(node, ast.Arithmetic):
            return self.arithmetic(node)
        if isinstance(node, ast.Node | values.Geometry | values.Envelope | values.Interval):
            raise BadRequest(
                f"{_describe(node)} cannot be used as a value here", code="invalid_filter"
            )
        try:
            value = _coerce(node, want)
        except BadRequest as exc:
            if self.subject:
                exc.message = f"property {self.subject!r} is {_article(want)}; {exc.message}"
            raise
        return _Expr(self.param(value, _sql_type(want, node)), want)

    def typed(self, expr: _Expr, want: str, name: str) -> _Expr:
        """A property expression read as ``want``."""
        if expr.type == "dynamic":
            return _Expr(_dynamic_as(expr.sql, want), want)
        if expr.type == "h3":
            return _Expr(expr.sql, "h3")
        numeric = {"integer", "number"}
        if expr.type == want or (expr.type in numeric and want in numeric):
            return expr
        raise BadRequest(
            f"property {name!r} is {_article(expr.type)}, not {_article(want)}",
            code="type_mismatch",
        )

    def function(self, node: ast.Function, want: str) -> _Expr:
        if node.name not in ("lower", "casei") or len(node.arguments) != 1:
            raise BadRequest(
                f"unsupported function {node.name.upper()}(); supported: CASEI",
                code="unsupported_function",
            )
        inner = self.scalar(node.arguments[0], "string")
        return _Expr(f"lower({inner.sql})", "string")

    def arithmetic(self, node: ast.Arithmetic) -> _Expr:
        lhs = self.scalar(node.lhs, "number")
        rhs = self.scalar(node.rhs, "number")
        op = ARITHMETIC_SQL[type(node)]
        rhs_sql = f"NULLIF({rhs.sql}, 0)" if op == "/" else rhs.sql
        return _Expr(f"({lhs.sql}::double precision {op} {rhs_sql})", "number")

    def operand_type(self, *nodes: Any) -> str:
        """The type two or more operands are compared as."""
        for node in nodes:
            if isinstance(node, ast.Attribute):
                kind = self.static_type(node.name)
                if kind is not None:
                    self.subject = node.name
                    return kind
        self.subject = None
        for node in nodes:
            if isinstance(node, ast.Function):
                return "string"
            if isinstance(node, ast.Arithmetic):
                return "number"
            if not isinstance(node, ast.Node):
                return _literal_type(node)
        return "string"

    def static_type(self, name: str) -> str | None:
        layer = self.layer
        if name in (layer.geometry_column, *GEOMETRY_NAMES):
            return "geometry"
        if name in ("id", layer.id_column):
            return {"integer": "integer", "string": "string", "h3": "h3"}[layer.id_type]
        return layer.properties.get(name)

    # predicates --------------------------------------------------------------------
    def predicate(self, node: Any) -> str:
        self.count()
        if isinstance(node, ast.And | ast.Or):
            joiner = " AND " if isinstance(node, ast.And) else " OR "
            return f"({self.predicate(node.lhs)}{joiner}{self.predicate(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.predicate(node.sub_node)})"
        if isinstance(node, ast.Include):
            return "FALSE" if node.not_ else "TRUE"
        if isinstance(node, ast.Comparison):
            return self.comparison(node)
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.Between):
            return self.between(node)
        if isinstance(node, ast.In):
            return self.in_list(node)
        if isinstance(node, ast.IsNull):
            return self.is_null(node)
        if isinstance(node, ast.SpatialComparisonPredicate):
            return self.spatial(node)
        if isinstance(node, ast.Relate):
            return self.relate(node)
        if isinstance(node, ast.BBox):
            box = values.Envelope(node.minx, node.maxx, node.miny, node.maxy)
            return self.spatial(ast.GeometryIntersects(node.lhs, box))
        if isinstance(node, ast.TemporalPredicate):
            return self.temporal(node)
        raise BadRequest(f"{_describe(node)} is not a condition", code="invalid_filter")

    def comparison(self, node: ast.Comparison) -> str:
        want = self.operand_type(node.lhs, node.rhs)
        if want in ("geometry", "object"):
            raise BadRequest(
                f"{want} properties cannot be compared with {COMPARISON_SQL[type(node)]}",
                code="type_mismatch",
            )
        lhs = self.scalar(node.lhs, want)
        rhs = self.scalar(node.rhs, want)
        return f"({lhs.sql} {COMPARISON_SQL[type(node)]} {rhs.sql})"

    def like(self, node: ast.Like) -> str:
        lhs = self.scalar(node.lhs, "string")
        if lhs.type not in ("string",):
            raise BadRequest("LIKE needs a string property", code="type_mismatch")
        pattern = self.scalar(node.pattern, "string")
        op = "NOT LIKE" if node.not_ else "LIKE"
        if node.nocase:
            op = op.replace("LIKE", "ILIKE")
        return f"({lhs.sql} {op} {pattern.sql})"

    def between(self, node: ast.Between) -> str:
        want = self.operand_type(node.lhs, node.low, node.high)
        if want not in ("integer", "number", "datetime", "string"):
            raise BadRequest(
                f"BETWEEN needs numbers, times or strings, not {want}", code="type_mismatch"
            )
        lhs = self.scalar(node.lhs, want)
        low = self.scalar(node.low, want)
        high = self.scalar(node.high, want)
        negate = "NOT " if node.not_ else ""
        return f"({lhs.sql} {negate}BETWEEN {low.sql} AND {high.sql})"

    def in_list(self, node: ast.In) -> str:
        if not node.sub_nodes or len(node.sub_nodes) > MAX_LIST_ITEMS:
            raise BadRequest(f"IN takes 1 to {MAX_LIST_ITEMS} values", code="invalid_filter")
        want = self.operand_type(node.lhs, *node.sub_nodes)
        if want in ("geometry", "object"):
            raise BadRequest(f"IN cannot test {want} properties", code="type_mismatch")
        lhs = self.scalar(node.lhs, want)
        items = ", ".join(self.scalar(item, want).sql for item in node.sub_nodes)
        negate = "NOT " if node.not_ else ""
        return f"({lhs.sql} {negate}IN ({items}))"

    def is_null(self, node: ast.IsNull) -> str:
        if not isinstance(node.lhs, ast.Attribute):
            raise BadRequest("IS NULL tests a property", code="invalid_filter")
        expr = self.attribute(node.lhs.name)
        return f"({expr.sql} IS {'NOT ' if node.not_ else ''}NULL)"

    def geometry(self, node: Any) -> str:
        """A geometry operand: the layer's geometry column or a literal in the layer's SRID."""
        if isinstance(node, ast.Attribute):
            expr = self.attribute(node.name)
            if expr.type != "geometry":
                raise BadRequest(f"{node.name!r} is not the geometry", code="type_mismatch")
            return expr.sql
        if isinstance(node, values.Envelope):
            node = values.Geometry(node.geometry)
        if not isinstance(node, values.Geometry):
            raise BadRequest(f"{_describe(node)} is not a geometry", code="type_mismatch")
        geojson = _geometry_json(node.geometry)
        sql = f"ST_SetSRID(ST_GeomFromGeoJSON({self.param(geojson, 'text')}), {self.srid})"
        if self.flip_axes:
            sql = f"ST_FlipCoordinates({sql})"
        if self.srid != self.layer.srid:
            sql = f"ST_Transform({sql}, {int(self.layer.srid)})"
        return sql

    def spatial(self, node: ast.SpatialComparisonPredicate) -> str:
        self.count()
        lhs, rhs = self.geometry(node.lhs), self.geometry(node.rhs)
        return f"{SPATIAL_SQL[type(node)]}({lhs}, {rhs})"

    def relate(self, node: ast.Relate) -> str:
        if not isinstance(node.pattern, str) or not RELATE_PATTERN.match(node.pattern):
            raise BadRequest(
                "S_RELATE needs a 9-character DE-9IM pattern of 0,1,2,T,F,*", code="invalid_filter"
            )
        lhs, rhs = self.geometry(node.lhs), self.geometry(node.rhs)
        return f"ST_Relate({lhs}, {rhs}, {self.param(node.pattern, 'text')})"

    def temporal(self, node: ast.TemporalPredicate) -> str:
        instant, other = node.lhs, node.rhs
        if not isinstance(instant, ast.Attribute):
            instant, other = other, instant
            node = _mirror(node)
        if not isinstance(instant, ast.Attribute):
            raise BadRequest(
                "a temporal predicate compares a property with a time", code="invalid_filter"
            )
        if isinstance(other, values.Interval):
            bounds = {"start": other.start, "end": other.end}
        else:
            bounds = {"start": other, "end": other}
        conditions, negate = ALLEN[type(node)]
        open_bounds = [(op, which) for op, which in conditions if bounds[which] is None]
        if not all(_holds_at_infinity(op, which) for op, which in open_bounds):
            return "TRUE" if negate else "FALSE"
        parts = []
        for op, which in conditions:
            if bounds[which] is None:
                continue
            t = self.scalar(instant, "datetime").sql
            parts.append(f"{t} {op} {self.scalar(bounds[which], 'datetime').sql}")
        sql = "(" + " AND ".join(parts) + ")" if parts else "TRUE"
        return f"(NOT {sql})" if negate else sql

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BadRequest(f"the filter has more than {MAX_NODES} terms", code="filter_too_large")


def _holds_at_infinity(op: str, which: str) -> bool:
    """Whether ``t op bound`` holds for every finite t when the bound is open ('..'): a
    start is minus infinity, an end plus infinity."""
    return op in (">", ">=") if which == "start" else op in ("<", "<=")


def _mirror(node: ast.TemporalPredicate) -> ast.TemporalPredicate:
    """The same relation with its operands swapped (T_AFTER(x, t) ≡ T_BEFORE(t, x))."""
    swapped = {
        ast.TimeAfter: ast.TimeBefore,
        ast.TimeBefore: ast.TimeAfter,
        ast.TimeDuring: ast.TimeContains,
        ast.TimeContains: ast.TimeDuring,
        ast.TimeMeets: ast.TimeMetBy,
        ast.TimeMetBy: ast.TimeMeets,
        ast.TimeOverlaps: ast.TimeOverlappedBy,
        ast.TimeOverlappedBy: ast.TimeOverlaps,
        ast.TimeBegins: ast.TimeBegunBy,
        ast.TimeBegunBy: ast.TimeBegins,
        ast.TimeEnds: ast.TimeEndedBy,
        ast.TimeEndedBy: ast.TimeEnds,
    }
    return swapped.get(type(node), type(node))(node.rhs, node.lhs)


def _dynamic_as(sql: str, want: str) -> str:
    """A free-form (jsonb text) property read as ``want``; NULL where it does not fit."""
    if want == "string":
        return sql
    if want in ("integer", "number"):
        return f"cityhex_try_numeric({sql})"
    if want == "boolean":
        return f"(CASE lower({sql}) WHEN 'true' THEN true WHEN 'false' THEN false END)"
    if want == "datetime":
        return f"cityhex_try_timestamptz({sql})"
    raise BadRequest(f"free-form properties cannot be read as {want}", code="type_mismatch")


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime | date):
        return "datetime"
    if isinstance(value, str):
        return "string"
    raise BadRequest(f"{_describe(value)} cannot be used as a value here", code="invalid_filter")


def _sql_type(want: str, value: Any) -> str:
    if want == "h3":
        return "bigint"
    if want == "integer" and isinstance(value, float):
        return "double precision"
    return SQL_TYPES.get(want, "text")


def _coerce(value: Any, want: str) -> Any:
    """A literal as the Python value the ``want`` type binds; BadRequest when it does not fit."""
    mismatch = BadRequest(f"{value!r} is not {_article(want)}", code="type_mismatch")
    if want == "string":
        if not isinstance(value, str):
            raise mismatch
        return value
    if want in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch
        if not math.isfinite(value) or abs(value) > 1e300:
            raise mismatch
        if want == "integer" and isinstance(value, int) and abs(value) >= 2**63:
            raise mismatch
        return value if want == "integer" else float(value)
    if want == "boolean":
        if not isinstance(value, bool):
            raise mismatch
        return value
    if want == "datetime":
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=UTC)
        if isinstance(value, str):
            return parse_instant(value)
        raise mismatch
    if want == "h3":
        if not isinstance(value, str):
            raise mismatch
        return parse_cell(value)
    raise mismatch


def _geometry_json(geometry: dict[str, Any]) -> str:
    """A client's geometry literal as checked GeoJSON text."""
    try:
        shape = shapely.geometry.shape(geometry)
        coords = shapely.get_coordinates(shape)
    except Exception as exc:  # shapely raises many types for malformed input
        raise BadRequest(f"invalid geometry in filter: {exc}", code="invalid_geometry") from None
    if shape.is_empty or not np.isfinite(coords).all():
        raise BadRequest(
            "the geometry in the filter is empty or not finite", code="invalid_geometry"
        )
    return shapely.to_geojson(shape)


def _article(kind: str) -> str:
    return {"integer": "an integer", "object": "an object", "h3": "an H3 cell (hex string)"}.get(
        kind, f"a {kind}"
    )


def _describe(node: Any) -> str:
    if isinstance(node, ast.Attribute):
        return f"property {node.name!r}"
    if isinstance(node, values.Geometry | values.Envelope):
        return "a geometry"
    if isinstance(node, values.Interval):
        return "an interval"
    if isinstance(node, ast.Node):
        return type(node).__name__
    return repr(node)


def compile_filter(
    layer: Layer,
    node: ast.Node,
    *,
    style: Style = "asyncpg",
    first_param: int = 1,
    alias: str | None = None,
    srid: int = 4326,
    flip_axes: bool = False,
) -> tuple[str, list[Any] | dict[str, Any]]:
    """SQL and parameters of a parsed filter (see the module docstring for the contract)."""
    compiler = _Compiler(layer, style, first_param, alias, srid, flip_axes)
    try:
        sql = compiler.predicate(node)
    except RecursionError:
        raise BadRequest("the filter is nested too deeply", code="filter_too_large") from None
    return sql, compiler.names if style == "sqlalchemy" else compiler.params


def filter_clause(
    layer: Layer,
    value: str | dict[str, Any],
    lang: str = "cql2-text",
    *,
    style: Style = "asyncpg",
    first_param: int = 1,
    alias: str | None = None,
    srid: int = 4326,
    flip_axes: bool = False,
) -> tuple[str, list[Any] | dict[str, Any]]:
    """A CQL2 filter on ``layer`` as (SQL boolean expression, parameters).

    ``value`` is cql2-text (a string) or cql2-json (a string or a decoded object);
    see the module docstring for placeholders, name resolution and errors.
    """
    node = parse_filter(value, lang)
    return compile_filter(
        layer,
        node,
        style=style,
        first_param=first_param,
        alias=alias,
        srid=srid,
        flip_axes=flip_axes,
    )
