"""The query parameters of a tile request: time window, categories, CQL2 filter, properties.

``from``, ``to`` and ``category`` apply to every layer of the tile that has a time column
(``from`` inclusive, ``to`` exclusive) or a category column (a full code, or a two-digit
major class); ``filter`` applies to every layer and must make sense for each;
``properties`` names the attributes to keep, each of which some layer of the tile must have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from gis.errors import BadRequest
from layers.catalog.registry import Layer
from layers.db.scope import EVERYONE, Visibility
from layers.features.cql.cost import attribute_names
from layers.features.cql.parse import parse_filter
from tiles.sources import Source, feature_attributes

CATEGORY = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_CATEGORIES = 100
FILTER_LANGS = ("cql2-text", "cql2-json")


@dataclass(frozen=True)
class TileFilters:
    """What narrows a tile's rows and attributes."""

    start: datetime | None = None
    end: datetime | None = None
    categories: tuple[str, ...] = ()
    cql: str | None = None
    cql_lang: str = "cql2-text"
    properties: tuple[str, ...] | None = None
    visible: Visibility = EVERYONE
    """Whose rows of a layer with a read scope (incidents) the caller reads; part of the
    cache key, never of tile URLs (it comes from the caller's key or token)."""

    def key(self) -> str:
        """A canonical text of the query's filters, for cache keys and tile URLs."""
        params: list[tuple[str, str]] = []
        if self.start:
            params.append(("from", self.start.isoformat()))
        if self.end:
            params.append(("to", self.end.isoformat()))
        if self.categories:
            params.append(("category", ",".join(self.categories)))
        if self.cql is not None:
            params += [("filter", self.cql), ("filter-lang", self.cql_lang)]
        if self.properties is not None:
            params.append(("properties", ",".join(self.properties)))
        return urlencode(params)

    def keeps(self, name: str) -> bool:
        """Whether attribute ``name`` is asked for."""
        return self.properties is None or name in self.properties


def by_count_column_only(layer: Layer, filters: TileFilters) -> bool:
    """Whether the rows of ``layer`` that ``filters`` keep depend on its ``count_by`` column
    alone (which the layer's stored counts carry): no time window, category or limited
    read scope, and no CQL filter that reads another property."""
    if not layer.count_by or filters.start or filters.end or filters.categories:
        return False
    if layer.visibility(filters.visible).limited:
        return False
    if filters.cql is None:
        return True
    return attribute_names(parse_filter(filters.cql, filters.cql_lang)) <= {layer.count_by}


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 instant (a date means its midnight UTC; no zone means UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name}={value!r} is not an ISO 8601 date or time (e.g. 2026-10-01T00:00:00Z)",
            code="invalid_parameter",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_list(value: str, name: str) -> tuple[str, ...]:
    """A comma list with no empty items."""
    items = tuple(v.strip() for v in value.split(","))
    if not all(items):
        raise BadRequest(f"{name}={value!r} has an empty item", code="invalid_parameter")
    return items


def parse_categories(value: str) -> tuple[str, ...]:
    """Category codes (a comma list)."""
    codes = parse_list(value, "category")
    bad = [c for c in codes if not CATEGORY.match(c)]
    if bad or len(codes) > MAX_CATEGORIES:
        raise BadRequest(
            f"category={value!r}: give up to {MAX_CATEGORIES} class codes separated by commas",
            code="invalid_parameter",
        )
    return tuple(sorted(set(codes)))


def parse_filters(
    sources: list[Source],
    start: str | None = None,
    end: str | None = None,
    category: str | None = None,
    cql: str | None = None,
    cql_lang: str | None = None,
    properties: str | None = None,
) -> TileFilters:
    """The checked filters of a request for ``sources``; BadRequest saying what is wrong."""
    lang = cql_lang or "cql2-text"
    if lang not in FILTER_LANGS:
        raise BadRequest(
            f"filter-lang={lang!r} is not supported; use one of {', '.join(FILTER_LANGS)}",
            code="invalid_parameter",
        )
    filters = TileFilters(
        start=parse_time(start, "from") if start else None,
        end=parse_time(end, "to") if end else None,
        categories=parse_categories(category) if category else (),
        cql=cql if cql is not None and cql.strip() else None,
        cql_lang=lang,
        properties=parse_list(properties, "properties") if properties else None,
    )
    if filters.start and filters.end and filters.start >= filters.end:
        raise BadRequest("'from' must be before 'to'", code="invalid_parameter")
    if filters.properties is not None:
        known = set().union(*(feature_attributes(s) for s in sources if not s.hex))
        unknown = [p for p in filters.properties if p not in known]
        if unknown:
            raise BadRequest(
                f"unknown properties {', '.join(unknown)}; these layers have: "
                f"{', '.join(sorted(known))}",
                code="invalid_parameter",
            )
    return filters
