"""What a parsed CQL2 filter asks of the database, measured and bounded before it gets there:
the vertices of its geometry literals, how deeply its operators nest, and how many
conditions it has (see FilterSettings for the bounds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pygeofilter import ast, values

from gis.errors import BadRequest
from layers.features.cql.settings import FilterSettings, filter_settings

CONDITIONS = (
    ast.Comparison,
    ast.Like,
    ast.Between,
    ast.In,
    ast.IsNull,
    ast.SpatialComparisonPredicate,
    ast.Relate,
    ast.BBox,
    ast.TemporalPredicate,
)
"""The node kinds that count as one condition each."""
CHAINS = (ast.And, ast.Or)
"""Operators whose runs (``a AND b AND c``) count as one level of nesting."""
BBOX_VERTICES = 4


@dataclass(frozen=True)
class FilterCost:
    """The measures of a filter that its bounds apply to."""

    vertices: int
    depth: int
    predicates: int


def vertex_count(geometry: Any) -> int:
    """The positions in a GeoJSON geometry (a GeometryCollection's members included);
    parts that are not positions count nothing (the compiler refuses them)."""
    count = 0
    stack = [geometry]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.get("geometries") or [])
            stack.append(item.get("coordinates"))
        elif isinstance(item, list | tuple) and item:
            if all(isinstance(v, int | float) for v in item):
                count += 1
            else:
                stack.extend(item)
    return count


def filter_cost(node: ast.Node) -> FilterCost:
    """The vertices, nesting depth and conditions of a parsed filter (walked without
    recursion, so any depth is measured)."""
    vertices = depth = predicates = 0
    stack: list[tuple[Any, int, type | None]] = [(node, 0, None)]
    while stack:
        item, level, parent = stack.pop()
        if isinstance(item, values.Geometry):
            vertices += vertex_count(item.geometry)
        elif isinstance(item, values.Envelope):
            vertices += BBOX_VERTICES
        if not isinstance(item, ast.Node) or isinstance(item, ast.Attribute):
            continue
        if not (isinstance(item, CHAINS) and type(item) is parent):
            level += 1
        depth = max(depth, level)
        predicates += isinstance(item, CONDITIONS)
        stack.extend((sub, level, type(item)) for sub in item.get_sub_nodes())
    return FilterCost(vertices, depth, predicates)


def attribute_names(node: ast.Node) -> set[str]:
    """The property names a parsed filter reads (walked without recursion)."""
    names: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Attribute):
            names.add(item.name)
        elif isinstance(item, ast.Node):
            stack.extend(item.get_sub_nodes())
    return names


def check_cost(node: ast.Node, settings: FilterSettings | None = None) -> None:
    """BadRequest (400 ``filter_too_complex``) naming the first bound ``node`` passes."""
    settings = settings or filter_settings()
    cost = filter_cost(node)
    bounds = (
        ("vertices", cost.vertices, settings.max_vertices, "geometry vertices"),
        ("depth", cost.depth, settings.max_depth, "levels of nesting"),
        ("predicates", cost.predicates, settings.max_predicates, "conditions"),
    )
    for bound, value, limit, what in bounds:
        if value > limit:
            raise BadRequest(
                f"the filter has {value:,} {what}; at most {limit:,} are allowed",
                code="filter_too_complex",
                details={"bound": bound, "value": value, "limit": limit},
            )
