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

Times are instants: ``T_AFTER(t, x)`` is ``t > x`` (``x``'s end for an interval),
``T_BEFORE`` ``t < x`` (its start), ``T_DURING`` strictly inside, ``T_INTERSECTS`` inside
or on the bounds, ``T_DISJOINT`` its negation, ``T_EQUALS`` equality.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

import numpy as np
import shapely
import shapely.geometry
from lark import Lark, Transformer, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedToken,
    VisitError,
)
from pygeofilter import ast, values
from pygeofilter.cql2 import SPATIAL_PREDICATES_MAP

from gis.errors import BadRequest
from gis.hexgrid import parse_cell
from layers.catalog import Layer

Lang = Literal["cql2-text", "cql2-json"]
Style = Literal["asyncpg", "psycopg", "sqlalchemy"]
LANGS: tuple[str, ...] = ("cql2-text", "cql2-json")
MAX_FILTER_CHARS = 20_000
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


class TimeIntersects(ast.TemporalPredicate):
    """CQL2 T_INTERSECTS (pygeofilter has no node of its own for it)."""


TEMPORAL_OPS: dict[str, type[ast.TemporalPredicate]] = {
    "t_after": ast.TimeAfter,
    "t_before": ast.TimeBefore,
    "t_during": ast.TimeDuring,
    "t_equals": ast.TimeEquals,
    "t_disjoint": ast.TimeDisjoint,
    "t_intersects": TimeIntersects,
    "t_meets": ast.TimeMeets,
    "t_metby": ast.TimeMetBy,
    "t_overlaps": ast.TimeOverlaps,
    "t_overlappedby": ast.TimeOverlappedBy,
    "t_begins": ast.TimeBegins,
    "t_begunby": ast.TimeBegunBy,
    "t_contains": ast.TimeContains,
    "t_ends": ast.TimeEnds,
    "t_endedby": ast.TimeEndedBy,
}

# --------------------------------------------------------------------------- parsing

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr _OR and_expr -> or_
?and_expr: not_expr | and_expr _AND not_expr -> and_
?not_expr: primary | _NOT not_expr -> not_
?primary: predicate | "(" or_expr ")"
?predicate: scalar COMP scalar -> compare
    | scalar _LIKE scalar -> like
    | scalar _NOT _LIKE scalar -> not_like
    | scalar _BETWEEN scalar _AND scalar -> between
    | scalar _NOT _BETWEEN scalar _AND scalar -> not_between
    | scalar _IN "(" scalar ("," scalar)* ")" -> in_
    | scalar _NOT _IN "(" scalar ("," scalar)* ")" -> not_in
    | scalar _IS _NULL -> is_null
    | scalar _IS _NOT _NULL -> is_not_null
    | SPATIAL_OP "(" scalar "," scalar ")" -> spatial
    | _RELATE "(" scalar "," scalar "," STRING ")" -> relate
    | TEMPORAL_OP "(" scalar "," scalar ")" -> temporal
    | _INCLUDE -> include
    | _EXCLUDE -> exclude
?scalar: sum
?sum: product | sum "+" product -> add | sum "-" product -> sub
?product: unary | product "*" unary -> mul | product "/" unary -> div
?unary: atom | "-" atom -> neg
?atom: NUMBER -> number
    | STRING -> string
    | _TRUE -> true
    | _FALSE -> false
    | _DATE "(" STRING ")" -> date
    | _TIMESTAMP "(" STRING ")" -> timestamp
    | _INTERVAL "(" STRING "," STRING ")" -> interval
    | geometry
    | IDENT -> attribute
    | DQSTRING -> quoted_attribute
    | IDENT "(" [scalar ("," scalar)*] ")" -> function
    | "(" sum ")"
?geometry: _POINT "(" coord ")" -> point
    | _LINESTRING "(" coords ")" -> linestring
    | _POLYGON "(" rings ")" -> polygon
    | _MULTIPOINT "(" mp_item ("," mp_item)* ")" -> multipoint
    | _MULTILINESTRING "(" rings ")" -> multilinestring
    | _MULTIPOLYGON "(" "(" rings ")" ("," "(" rings ")")* ")" -> multipolygon
    | _GEOMETRYCOLLECTION "(" geometry ("," geometry)* ")" -> collection
    | _BBOX "(" SNUMBER "," SNUMBER "," SNUMBER "," SNUMBER ")" -> bbox
mp_item: coord | "(" coord ")"
rings: "(" coords ")" ("," "(" coords ")")*
coords: coord ("," coord)*
coord: SNUMBER SNUMBER SNUMBER?

COMP: "=" | "<>" | "!=" | "<=" | ">=" | "<" | ">"
SPATIAL_OP.2: /S_(INTERSECTS|DISJOINT|CONTAINS|WITHIN|TOUCHES|CROSSES|OVERLAPS|EQUALS)\b/i
TEMPORAL_OP.2: /T_(AFTER|BEFORE|DURING|EQUALS|DISJOINT|INTERSECTS|MEETS|METBY)\b/i
    | /T_(OVERLAPS|OVERLAPPEDBY|BEGINS|BEGUNBY|CONTAINS|ENDS|ENDEDBY)\b/i
_OR.2: /OR\b/i
_AND.2: /AND\b/i
_NOT.2: /NOT\b/i
_LIKE.2: /LIKE\b/i
_BETWEEN.2: /BETWEEN\b/i
_IN.2: /IN\b/i
_IS.2: /IS\b/i
_NULL.2: /NULL\b/i
_RELATE.2: /S_RELATE\b/i
_INCLUDE.2: /INCLUDE\b/i
_EXCLUDE.2: /EXCLUDE\b/i
_TRUE.2: /TRUE\b/i
_FALSE.2: /FALSE\b/i
_DATE.2: /DATE(?=\s*\()/i
_TIMESTAMP.2: /TIMESTAMP(?=\s*\()/i
_INTERVAL.2: /INTERVAL(?=\s*\()/i
_POINT.2: /POINT(?=\s*\()/i
_LINESTRING.2: /LINESTRING(?=\s*\()/i
_POLYGON.2: /POLYGON(?=\s*\()/i
_MULTIPOINT.2: /MULTIPOINT(?=\s*\()/i
_MULTILINESTRING.2: /MULTILINESTRING(?=\s*\()/i
_MULTIPOLYGON.2: /MULTIPOLYGON(?=\s*\()/i
_GEOMETRYCOLLECTION.2: /GEOMETRYCOLLECTION(?=\s*\()/i
_BBOX.2: /BBOX(?=\s*\()/i
IDENT: /[A-Za-z_][A-Za-z0-9_.:]*/
DQSTRING: /"(?:[^"]|"")*"/
STRING: /'(?:[^']|'')*'/
NUMBER: /(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?/
SNUMBER: /[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?/

%ignore /\s+/
"""


def _unquote(token: str, quote: str) -> str:
    return token[1:-1].replace(quote * 2, quote)


def _parse_instant(text: str) -> datetime:
    """An ISO 8601 date or timestamp as an aware datetime (UTC when no offset is given)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            f"{text!r} is not an ISO 8601 date or timestamp", code="invalid_filter"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _interval_bound(text: str) -> datetime | None:
    return None if text.strip() in ("..", "") else _parse_instant(text)


@v_args(inline=True)
class _TextToAst(Transformer):
    """Builds pygeofilter AST nodes from the CQL2 text parse tree."""

    def or_(self, a, b):
        return ast.Or(a, b)

    def and_(self, a, b):
        return ast.And(a, b)

    def not_(self, a):
        return ast.Not(a)

    def compare(self, lhs, op, rhs):
        kind = {
            "=": ast.Equal,
            "<>": ast.NotEqual,
            "!=": ast.NotEqual,
            "<": ast.LessThan,
            "<=": ast.LessEqual,
            ">": ast.GreaterThan,
            ">=": ast.GreaterEqual,
        }[str(op)]
        return kind(lhs, rhs)

    def like(self, lhs, pattern, negate=False):
        return ast.Like(lhs, pattern, False, "%", "_", "\\", negate)

    def not_like(self, lhs, pattern):
        return self.like(lhs, pattern, True)

    def between(self, lhs, low, high):
        return ast.Between(lhs, low, high, False)

    def not_between(self, lhs, low, high):
        return ast.Between(lhs, low, high, True)

    def in_(self, lhs, *items):
        return ast.In(lhs, list(items), False)

    def not_in(self, lhs, *items):
        return ast.In(lhs, list(items), True)

    def is_null(self, lhs):
        return ast.IsNull(lhs, False)

    def is_not_null(self, lhs):
        return ast.IsNull(lhs, True)

    def spatial(self, op, lhs, rhs):
        return SPATIAL_PREDICATES_MAP[str(op).lower()](lhs, rhs)

    def relate(self, lhs, rhs, pattern):
        return ast.Relate(lhs, rhs, _unquote(pattern, "'"))

    def temporal(self, op, lhs, rhs):
        return TEMPORAL_OPS[str(op).lower()](lhs, rhs)

    def include(self):
        return ast.Include(False)

    def exclude(self):
        return ast.Include(True)

    def add(self, a, b):
        return ast.Add(a, b)

    def sub(self, a, b):
        return ast.Sub(a, b)

    def mul(self, a, b):
        return ast.Mul(a, b)

    def div(self, a, b):
        return ast.Div(a, b)

    def neg(self, a):
        if isinstance(a, int | float) and not isinstance(a, bool):
            return -a
        return ast.Sub(0, a)

    def number(self, token):
        text = str(token)
        return float(text) if any(c in text for c in ".eE") else int(text)

    def string(self, token):
        return _unquote(str(token), "'")

    def true(self):
        return True

    def false(self):
        return False

    def date(self, token):
        text = _unquote(str(token), "'")
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"{text!r} is not an ISO 8601 date", code="invalid_filter") from None

    def timestamp(self, token):
        return _parse_instant(_unquote(str(token), "'"))

    def interval(self, start, end):
        return values.Interval(
            _interval_bound(_unquote(str(start), "'")), _interval_bound(_unquote(str(end), "'"))
        )

    def attribute(self, token):
        return ast.Attribute(str(token))

    def quoted_attribute(self, token):
        return ast.Attribute(_unquote(str(token), '"'))

    def function(self, name, *args):
        return ast.Function(str(name).lower(), [a for a in args if a is not None])

    def coord(self, *parts):
        return tuple(float(p) for p in parts)

    def coords(self, *items):
        return list(items)

    def rings(self, *items):
        return list(items)

    def mp_item(self, item):
        return item

    def point(self, c):
        return values.Geometry({"type": "Point", "coordinates": c})

    def linestring(self, cs):
        return values.Geometry({"type": "LineString", "coordinates": cs})

    def polygon(self, rings):
        return values.Geometry({"type": "Polygon", "coordinates": rings})

    def multipoint(self, *points):
        return values.Geometry({"type": "MultiPoint", "coordinates": list(points)})

    def multilinestring(self, rings):
        return values.Geometry({"type": "MultiLineString", "coordinates": rings})

    def multipolygon(self, *polygons):
        return values.Geometry({"type": "MultiPolygon", "coordinates": list(polygons)})

    def collection(self, *geoms):
        return values.Geometry(
            {"type": "GeometryCollection", "geometries": [g.geometry for g in geoms]}
        )

    def bbox(self, minx, miny, maxx, maxy):
        return values.Envelope(float(minx), float(maxx), float(miny), float(maxy))


_TEXT_PARSER = Lark(
    GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False, transformer=_TextToAst()
)


def _describe_parse_error(exc: LarkError, text: str) -> str:
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        return "invalid cql2-text filter: it ends too early (an operand or ')' is missing)"
    if isinstance(exc, UnexpectedCharacters):
        snippet = text[exc.pos_in_stream : exc.pos_in_stream + 20]
        return f"invalid cql2-text filter at column {exc.column}: cannot read {snippet!r}"
    if isinstance(exc, UnexpectedToken):
        return f"invalid cql2-text filter at column {exc.column}: unexpected {str(exc.token)!r}"
    return f"invalid cql2-text filter: {exc}"


def parse_text(text: str) -> ast.Node:
    """The AST of a CQL2 text filter; BadRequest naming the problem when it does not parse."""
    try:
        return _TEXT_PARSER.parse(text)
    except VisitError as exc:
        if isinstance(exc.orig_exc, BadRequest):
            raise exc.orig_exc from None
        raise BadRequest(
            f"invalid cql2-text filter: {exc.orig_exc}", code="invalid_filter"
        ) from None
    except LarkError as exc:
        raise BadRequest(_describe_parse_error(exc, text), code="invalid_filter") from None


def _json_temporal(value: dict[str, Any]) -> Any:
    if "date" in value:
        try:
            return date.fromisoformat(str(value["date"]))
        except ValueError:
            raise BadRequest(
                f"{value['date']!r} is not an ISO 8601 date", code="invalid_filter"
            ) from None
    if "timestamp" in value:
        return _parse_instant(str(value["timestamp"]))
    bounds = value["interval"]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise BadRequest("an interval needs two bounds", code="invalid_filter")
    return values.Interval(*(_interval_bound(str(b)) for b in bounds))


def _json_args(node: dict[str, Any], count: int | None = None) -> list[Any]:
    args = node.get("args")
    if not isinstance(args, list):
        raise BadRequest(f"operator {node.get('op')!r} needs an 'args' list", code="invalid_filter")
    if count is not None and len(args) != count:
        raise BadRequest(
            f"operator {node['op']!r} takes {count} arguments, got {len(args)}",
            code="invalid_filter",
        )
    return args


def _walk_json(node: Any) -> Any:
    """A cql2-json node as a pygeofilter AST node or value."""
    if isinstance(node, bool | int | float | str) or node is None:
        return node
    if isinstance(node, list):
        return [_walk_json(item) for item in node]
    if not isinstance(node, dict):
        raise BadRequest(f"unexpected JSON value {node!r}", code="invalid_filter")
    if "property" in node:
        if not isinstance(node["property"], str):
            raise BadRequest("a property name must be a string", code="invalid_filter")
        return ast.Attribute(node["property"])
    if "type" in node and ("coordinates" in node or "geometries" in node):
        return values.Geometry(node)
    if "bbox" in node:
        box = node["bbox"]
        if not isinstance(box, list) or len(box) != 4:
            raise BadRequest("a bbox needs four numbers", code="invalid_filter")
        return values.Envelope(box[0], box[2], box[1], box[3])
    if {"date", "timestamp", "interval"} & node.keys():
        return _json_temporal(node)
    op = node.get("op")
    if not isinstance(op, str):
        raise BadRequest(
            f"cannot read the filter node {json.dumps(node)[:80]}", code="invalid_filter"
        )
    op = op.lower()
    if op in ("and", "or"):
        args = [_walk_json(a) for a in _json_args(node)]
        if len(args) < 2:
            raise BadRequest(f"'{op}' needs at least two arguments", code="invalid_filter")
        return (ast.And if op == "and" else ast.Or).from_items(*args)
    if op == "not":
        return ast.Not(_walk_json(_json_args(node, 1)[0]))
    if op == "isnull":
        return ast.IsNull(_walk_json(_json_args(node, 1)[0]), False)
    if op == "like":
        lhs, pattern = _json_args(node, 2)
        return ast.Like(_walk_json(lhs), _walk_json(pattern), False, "%", "_", "\\", False)
    if op == "between":
        lhs, low, high = _json_args(node, 3)
        return ast.Between(_walk_json(lhs), _walk_json(low), _walk_json(high), False)
    if op == "in":
        lhs, items = _json_args(node, 2)
        if not isinstance(items, list):
            raise BadRequest("'in' needs a list as its second argument", code="invalid_filter")
        return ast.In(_walk_json(lhs), [_walk_json(i) for i in items], False)
    if op in ("casei", "lower"):
        return ast.Function("casei", [_walk_json(_json_args(node, 1)[0])])
    comparisons = {
        "=": ast.Equal,
        "<>": ast.NotEqual,
        "<": ast.LessThan,
        "<=": ast.LessEqual,
        ">": ast.GreaterThan,
        ">=": ast.GreaterEqual,
    }
    arithmetic = {"+": ast.Add, "-": ast.Sub, "*": ast.Mul, "/": ast.Div}
    binary = {**comparisons, **arithmetic, **SPATIAL_PREDICATES_MAP, **TEMPORAL_OPS}
    if op in binary:
        lhs, rhs = _json_args(node, 2)
        return binary[op](_walk_json(lhs), _walk_json(rhs))
    if op == "s_relate":
        lhs, rhs, pattern = _json_args(node, 3)
        return ast.Relate(_walk_json(lhs), _walk_json(rhs), pattern)
    if "function" in node or op not in binary:
        raise BadRequest(f"unsupported cql2-json operator {op!r}", code="invalid_filter")
    raise BadRequest(f"cannot read the filter node {json.dumps(node)[:80]}", code="invalid_filter")


def parse_json(value: str | dict[str, Any]) -> ast.Node:
    """The AST of a CQL2 JSON filter (a JSON string or an already decoded object)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"invalid cql2-json filter: not JSON ({exc.msg} at column {exc.colno})",
                code="invalid_filter",
            ) from None
    node = _walk_json(value)
    if not isinstance(node, ast.Node):
        raise BadRequest("a cql2-json filter must be an operation object", code="invalid_filter")
    return node


def parse_filter(value: str | dict[str, Any], lang: str = "cql2-text") -> ast.Node:
    """The AST of a filter in ``lang`` (cql2-text or cql2-json); BadRequest when malformed."""
    if lang not in LANGS:
        raise BadRequest(
            f"filter-lang must be one of {', '.join(LANGS)}, not {lang!r}",
            code="invalid_filter_lang",
        )
    size = len(value) if isinstance(value, str) else len(json.dumps(value))
    if size > MAX_FILTER_CHARS:
        raise BadRequest(
            f"the filter is {size} characters; at most {MAX_FILTER_CHARS}", code="filter_too_large"
        )
    try:
        if lang == "cql2-json":
            return parse_json(value)
        if not isinstance(value, str):
            raise BadRequest("a cql2-text filter must be a string", code="invalid_filter")
        return parse_text(value)
    except RecursionError:
        raise BadRequest("the filter is nested too deeply", code="filter_too_large") from None


# --------------------------------------------------------------------------- compiling


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
        if layer.extra_properties_column:
            key = self.param(name, "text")
            return _Expr(f"({self.column(layer.extra_properties_column)} ->> {key})", "dynamic")
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
        elif isinstance(node, ast.TimeDuring):
            raise BadRequest("T_DURING needs an INTERVAL", code="invalid_filter")
        else:
            bounds = {"start": other, "end": other}
        conditions, negate = _temporal_conditions(node, isinstance(other, values.Interval))
        parts = []
        for op, which in conditions:
            if bounds[which] is None:
                if op in (">", "<") and len(conditions) == 1:
                    return "FALSE"
                continue
            t = self.scalar(instant, "datetime").sql
            parts.append(f"{t} {op} {self.scalar(bounds[which], 'datetime').sql}")
        sql = "(" + " AND ".join(parts) + ")" if parts else "TRUE"
        return f"(NOT {sql})" if negate else sql

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BadRequest(f"the filter has more than {MAX_NODES} terms", code="filter_too_large")


def _temporal_conditions(
    node: ast.TemporalPredicate, interval: bool
) -> tuple[list[tuple[str, str]], bool]:
    """The comparisons of an instant with a time's bounds that make up ``node``, and
    whether their conjunction is negated."""
    if isinstance(node, ast.TimeAfter):
        return [(">", "end")], False
    if isinstance(node, ast.TimeBefore):
        return [("<", "start")], False
    if isinstance(node, ast.TimeEquals) and not interval:
        return [("=", "start")], False
    if isinstance(node, ast.TimeDuring):
        return [(">", "start"), ("<", "end")], False
    if isinstance(node, TimeIntersects | ast.TimeOverlaps | ast.TimeDisjoint):
        inside = [(">=", "start"), ("<=", "end")]
        return inside, isinstance(node, ast.TimeDisjoint)
    name = "T_" + node.op.value
    raise BadRequest(
        f"{name} relates intervals; this layer's times are instants "
        "(use T_AFTER, T_BEFORE, T_DURING, T_EQUALS, T_INTERSECTS, T_DISJOINT)",
        code="unsupported_operator",
    )


def _mirror(node: ast.TemporalPredicate) -> ast.TemporalPredicate:
    """The same relation with its operands swapped (T_AFTER(x, t) ≡ T_BEFORE(t, x))."""
    swapped = {
        ast.TimeAfter: ast.TimeBefore,
        ast.TimeBefore: ast.TimeAfter,
        ast.TimeDuring: ast.TimeContains,
        ast.TimeContains: ast.TimeDuring,
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
            return _parse_instant(value)
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
