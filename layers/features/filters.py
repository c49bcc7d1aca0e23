"""The conditions of an items query: bbox, datetime (instant or interval), CQL2 filter and
``property=value`` parameters, as one SQL condition with named parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from gis.crs import CRS, CRS84
from gis.errors import BadRequest
from layers.catalog.identifiers import column
from layers.catalog.registry import Layer
from layers.features.cql.compile import compile_filter
from layers.features.cql.parse import parse_filter
from layers.features.sql import Params, bbox_sql

DEFAULT_LIMIT = 1000
"""Features per page when a client gives no ``limit`` (GDAL 3.8+ pages by this, or more)."""


@dataclass(frozen=True)
class ItemQuery:
    """What a client asked of a layer's items (lon/lat bbox, already in CRS84)."""

    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    properties: list[str] | None = None
    filter: str | dict[str, Any] | None = None
    filter_lang: str = "cql2-text"
    filter_crs: CRS = CRS84
    equals: dict[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    crs: CRS = CRS84


def _bound(value: str) -> datetime | None:
    value = value.strip()
    if value in ("", ".."):
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"datetime: {value!r} is not an RFC 3339 date-time", code="invalid_datetime"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def datetime_sql(layer: Layer, value: str, params: Params) -> str:
    """The ``datetime`` parameter (instant, or interval ``a/b`` with ``..`` open) as SQL."""
    if not layer.time_column:
        raise BadRequest(
            f"layer {layer.id} has no time to filter by datetime", code="invalid_datetime"
        )
    col = column(layer, layer.time_column)
    if "/" not in value:
        instant = _bound(value)
        if instant is None:
            raise BadRequest("datetime: an instant cannot be '..'", code="invalid_datetime")
        if len(value.strip()) == 10:
            end = params.add(
                instant.replace(hour=23, minute=59, second=59, microsecond=999999), "timestamptz"
            )
            return f"({col} >= {params.add(instant, 'timestamptz')} AND {col} <= {end})"
        return f"({col} = {params.add(instant, 'timestamptz')})"
    start_text, _, end_text = value.partition("/")
    start, end = _bound(start_text), _bound(end_text)
    if start and end and start > end:
        raise BadRequest("datetime: the interval ends before it starts", code="invalid_datetime")
    parts = []
    if start:
        parts.append(f"{col} >= {params.add(start, 'timestamptz')}")
    if end:
        parts.append(f"{col} <= {params.add(end, 'timestamptz')}")
    return "(" + " AND ".join(parts) + ")" if parts else "TRUE"


def _equals_filter(layer: Layer, equals: dict[str, str]) -> dict[str, Any] | None:
    """Query parameters ``name=value`` on queryable properties as one cql2-json AND."""
    args = []
    for name, raw in equals.items():
        kind = layer.properties.get(name, "string")
        value: Any = raw
        try:
            if kind == "integer":
                value = int(raw)
            elif kind == "number":
                value = float(raw)
        except ValueError:
            raise BadRequest(f"{name}: {raw!r} is not {kind}", code="invalid_parameter") from None
        if kind == "boolean":
            value = raw.lower() == "true"
        if kind == "datetime":
            value = {"timestamp": raw}
        args.append({"op": "=", "args": [{"property": name}, value]})
    if not args:
        return None
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def where_sql(layer: Layer, query: ItemQuery, params: Params) -> str:
    """The WHERE condition of an items query (bbox, datetime, filter, property equality,
    and the caller's read scope)."""
    conditions = visible_conditions(layer, params)
    if query.bbox is not None:
        conditions.append(bbox_sql(layer, query.bbox, params))
    if query.datetime:
        conditions.append(datetime_sql(layer, query.datetime, params))
    for value, lang, crs in (
        (query.filter, query.filter_lang, query.filter_crs),
        (_equals_filter(layer, query.equals), "cql2-json", CRS84),
    ):
        if value is None or value == "":
            continue
        node = parse_filter(value, lang)
        sql, values = compile_filter(
            layer,
            node,
            style="sqlalchemy",
            alias="t",
            srid=crs.srid,
            first_param=len(params.values) + 1,
            flip_axes=crs.lat_first and not crs.is_crs84,
        )
        params.values.update(values)  # type: ignore[arg-type]
        conditions.append(sql)
    return " AND ".join(conditions) or "TRUE"


def visible_conditions(layer: Layer, params: Params) -> list[str]:
    """The conditions that keep to the rows this view of the layer shows its caller (its
    ``visible``, over the alias ``t``): none on a layer without a read scope."""
    if not layer.read_scope or not layer.visible.limited:
        return []
    return layer.visible.conditions(dict(layer.read_scope), "t", params.add)


def check_property_names(layer: Layer, names: list[str]) -> None:
    """400 naming a ``properties`` entry the layer cannot have."""
    if layer.extra_properties_column:
        return
    known = set(layer.properties) | {"h3"}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(
            f"properties: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            code="unknown_property",
        )
