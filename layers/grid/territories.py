"""Balanced territories for the inspectors: read the grid and its workload, split it with
gis.partition, and (when asked) write the plan as assignments with history."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, Forbidden, Unprocessable
from gis.hexgrid import to_hex
from gis.partition import Partition, partition
from layers.db.scope import UNLIMITED, Scope
from layers.grid.assignments import check_inspector, write_assignments
from layers.grid.build import GRID_LOCK
from layers.grid.weights import Weight

MAX_INSPECTORS = 10_000

GRID_INPUT = """
WITH w AS ({weights})
SELECT g.h3, COALESCE(g.inspector_id, -1) AS inspector_id, COALESCE(w.w, 0)::float8 AS w
FROM grid_cells g LEFT JOIN w ON w.h3 = g.h3
ORDER BY g.h3
"""

BUSIEST_INSPECTORS = text("""
SELECT u.id, u.name FROM users u
LEFT JOIN (SELECT inspector_id, count(*) AS n FROM grid_cells GROUP BY 1) c
    ON c.inspector_id = u.id
WHERE u.role = 'inspector' AND u.active
ORDER BY COALESCE(c.n, 0) DESC, u.id
LIMIT :n
""")

NEW_INSPECTORS = text(
    "INSERT INTO users (name, role) SELECT n, 'inspector' "
    "FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS t(n, i) ORDER BY i RETURNING id"
)


@dataclass(frozen=True)
class TerritoryRequest:
    """What to split: N inspectors (existing ones first, new ones made on apply) or the
    named inspector ids; the weight; whether to keep current assignments where possible;
    whether to write the plan; the balance to reach (max/mean)."""

    inspectors: int | list[int]
    weight: Weight
    keep_current: bool = False
    apply: bool = False
    tolerance: float = 1.10
    include_cells: bool = False


@dataclass
class Inspector:
    """A territory's inspector: an existing user, or one to be made when the plan is
    applied (``id`` None)."""

    id: int | None
    name: str


async def chosen_inspectors(conn: AsyncConnection, spec: int | list[int]) -> list[Inspector]:
    """The territories' inspectors: the listed ids (each an active inspector), or N of them —
    those holding most cells first, then new ones to make."""
    if isinstance(spec, int):
        if not 1 <= spec <= MAX_INSPECTORS:
            raise BadRequest(f"inspectors must be 1..{MAX_INSPECTORS}", code="invalid_inspectors")
        rows = (await conn.execute(BUSIEST_INSPECTORS, {"n": spec})).all()
        found = [Inspector(r.id, r.name) for r in rows]
        return found + [Inspector(None, f"new inspector {k + 1}") for k in range(spec - len(found))]
    if not spec or len(set(spec)) != len(spec):
        raise BadRequest(
            "the inspector ids must be a non-empty list without repeats", code="invalid_inspectors"
        )
    for inspector_id in spec:
        await check_inspector(conn, inspector_id)
    rows = await conn.execute(
        text("SELECT id, name FROM users WHERE id = ANY(:ids)"), {"ids": list(spec)}
    )
    names = dict(rows.all())
    return [Inspector(i, names[i]) for i in spec]


async def grid_input(
    conn: AsyncConnection, weight: Weight
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every grid cell in cell order, its weight and its inspector id (-1 for none)."""
    rows = (
        await conn.execute(text(GRID_INPUT.format(weights=weight.sql())), weight.params())
    ).all()
    if not rows:
        raise Unprocessable("the grid is empty: build it first", code="empty_grid")
    cells, inspectors, weights = zip(*rows, strict=True)
    return (
        np.array(cells, dtype=np.int64),
        np.array(weights, dtype=float),
        np.array(inspectors, dtype=np.int64),
    )


def current_labels(holders: np.ndarray, inspectors: list[Inspector]) -> np.ndarray:
    """Each cell's territory under the present assignment: the index of its inspector in
    ``inspectors``, -1 when its inspector is not one of them."""
    index = {p.id: k for k, p in enumerate(inspectors) if p.id is not None}
    return np.array([index.get(h, -1) for h in holders.tolist()], dtype=np.int64)


def plan_json(
    request: TerritoryRequest,
    inspectors: list[Inspector],
    cells: np.ndarray,
    result: Partition,
    seconds: float,
) -> dict[str, Any]:
    """The plan as a client sees it: balance, connectivity, moves and each territory."""
    counts = np.bincount(result.labels, minlength=len(inspectors))
    territories = []
    for k, person in enumerate(inspectors):
        item: dict[str, Any] = {
            "inspector": {"id": person.id, "name": person.name, "new": person.id is None},
            "cells": int(counts[k]),
            "workload": float(result.part_weights[k]),
        }
        if request.include_cells:
            item["cell_list"] = [to_hex(c) for c in cells[result.labels == k].tolist()]
        territories.append(item)
    return {
        **request.weight.as_json(),
        "inspectors": len(inspectors),
        "keep_current": request.keep_current,
        "applied": False,
        "tolerance": request.tolerance,
        "balance": result.balance,
        "balanced": result.balance <= request.tolerance,
        "connected": result.connected,
        "moved": result.moved,
        "seconds": round(seconds, 3),
        "territories": territories,
    }


async def plan_territories(
    conn: AsyncConnection, request: TerritoryRequest, actor: str, scope: Scope = UNLIMITED
) -> dict[str, Any]:
    """Split the grid into balanced connected territories; with ``request.apply`` write the
    plan (new inspectors made, each change in the history) in ``conn``'s transaction.
    Forbidden for a caller limited to districts: the plan covers the whole grid."""
    if scope.districts is not None:
        raise Forbidden(
            "a territory plan covers the whole grid; a caller limited to districts cannot make one",
            code="out_of_scope",
        )
    if not 1.0 < request.tolerance <= 10:
        raise BadRequest(
            "tolerance (max/mean) must be above 1 and at most 10", code="invalid_tolerance"
        )
    if request.apply:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": GRID_LOCK})
    inspectors = await chosen_inspectors(conn, request.inspectors)
    cells, weights, holders = await grid_input(conn, request.weight)
    started = time.perf_counter()
    result = await asyncio.to_thread(
        partition,
        cells,
        weights,
        len(inspectors),
        current_labels(holders, inspectors),
        request.keep_current,
        request.tolerance,
    )
    plan = plan_json(request, inspectors, cells, result, time.perf_counter() - started)
    if request.apply:
        plan["changed"] = await apply_plan(conn, inspectors, cells, result, actor)
        plan["applied"] = True
        for item, person in zip(plan["territories"], inspectors, strict=True):
            item["inspector"]["id"] = person.id
    return plan


async def apply_plan(
    conn: AsyncConnection,
    inspectors: list[Inspector],
    cells: np.ndarray,
    result: Partition,
    actor: str,
) -> int:
    """Make the missing inspectors and give every cell its territory's inspector; the
    number of cells whose inspector changed."""
    if not result.connected:
        raise Unprocessable(
            "the plan has a territory in pieces; it was not applied", code="disconnected_plan"
        )
    missing = [p for p in inspectors if p.id is None]
    if missing:
        made = await conn.execute(NEW_INSPECTORS, {"names": [p.name for p in missing]})
        for person, (new_id,) in zip(missing, made.all(), strict=True):
            person.id = new_id
    ids = [inspectors[k].id for k in result.labels.tolist()]
    changed = await write_assignments(
        conn, cells.tolist(), ids, None, actor, "balanced territories"
    )
    return len(changed)
