"""Is every cell covered, and how evenly is the work spread over the inspectors?"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.hexgrid import to_hex
from layers.grid.weights import Weight

IN_DISTRICTS = (
    "(CAST(:districts AS text[]) IS NULL OR g.district_id IN "
    "(SELECT id FROM districts WHERE code = ANY(CAST(:districts AS text[]))))"
)
"""The cells of the caller's districts (all when ``:districts`` is NULL)."""

PER_INSPECTOR = f"""
WITH w AS ({{weights}})
SELECT g.inspector_id, u.name, count(*) AS cells, COALESCE(sum(w.w), 0)::float8 AS workload
FROM grid_cells g LEFT JOIN w ON w.h3 = g.h3 LEFT JOIN users u ON u.id = g.inspector_id
WHERE {IN_DISTRICTS}
GROUP BY g.inspector_id, u.name
ORDER BY g.inspector_id NULLS FIRST
"""

UNASSIGNED = text(
    f"SELECT h3 FROM grid_cells g WHERE inspector_id IS NULL AND {IN_DISTRICTS} "
    "ORDER BY h3 LIMIT :limit"
)


def balance(workloads: list[float]) -> float | None:
    """Largest workload over the mean workload (None without workload)."""
    if not workloads or sum(workloads) <= 0:
        return None
    return max(workloads) / (sum(workloads) / len(workloads))


async def coverage(
    conn: AsyncConnection,
    weight: Weight,
    listed: int = 1000,
    districts: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Total and unassigned cells (the first ``listed`` of them by cell), and each
    inspector's cells and workload under ``weight`` with the balance (max/mean) over the
    inspectors holding cells; over the cells of ``districts`` (codes) only, when given."""
    codes = None if districts is None else sorted(districts)
    rows = (
        await conn.execute(
            text(PER_INSPECTOR.format(weights=weight.sql())),
            {**weight.params(), "districts": codes},
        )
    ).all()
    inspectors = [r for r in rows if r.inspector_id is not None]
    free = next((r for r in rows if r.inspector_id is None), None)
    unassigned = (
        (await conn.execute(UNASSIGNED, {"limit": listed, "districts": codes})).scalars().all()
    )
    workloads = [r.workload for r in inspectors]
    return {
        **weight.as_json(),
        "total_cells": sum(r.cells for r in rows),
        "assigned_cells": sum(r.cells for r in inspectors),
        "unassigned_cells": free.cells if free else 0,
        "unassigned_workload": free.workload if free else 0.0,
        "unassigned": [to_hex(c) for c in unassigned],
        "unassigned_truncated": bool(free and free.cells > len(unassigned)),
        "inspectors": [
            {"id": r.inspector_id, "name": r.name, "cells": r.cells, "workload": r.workload}
            for r in inspectors
        ],
        "balance": balance(workloads),
    }
