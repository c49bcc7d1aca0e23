"""Which department handles each incident category: the category's own department, unless
a district has its own for that category (``category_departments``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden, NotFound, Unprocessable
from layers.db.scope import UNLIMITED, Scope

DEPARTMENT_FOR = text("""
SELECT dep.id, dep.code, dep.name, cd.department_id IS NOT NULL AS by_district
FROM incident_categories c
LEFT JOIN category_departments cd ON cd.category_code = c.code AND cd.district_id = :district
JOIN departments dep ON dep.id = COALESCE(cd.department_id, c.department_id)
WHERE c.code = :category
""")

OVERRIDES = text("""
SELECT cd.category_code, c.name AS category_name, d.code AS district, d.name AS district_name,
       dep.id, dep.code, dep.name, cd.updated_at, cd.updated_by
FROM category_departments cd
JOIN incident_categories c ON c.code = cd.category_code
JOIN districts d ON d.id = cd.district_id
JOIN departments dep ON dep.id = cd.department_id
ORDER BY cd.category_code, d.code
""")

UPSERT = text("""
INSERT INTO category_departments (category_code, district_id, department_id, updated_by)
VALUES (:category, :district, :department, :actor)
ON CONFLICT (category_code, district_id) DO UPDATE
SET department_id = EXCLUDED.department_id, updated_at = now(), updated_by = EXCLUDED.updated_by
""")


async def department_for(
    conn: AsyncConnection, category: str, district_id: int | None
) -> dict[str, Any]:
    """The department handling ``category`` in the district; Unprocessable for an unknown
    category."""
    row = (
        await conn.execute(DEPARTMENT_FOR, {"category": category, "district": district_id})
    ).first()
    if row is None:
        raise Unprocessable(f"unknown incident category {category!r}", code="unknown_category")
    return {"id": row.id, "code": row.code, "name": row.name, "by_district": row.by_district}


async def list_overrides(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every per-district department of a category."""
    rows = await conn.execute(OVERRIDES)
    return [
        {
            "category": r.category_code,
            "category_name": r.category_name,
            "district": {"code": r.district, "name": r.district_name},
            "department": {"id": r.id, "code": r.code, "name": r.name},
            "updated_at": r.updated_at.isoformat(),
            "updated_by": r.updated_by,
        }
        for r in rows
    ]


async def _ids(
    conn: AsyncConnection, category: str, district: str, department: str | None = None
) -> tuple[int, int | None]:
    """The district's and department's ids, after checking the category exists."""
    found = await conn.execute(
        text(
            "SELECT (SELECT 1 FROM incident_categories WHERE code = :c), "
            "(SELECT id FROM districts WHERE code = :d), "
            "(SELECT id FROM departments WHERE code = :dep)"
        ),
        {"c": category, "d": district, "dep": department},
    )
    has_category, district_id, department_id = found.one()
    if has_category is None:
        raise NotFound(f"unknown incident category {category!r}", code="unknown_category")
    if district_id is None:
        raise NotFound(f"there is no district {district!r}", code="unknown_district")
    if department is not None and department_id is None:
        raise Unprocessable(f"there is no department {department!r}", code="unknown_department")
    return district_id, department_id


def check_district(district: str, scope: Scope) -> None:
    """Forbidden when ``district`` (its code) lies outside ``scope``."""
    if not scope.allows_district(district):
        yours = ", ".join(sorted(scope.districts or ())) or "none"
        raise Forbidden(
            f"district {district} is not one of your districts ({yours})", code="out_of_scope"
        )


async def set_override(
    conn: AsyncConnection,
    category: str,
    district: str,
    department: str,
    actor: str,
    scope: Scope = UNLIMITED,
) -> dict[str, Any]:
    """Make department ``department`` (its code) handle ``category`` in ``district`` (its
    code); the department now in charge there. Forbidden outside ``scope``'s districts."""
    check_district(district, scope)
    district_id, department_id = await _ids(conn, category, district, department)
    await conn.execute(
        UPSERT,
        {
            "category": category,
            "district": district_id,
            "department": department_id,
            "actor": actor,
        },
    )
    return await department_for(conn, category, district_id)


async def clear_override(
    conn: AsyncConnection, category: str, district: str, scope: Scope = UNLIMITED
) -> None:
    """Let ``category`` go back to its own department in ``district``; NotFound when the
    district had no department of its own for it, Forbidden outside ``scope``'s districts."""
    check_district(district, scope)
    district_id, _ = await _ids(conn, category, district)
    gone = await conn.execute(
        text("DELETE FROM category_departments WHERE category_code = :c AND district_id = :d"),
        {"c": category, "d": district_id},
    )
    if gone.rowcount == 0:
        raise NotFound(
            f"district {district} has no department of its own for category {category}",
            code="no_override",
        )
