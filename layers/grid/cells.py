"""Reading the grid: cells filtered and paged, and one cell in full."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden, NotFound
from gis.hexgrid import to_hex
from layers.db.scope import EVERYONE, Visibility
from layers.grid.lookup import cell_refusal, person_json

MATCHING = """
FROM grid_cells g LEFT JOIN districts d ON d.id = g.district_id
WHERE (CAST(:district AS text) IS NULL OR d.code = :district)
  AND (CAST(:districts AS text[]) IS NULL OR d.code = ANY(CAST(:districts AS text[])))
  AND (CAST(:inspector AS integer) IS NULL OR g.inspector_id = :inspector)
  AND (NOT :unassigned OR g.inspector_id IS NULL)
  AND (CAST(:supervisor AS text) IS NULL OR g.supervisor = :supervisor)
  AND (CAST(:w AS float8) IS NULL OR g.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))
"""

LIST = text(
    "SELECT g.h3, g.res, d.code AS district, g.inspector_id, g.supervisor, g.area_m2, "
    f"count(*) OVER () AS total {MATCHING} ORDER BY g.h3 LIMIT :limit OFFSET :offset"
)

COUNT = text(f"SELECT count(*) {MATCHING}")

DETAIL = text("""
SELECT g.h3, g.res, g.area_m2, g.supervisor, g.properties, ST_AsGeoJSON(g.geom) AS geometry,
       d.code AS district_code, d.name AS district_name, u.id AS inspector_id,
       u.name AS inspector_name
FROM grid_cells g
LEFT JOIN districts d ON d.id = g.district_id
LEFT JOIN users u ON u.id = g.inspector_id
WHERE g.h3 = :cell
""")


CELL_SCOPE = text("""
SELECT d.code, g.inspector_id FROM grid_cells g LEFT JOIN districts d ON d.id = g.district_id
WHERE g.h3 = :cell
""")


async def check_cell_visible(conn: AsyncConnection, cell: int, visible: Visibility) -> None:
    """NotFound when the cell is not in the grid; Forbidden when it lies outside what a
    caller who sees ``visible`` may read (``cell_refusal``)."""
    row = (await conn.execute(CELL_SCOPE, {"cell": cell})).first()
    if row is None:
        raise NotFound(f"cell {to_hex(cell)} is not in the grid", code="cell_not_in_grid")
    refusal = cell_refusal(cell, row[0], row[1], visible)
    if refusal is not None:
        raise refusal


@dataclass(frozen=True)
class CellFilter:
    """Which cells to list: by district code, inspector, supervisor area, unassigned only,
    or touching a lon/lat bbox."""

    district: str | None = None
    inspector_id: int | None = None
    supervisor: str | None = None
    unassigned: bool = False
    bbox: tuple[float, float, float, float] | None = None
    districts: frozenset[str] | None = None
    """The districts the caller's scope limits it to (None: no limit)."""

    def within(self, visible: Visibility) -> CellFilter:
        """The filter kept to what a caller sees: the districts of its scope, and for an
        inspector key speaking for a user, that inspector's own cells (Forbidden when it
        asks for another inspector's)."""
        own = visible.inspector_id
        if own is not None and self.inspector_id not in (None, own):
            raise Forbidden(
                f"an inspector key lists its own cells only (inspector {own})",
                code="not_your_cell",
            )
        return replace(
            self,
            districts=visible.districts,
            inspector_id=own if own is not None else self.inspector_id,
        )

    def params(self) -> dict[str, Any]:
        """The list query's filter parameters."""
        w, s, e, n = self.bbox or (None, None, None, None)
        return {
            "district": self.district,
            "districts": None if self.districts is None else sorted(self.districts),
            "inspector": self.inspector_id,
            "supervisor": self.supervisor,
            "unassigned": self.unassigned,
            "w": w,
            "s": s,
            "e": e,
            "n": n,
        }


async def list_cells(
    conn: AsyncConnection, where: CellFilter, limit: int, offset: int
) -> dict[str, Any]:
    """One page of the matching cells in cell order, and how many match in all."""
    rows = (await conn.execute(LIST, {**where.params(), "limit": limit, "offset": offset})).all()
    total = rows[0].total if rows else (await conn.execute(COUNT, where.params())).scalar_one()
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "cells": [
            {
                "cell": to_hex(r.h3),
                "res": r.res,
                "district": r.district,
                "inspector_id": r.inspector_id,
                "supervisor": r.supervisor,
                "area_m2": r.area_m2,
            }
            for r in rows
        ],
    }


async def cell_feature(
    conn: AsyncConnection, cell: int, *, names: bool, visible: Visibility = EVERYONE
) -> dict[str, Any]:
    """The cell as a GeoJSON Feature with its district, inspector (named if ``names``, else
    by id), supervisor area, area and properties; NotFound when it is not in the grid,
    Forbidden when it lies outside what ``visible`` lets the caller read."""
    row = (await conn.execute(DETAIL, {"cell": cell})).first()
    if row is None:
        raise NotFound(f"cell {to_hex(cell)} is not in the grid", code="cell_not_in_grid")
    refusal = cell_refusal(cell, row.district_code, row.inspector_id, visible)
    if refusal is not None:
        raise refusal
    district = {"code": row.district_code, "name": row.district_name}
    return {
        "type": "Feature",
        "id": to_hex(row.h3),
        "geometry": orjson.loads(row.geometry),
        "properties": {
            "cell": to_hex(row.h3),
            "res": row.res,
            "area_m2": row.area_m2,
            "district": district if row.district_code else None,
            "inspector": person_json(row.inspector_id, row.inspector_name, names),
            "supervisor": row.supervisor,
            "properties": row.properties,
        },
    }
