"""The incident categories (事件分类): 4-digit code, names, time limit, department.

Seeded by migration 0002 with the standard classes of digital urban management; admins add,
change and remove them. A change applies to cases reported afterwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, Conflict, NotFound
from layers.incidents.cases import RowId, Text

SELECT = (
    "SELECT c.code, c.major, c.minor, c.major_name, c.name, c.name_en, c.time_limit_hours, "
    "c.department_id, d.code, d.name, d.name_en "
    "FROM incident_categories c JOIN departments d ON d.id = c.department_id"
)


@dataclass(frozen=True)
class CategoryRecord:
    """A category with its department."""

    code: str
    major: str
    minor: str
    major_name: str
    name: str
    name_en: str
    time_limit_hours: float
    department_id: int
    department_code: str
    department_name: str
    department_name_en: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)


def _record(row: Any) -> CategoryRecord:
    return CategoryRecord(*row[:6], float(row[6]), *row[7:])


class CategoryChange(BaseModel):
    """Fields of a category an admin may set (all optional for a change)."""

    model_config = {"extra": "forbid"}

    major_name: Text | None = Field(None, min_length=1, max_length=100)
    name: Text | None = Field(None, min_length=1, max_length=100)
    name_en: Text | None = Field(None, min_length=1, max_length=200)
    time_limit_hours: float | None = Field(None, ge=0.01, le=9999)
    department_id: RowId | None = None


class NewCategory(CategoryChange):
    """A new category: its code and every field."""

    code: str = Field(pattern=r"^[0-9]{4}$")
    major_name: Text = Field(min_length=1, max_length=100)
    name: Text = Field(min_length=1, max_length=100)
    name_en: Text = Field(min_length=1, max_length=200)
    time_limit_hours: float = Field(ge=0.01, le=9999)
    department_id: RowId


async def list_categories(conn: AsyncConnection) -> list[CategoryRecord]:
    """Every category, by code."""
    return [_record(r) for r in await conn.execute(text(f"{SELECT} ORDER BY c.code"))]


async def get_category_record(conn: AsyncConnection, code: str) -> CategoryRecord:
    """The category ``code``; NotFound otherwise."""
    row = (await conn.execute(text(f"{SELECT} WHERE c.code = :code"), {"code": code})).first()
    if row is None:
        raise NotFound(f"no incident category {code!r}", code="unknown_category")
    return _record(row)


async def _check_department(conn: AsyncConnection, department_id: int | None) -> None:
    if department_id is None:
        return
    found = await conn.execute(
        text("SELECT 1 FROM departments WHERE id = :id"), {"id": department_id}
    )
    if found.first() is None:
        raise BadRequest(f"no department {department_id}", code="unknown_department")


async def create_category(conn: AsyncConnection, new: NewCategory) -> CategoryRecord:
    """Add a category; Conflict when the code is taken."""
    await _check_department(conn, new.department_id)
    inserted = await conn.execute(
        text(
            "INSERT INTO incident_categories (code, major, minor, major_name, name, name_en, "
            "time_limit_hours, department_id) VALUES (:code, :major, :minor, :major_name, "
            ":name, :name_en, :hours, :department) ON CONFLICT (code) DO NOTHING RETURNING code"
        ),
        {
            "code": new.code,
            "major": new.code[:2],
            "minor": new.code[2:],
            "major_name": new.major_name,
            "name": new.name,
            "name_en": new.name_en,
            "hours": new.time_limit_hours,
            "department": new.department_id,
        },
    )
    if inserted.first() is None:
        raise Conflict(f"category {new.code} exists", code="category_exists")
    return await get_category_record(conn, new.code)


async def update_category(
    conn: AsyncConnection, code: str, change: CategoryChange
) -> CategoryRecord:
    """Change the given fields of category ``code``."""
    await get_category_record(conn, code)
    await _check_department(conn, change.department_id)
    fields = change.model_dump(exclude_none=True)
    if fields:
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        await conn.execute(
            text(f"UPDATE incident_categories SET {sets} WHERE code = :code"),
            {**fields, "code": code},
        )
    return await get_category_record(conn, code)


async def delete_category(conn: AsyncConnection, code: str) -> None:
    """Remove category ``code``; Conflict when cases use it."""
    await get_category_record(conn, code)
    try:
        async with conn.begin_nested():
            await conn.execute(
                text("DELETE FROM incident_categories WHERE code = :code"), {"code": code}
            )
    except IntegrityError:
        raise Conflict(
            f"category {code} has cases; change it instead of removing it", code="category_in_use"
        ) from None


async def department_names(conn: AsyncConnection) -> dict[int, str]:
    """Every department's name by id."""
    rows = await conn.execute(text("SELECT id, name FROM departments"))
    return {row[0]: row[1] for row in rows}
