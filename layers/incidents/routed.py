"""Where a new case was routed, named the way ``/grid/lookup`` names it: the district by code
and name, the inspector by id (and name for the roles that read staff names), the
department by id, code and name.

Who may see whom follows the grid lookup: callers who may read cases (those ``/grid/lookup``
answers) get the inspector as the lookup gives it to them; others (anonymous reporters) get
the district and the department, which are public (the districts layer, the categories), and
neither the inspector nor their id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from layers.grid.lookup import person_json
from layers.incidents.cases import Incident

NAMES = text(
    "SELECT d.code AS district_code, d.name AS district_name, u.name AS inspector_name, "
    "dep.code AS department_code, dep.name AS department_name "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN districts d ON d.id = :district "
    "LEFT JOIN users u ON u.id = :inspector "
    "LEFT JOIN departments dep ON dep.id = :department"
)


async def routed_to(
    conn: AsyncConnection, incident: Incident, *, staff: bool, names: bool
) -> dict[str, Any]:
    """``district``, ``department`` and, when ``staff`` (the caller may read cases),
    ``inspector`` of ``incident`` (named if ``names``), each None when the case has none."""
    row = (
        await conn.execute(
            NAMES,
            {
                "district": incident.district_id,
                "inspector": incident.inspector_id,
                "department": incident.department_id,
            },
        )
    ).one()
    answer: dict[str, Any] = {
        "district": (
            {"code": row.district_code, "name": row.district_name}
            if row.district_code is not None
            else None
        ),
        "department": (
            {"id": incident.department_id, "code": row.department_code, "name": row.department_name}
            if incident.department_id is not None
            else None
        ),
    }
    if staff:
        answer["inspector"] = person_json(incident.inspector_id, row.inspector_name, names)
    return answer
