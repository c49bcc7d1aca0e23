"""Who answers for each cell: its inspector and supervisor area, changed one cell at a time,
by a list of cells or by a polygon, with every change in ``grid_assignments``.

A supervisor area is a district (its 6-digit code) or a coarser H3 cell holding the cell
(its hex string). Every change announces the changed cells on the 'grid' layer so grid
tiles refresh.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h3
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden, NotFound, Unprocessable
from gis.hexgrid import parse_cell, to_hex
from layers.catalog.changes import publish_change
from layers.db.scope import UNLIMITED, Scope

DISTRICT_CODE = re.compile(r"^[0-9]{6}$")
MAX_LISTED = 20

WRITE = text("""
WITH target AS (
    SELECT * FROM unnest(CAST(:cells AS bigint[]), CAST(:inspectors AS integer[]),
                         CAST(:supervisors AS text[])) AS t(h3, inspector_id, supervisor)
), old AS (
    SELECT g.h3, g.inspector_id, g.supervisor
    FROM grid_cells g JOIN target t ON t.h3 = g.h3
    ORDER BY g.h3 FOR UPDATE OF g
), changed AS (
    UPDATE grid_cells g SET
        inspector_id = CASE WHEN :set_inspector THEN t.inspector_id ELSE g.inspector_id END,
        supervisor = CASE WHEN :set_supervisor THEN t.supervisor ELSE g.supervisor END
    FROM target t JOIN old o ON o.h3 = t.h3
    WHERE g.h3 = t.h3
      AND ((:set_inspector AND g.inspector_id IS DISTINCT FROM t.inspector_id)
           OR (:set_supervisor AND g.supervisor IS DISTINCT FROM t.supervisor))
    RETURNING g.h3, o.inspector_id AS from_i, g.inspector_id AS to_i,
              o.supervisor AS from_s, g.supervisor AS to_s, g.geom
), history AS (
    INSERT INTO grid_assignments
        (h3, from_inspector_id, to_inspector_id, from_supervisor, to_supervisor, actor, note)
    SELECT h3, from_i, to_i, from_s, to_s, :actor, :note FROM changed
)
SELECT h3, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM changed
""")

MISSING = text(
    "SELECT c FROM unnest(CAST(:cells AS bigint[])) AS c "
    "WHERE NOT EXISTS (SELECT 1 FROM grid_cells g WHERE g.h3 = c)"
)

IN_POLYGON = text(
    "SELECT h3 FROM grid_cells WHERE ST_Intersects(geom, ST_GeomFromWKB(:wkb, 4326)) "
    "AND ST_Intersects(ST_GeomFromWKB(:wkb, 4326), ST_Centroid(geom)) ORDER BY h3"
)

CURRENT = text(
    "SELECT g.inspector_id, u.name, g.supervisor FROM grid_cells g "
    "LEFT JOIN users u ON u.id = g.inspector_id WHERE g.h3 = :cell"
)

HISTORY = text(
    "SELECT id, from_inspector_id, to_inspector_id, from_supervisor, to_supervisor, actor, at, "
    "note FROM grid_assignments WHERE h3 = :cell ORDER BY at DESC, id DESC LIMIT :limit"
)


@dataclass(frozen=True)
class Change:
    """What to set on cells: an inspector (None frees them), a supervisor area, or both."""

    set_inspector: bool = False
    inspector_id: int | None = None
    set_supervisor: bool = False
    supervisor: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class AssignmentResult:
    """The cells a change touched and how many already had the asked-for values."""

    changed: list[int]
    unchanged: int

    def as_json(self) -> dict[str, Any]:
        """The result as a client sees it."""
        return {
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "cells": [to_hex(c) for c in self.changed],
        }


def _listed(cells: Sequence[int]) -> str:
    shown = ", ".join(to_hex(c) for c in cells[:MAX_LISTED])
    return shown + (f" and {len(cells) - MAX_LISTED} more" if len(cells) > MAX_LISTED else "")


async def check_inspector(conn: AsyncConnection, inspector_id: int) -> None:
    """Unprocessable unless ``inspector_id`` is an active user with the inspector role."""
    row = (
        await conn.execute(
            text("SELECT role, active FROM users WHERE id = :id"), {"id": inspector_id}
        )
    ).first()
    if row is None:
        raise Unprocessable(f"there is no user {inspector_id}", code="unknown_inspector")
    if row.role != "inspector" or not row.active:
        state = "inactive" if not row.active else f"a {row.role}"
        raise Unprocessable(
            f"user {inspector_id} is {state}, not an active inspector", code="not_an_inspector"
        )


async def check_supervisor(conn: AsyncConnection, area: str, cells: Sequence[int]) -> str:
    """The stored form of supervisor area ``area`` for ``cells``: a known district code, or
    the hex string of a cell that holds every one of them."""
    area = area.strip()
    if DISTRICT_CODE.match(area):
        found = await conn.execute(
            text("SELECT 1 FROM districts WHERE code = :code"), {"code": area}
        )
        if found.first() is None:
            raise Unprocessable(f"there is no district {area}", code="unknown_district")
        return area
    parent = parse_cell(area)
    res = h3.get_resolution(to_hex(parent))
    outside = [
        c
        for c in cells
        if h3.get_resolution(to_hex(c)) <= res
        or h3.str_to_int(h3.cell_to_parent(to_hex(c), res)) != parent
    ]
    if outside:
        raise Unprocessable(
            f"supervisor area {to_hex(parent)} does not hold the cells {_listed(outside)}",
            code="supervisor_area_mismatch",
        )
    return to_hex(parent)


async def check_cells(conn: AsyncConnection, cells: Sequence[int]) -> None:
    """Unprocessable naming the cells that are not in the grid, if any."""
    rows = await conn.execute(MISSING, {"cells": list(cells)})
    missing = [r[0] for r in rows]
    if missing:
        raise Unprocessable(f"not in the grid: {_listed(missing)}", code="cell_not_in_grid")


OUTSIDE_DISTRICTS = text(
    "SELECT g.h3 FROM grid_cells g WHERE g.h3 = ANY(CAST(:cells AS bigint[])) AND NOT coalesce("
    "g.district_id IN (SELECT id FROM districts WHERE code = ANY(:codes)), false) ORDER BY g.h3"
)


async def check_districts(conn: AsyncConnection, cells: Sequence[int], scope: Scope) -> None:
    """Forbidden naming the cells outside the scope's districts (a caller limited to
    districts assigns only their cells)."""
    if scope.districts is None:
        return
    codes = sorted(scope.districts)
    rows = await conn.execute(OUTSIDE_DISTRICTS, {"cells": list(cells), "codes": codes})
    outside = [r[0] for r in rows]
    if outside:
        raise Forbidden(
            f"{_listed(outside)} lie outside your districts ({', '.join(codes) or 'none'})",
            code="out_of_scope",
        )


async def cells_in_polygon(conn: AsyncConnection, area: BaseGeometry) -> list[int]:
    """The grid cells whose centre lies in the lon/lat polygon ``area``."""
    rows = await conn.execute(IN_POLYGON, {"wkb": shapely.to_wkb(area)})
    return [r[0] for r in rows]


async def write_assignments(
    conn: AsyncConnection,
    cells: Sequence[int],
    inspectors: Sequence[int | None] | None,
    supervisors: Sequence[str | None] | None,
    actor: str,
    note: str | None,
) -> list[int]:
    """Set each cell's inspector and/or supervisor area (None leaves that column alone),
    record every actual change in the history and announce it; the changed cells."""
    n = len(cells)
    rows = await conn.execute(
        WRITE,
        {
            "cells": list(cells),
            "inspectors": list(inspectors) if inspectors is not None else [None] * n,
            "supervisors": list(supervisors) if supervisors is not None else [None] * n,
            "set_inspector": inspectors is not None,
            "set_supervisor": supervisors is not None,
            "actor": actor,
            "note": note,
        },
    )
    changed = rows.all()
    if changed:
        await publish_change(conn, "grid", [tuple(r[1:]) for r in changed])
    return sorted(r[0] for r in changed)


async def assign(
    conn: AsyncConnection,
    cells: Sequence[int],
    change: Change,
    actor: str,
    scope: Scope = UNLIMITED,
) -> AssignmentResult:
    """Give ``cells`` the inspector and/or supervisor area of ``change``, after checking that
    every cell is in the grid and in the scope's districts, the inspector is an active
    inspector and the area holds the cells."""
    cells = sorted(set(cells))
    if not cells:
        raise Unprocessable("no cell to assign", code="no_cells")
    if not (change.set_inspector or change.set_supervisor):
        raise Unprocessable(
            "say what to assign: inspector_id, supervisor or both", code="nothing_to_assign"
        )
    await check_cells(conn, cells)
    await check_districts(conn, cells, scope)
    if change.set_inspector and change.inspector_id is not None:
        await check_inspector(conn, change.inspector_id)
    supervisor = change.supervisor
    if change.set_supervisor and supervisor is not None:
        supervisor = await check_supervisor(conn, supervisor, cells)
    changed = await write_assignments(
        conn,
        cells,
        [change.inspector_id] * len(cells) if change.set_inspector else None,
        [supervisor] * len(cells) if change.set_supervisor else None,
        actor,
        change.note,
    )
    return AssignmentResult(changed, len(cells) - len(changed))


async def assignment_of(conn: AsyncConnection, cell: int, limit: int = 100) -> dict[str, Any]:
    """A cell's inspector and supervisor area and its latest ``limit`` changes, newest
    first; NotFound when the cell is not in the grid."""
    row = (await conn.execute(CURRENT, {"cell": cell})).first()
    if row is None:
        raise NotFound(f"cell {to_hex(cell)} is not in the grid", code="cell_not_in_grid")
    history = await conn.execute(HISTORY, {"cell": cell, "limit": limit})
    return {
        "cell": to_hex(cell),
        "inspector": {"id": row[0], "name": row[1]} if row[0] is not None else None,
        "supervisor": row[2],
        "history": [
            {
                "id": h.id,
                "from": {"inspector_id": h.from_inspector_id, "supervisor": h.from_supervisor},
                "to": {"inspector_id": h.to_inspector_id, "supervisor": h.to_supervisor},
                "actor": h.actor,
                "at": h.at.isoformat(),
                "note": h.note,
            }
            for h in history
        ],
    }
