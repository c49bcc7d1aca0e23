"""CQL2 filters parsed into pygeofilter AST nodes: cql2-text with a grammar that follows
the OGC CQL2 standard (function-style ``T_AFTER(a, b)``, ``S_INTERSECTS(a, b)``, ``DATE()``,
``TIMESTAMP()``, ``INTERVAL()`` with ``'..'``, WKT and ``BBOX`` literals, ``CASEI``), and
cql2-json. Every malformed filter raises :class:`gis.errors.BadRequest` naming the problem
(with the column for text).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

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
from layers.features.cql.cost import check_cost

LANGS: tuple[str, ...] = ("cql2-text", "cql2-json")
MAX_FILTER_CHARS = 20_000


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


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or timestamp as an aware datetime (UTC when no offset is given)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            f"{text!r} is not an ISO 8601 date or timestamp", code="invalid_filter"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _interval_bound(text: str) -> datetime | None:
    return None if text.strip() in ("..", "") else parse_instant(text)


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
        return parse_instant(_unquote(str(token), "'"))

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
        return parse_instant(str(value["timestamp"]))
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
    """The AST of a filter in ``lang`` (cql2-text or cql2-json); BadRequest when malformed
    or past a bound of its cost (layers.features.cql.cost)."""
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
            node = parse_json(value)
        elif isinstance(value, str):
            node = parse_text(value)
        else:
            raise BadRequest("a cql2-text filter must be a string", code="invalid_filter")
    except RecursionError:
        raise BadRequest("the filter is nested too deeply", code="filter_too_large") from None
    check_cost(node)
    return node
