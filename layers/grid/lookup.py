"""Which cell a point is in and who answers for it: the mobile app's hottest call.

The point's cell is computed at every H3 resolution in Python; one query over the raw
asyncpg connection finds the stored one by primary key and joins its district, inspector,
supervisor and the category's department, so nothing is cached and nothing can be stale.
People are named only to the roles that work with them (``NAMES_READ_BY``); others get
their ids.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import asyncpg
import h3
from h3.api import basic_int as h3i

from gis.errors import BadRequest, Forbidden, NotFound
from gis.hexgrid import to_hex
from layers.db.engine import create_pool
from layers.db.outage import outage
from layers.db.scope import EVERYONE, Visibility
from layers.db.settings import storage_settings

log = logging.getLogger("cityhex")
CATEGORY_LENGTH = 4
NAMES_READ_BY = frozenset({"inspector", "editor", "dispatcher", "admin"})
"""The roles that read the names of a cell's inspector and supervisor (an app key, a program
rather than a colleague, gets their ids)."""

LOOKUP = """
WITH g AS (
    SELECT h3, res, district_id, inspector_id, supervisor FROM grid_cells
    WHERE h3 = ANY($1::bigint[]) ORDER BY res DESC LIMIT 1
)
SELECT g.h3, g.res, d.code AS district_code, d.name AS district_name,
       u.id AS inspector_id, u.name AS inspector_name, g.supervisor,
       sd.name AS area_name, sv.id AS supervisor_id, sv.name AS supervisor_name,
       dep.id AS department_id, dep.code AS department_code, dep.name AS department_name
FROM g
LEFT JOIN districts d ON d.id = g.district_id
LEFT JOIN users u ON u.id = g.inspector_id
LEFT JOIN districts sd ON sd.code = g.supervisor
LEFT JOIN LATERAL (
    SELECT s.id, s.name FROM users s
    WHERE s.district_id = sd.id AND s.role = 'supervisor' AND s.active
    ORDER BY s.id LIMIT 1
) sv ON true
LEFT JOIN incident_categories c ON c.code = $2
LEFT JOIN category_departments cd ON cd.category_code = c.code AND cd.district_id = g.district_id
LEFT JOIN departments dep ON dep.id = COALESCE(cd.department_id, c.department_id)
"""

CATEGORY_EXISTS = "SELECT 1 FROM incident_categories WHERE code = $1"
POOL_SIZE = 4


async def _keep_session(_: asyncpg.Connection) -> None:
    """Lookups leave no session state behind: a returned connection needs no reset."""


async def open_lookup_pool(url: str, size: int = POOL_SIZE) -> asyncpg.Pool:
    """A small asyncpg pool for lookups: one round trip per lookup, no check before use, no
    reset. A lookup is one indexed read, so one that gets no answer within the connect
    timeout finds the database unavailable."""
    return await create_pool(
        url,
        checked=False,
        min_size=0,
        max_size=size,
        reset=_keep_session,
        command_timeout=storage_settings().connect_timeout_s,
        server_settings={"application_name": "cityhex-grid-lookup", "jit": "off"},
    )


def checked_point(lon: float, lat: float) -> tuple[float, float]:
    """``(lon, lat)`` when both are finite and in range; BadRequest otherwise."""
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise BadRequest(f"lon {lon} is not a longitude (-180..180)", code="invalid_lon")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise BadRequest(f"lat {lat} is not a latitude (-90..90)", code="invalid_lat")
    return lon, lat


def point_cells(lon: float, lat: float) -> list[int]:
    """The point's cell at every resolution (computed at each: a coarser cell is not always
    the parent of the finer one)."""
    to_cell = h3i.latlng_to_cell
    return [to_cell(lat, lon, res) for res in range(16)]


def may_read_names(role: str) -> bool:
    """Whether ``role`` reads the names of the people who answer for a cell."""
    return role in NAMES_READ_BY


def person_json(person: int | None, name: str | None, names: bool) -> dict[str, Any] | None:
    """A member of staff as a client sees them: their id, and their name if ``names``."""
    if person is None:
        return None
    return {"id": person, "name": name} if names else {"id": person}


def cell_refusal(
    cell: int, district: str | None, inspector_id: int | None, visible: Visibility
) -> Forbidden | None:
    """Why a caller who sees ``visible`` may not read the cell of district code
    ``district`` held by ``inspector_id`` (None when it may): a cell outside its districts
    (``out_of_scope``), another inspector's cell for an inspector key (``not_your_cell``).
    Departments do not narrow cells (the catalog's grid ``read_scope_ignores``)."""
    if visible.districts is not None and district not in visible.districts:
        codes = ", ".join(sorted(visible.districts)) or "none"
        return Forbidden(
            f"cell {to_hex(cell)} lies outside your districts ({codes})", code="out_of_scope"
        )
    own = visible.inspector_id
    if own is not None and inspector_id != own:
        return Forbidden(
            f"cell {to_hex(cell)} is not a cell of inspector {own}", code="not_your_cell"
        )
    return None


def supervisor_json(row: asyncpg.Record, names: bool) -> dict[str, Any] | None:
    """A cell's supervisor area as a client sees it: its kind, and the district's supervisor
    (named if ``names``) when the area is a district."""
    area = row["supervisor"]
    if area is None:
        return None
    if row["area_name"] is not None:
        return {
            "area": area,
            "kind": "district",
            "name": row["area_name"],
            "supervisor": person_json(row["supervisor_id"], row["supervisor_name"], names),
        }
    return {"area": area, "kind": "cell", "res": h3.get_resolution(area)}


async def lookup(
    conn: asyncpg.Connection | asyncpg.Pool,
    lon: float,
    lat: float,
    category: str | None = None,
    *,
    names: bool,
    visible: Visibility = EVERYONE,
) -> dict[str, Any]:
    """The grid cell at (lon, lat) with its district, inspector, supervisor area (the people
    named if ``names``, else by id) and, for a category, the department that handles it
    there. A cell outside what ``visible`` lets the caller read (another district's, another
    inspector's) is answered as the public grid shows it: cell, district and department,
    no inspector or supervisor, and ``outside_scope: true``. BadRequest for a bad point or an
    unknown category; NotFound when the point is outside the grid; ServiceUnavailable while
    the database cannot be reached."""
    lon, lat = checked_point(lon, lat)
    try:
        row = await conn.fetchrow(LOOKUP, point_cells(lon, lat), category)
        unknown = category is not None and (row is None or row["department_id"] is None)
        if unknown and len(category) == CATEGORY_LENGTH:
            unknown = not await conn.fetchval(CATEGORY_EXISTS, category)
    except Exception as exc:
        failure = outage(exc)
        if failure is None:
            raise
        log.warning("grid lookup: %s: %s", failure.code, exc)
        raise failure from exc
    if unknown:
        raise BadRequest(f"unknown incident category {category!r}", code="unknown_category")
    if row is None:
        raise NotFound(
            f"the point ({lon}, {lat}) is outside the grid: no grid cell covers it",
            code="outside_grid",
        )
    district = row["district_code"]
    answer: dict[str, Any] = {
        "cell": h3i.int_to_str(row["h3"]),
        "res": row["res"],
        "district": {"code": district, "name": row["district_name"]} if district else None,
        "inspector": person_json(row["inspector_id"], row["inspector_name"], names),
        "supervisor": supervisor_json(row, names),
    }
    if visible.limited and cell_refusal(row["h3"], district, row["inspector_id"], visible):
        answer |= {"inspector": None, "supervisor": None, "outside_scope": True}
    if category is not None:
        answer["category"] = category
        answer["department"] = {
            "id": row["department_id"],
            "code": row["department_code"],
            "name": row["department_name"],
        }
    return answer
