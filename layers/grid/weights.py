"""What a cell weighs as workload: its area, its cell count, its assets, its incidents over a
period, or a numeric property of the cell (such as population).

Coverage reports and territory balancing read the same weights, so a dispatcher balances
exactly what the coverage report measures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gis.errors import BadRequest

KINDS = ("area", "cells", "assets", "incidents")
PROPERTY = re.compile(r"^property:([A-Za-z_][A-Za-z0-9_]{0,62})$")

CELL_WEIGHT_SQL = {
    "area": "SELECT h3, area_m2 AS w FROM grid_cells",
    "cells": "SELECT h3, 1.0::float8 AS w FROM grid_cells",
    "assets": (
        "SELECT h3_parent(a.h3, r.res) AS h3, count(*)::float8 AS w "
        "FROM assets a, (SELECT max(res)::int AS res FROM grid_cells) r "
        "WHERE a.h3 IS NOT NULL AND a.state <> 'removed' AND h3_resolution(a.h3) >= r.res "
        "GROUP BY 1"
    ),
    "incidents": (
        "SELECT h3_parent(i.h3, r.res) AS h3, count(*)::float8 AS w "
        "FROM incidents i, (SELECT max(res)::int AS res FROM grid_cells) r "
        "WHERE i.h3 IS NOT NULL AND h3_resolution(i.h3) >= r.res AND i.status <> 'cancelled' "
        "AND i.reported_at >= COALESCE(CAST(:since AS timestamptz), '-infinity') "
        "AND i.reported_at < COALESCE(CAST(:until AS timestamptz), 'infinity') "
        "GROUP BY 1"
    ),
    "property": (
        "SELECT h3, (properties->>CAST(:prop AS text))::float8 AS w FROM grid_cells "
        "WHERE jsonb_typeof(properties->CAST(:prop AS text)) = 'number'"
    ),
}


@dataclass(frozen=True)
class Weight:
    """A workload measure: ``kind`` (area, cells, assets, incidents, property), the property
    name for ``property``, and the period [since, until) for ``incidents`` (cancelled
    incidents do not count; assets count unless removed)."""

    kind: str
    prop: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def label(self) -> str:
        """How the measure is named to clients."""
        return f"property:{self.prop}" if self.kind == "property" else self.kind

    def sql(self) -> str:
        """A query of (h3, w) rows: the weight of every cell that weighs something."""
        return CELL_WEIGHT_SQL[self.kind]

    def params(self) -> dict[str, Any]:
        """The query's parameters."""
        return {"since": self.since, "until": self.until, "prop": self.prop}

    def as_json(self) -> dict[str, Any]:
        """The measure as a client sees it."""
        body: dict[str, Any] = {"weight": self.label}
        if self.kind == "incidents":
            body["from"] = self.since.isoformat() if self.since else None
            body["to"] = self.until.isoformat() if self.until else None
        return body


def _aware(moment: datetime | None) -> datetime | None:
    """A time without zone read as UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def parse_weight(text: str, since: datetime | None = None, until: datetime | None = None) -> Weight:
    """The measure named ``text`` ('area', 'cells', 'assets', 'incidents' or
    'property:NAME') over [since, until) (UTC when no zone is given); BadRequest naming the
    choices otherwise."""
    since, until = _aware(since), _aware(until)
    if since and until and since >= until:
        raise BadRequest("the period's start must come before its end", code="invalid_period")
    if text in KINDS:
        return Weight(text, since=since, until=until)
    match = PROPERTY.match(text)
    if match:
        return Weight("property", prop=match.group(1))
    raise BadRequest(
        f"unknown weight {text!r}: one of {', '.join(KINDS)} or property:NAME",
        code="invalid_weight",
    )
