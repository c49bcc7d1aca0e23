"""Incident categories and the working-day calendar over HTTP (admins edit, anyone reads)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from layers.incidents.cases import Text
from layers.incidents.categories import (
    CategoryChange,
    NewCategory,
    create_category,
    delete_category,
    get_category_record,
    list_categories,
    update_category,
)
from layers.incidents.working_time import delete_calendar_day, list_calendar_days, set_calendar_day
from spatial_api.deps import Admin, Engine
from spatial_api.openapi import errors
from spatial_api.schemas.incidents import Calendar, CalendarDay, Categories, Category

router = APIRouter(tags=["incidents"])


@router.get(
    "/incidents/categories", summary="The incident categories (事件分类)", response_model=Categories
)
async def categories(engine: Engine) -> dict[str, Any]:
    """Every category with its time limit (working hours) and department."""
    async with engine.connect() as conn:
        records = await list_categories(conn)
    return {"categories": [r.as_dict() for r in records]}


@router.get(
    "/incidents/categories/{code}", summary="One incident category", response_model=Category
)
async def category(code: str, engine: Engine) -> dict[str, Any]:
    """The category ``code``."""
    async with engine.connect() as conn:
        record = await get_category_record(conn, code)
    return record.as_dict()


@router.post(
    "/incidents/categories",
    status_code=201,
    summary="Add a category (admin)",
    response_model=Category,
    responses=errors(409, 422),
)
async def add_category(body: NewCategory, engine: Engine, _: Admin) -> dict[str, Any]:
    """The new category; 409 when its code is taken."""
    async with engine.begin() as conn:
        record = await create_category(conn, body)
    return record.as_dict()


@router.patch(
    "/incidents/categories/{code}",
    summary="Change a category (admin)",
    response_model=Category,
    responses=errors(409, 422),
)
async def change_category(
    code: str, body: CategoryChange, engine: Engine, _: Admin
) -> dict[str, Any]:
    """The changed category; cases reported afterwards follow the change."""
    async with engine.begin() as conn:
        record = await update_category(conn, code, body)
    return record.as_dict()


@router.delete(
    "/incidents/categories/{code}",
    status_code=204,
    summary="Remove a category (admin)",
    responses=errors(409),
)
async def remove_category(code: str, engine: Engine, _: Admin) -> Response:
    """204; 409 when cases use the category."""
    async with engine.begin() as conn:
        await delete_category(conn, code)
    return Response(status_code=204)


@router.get(
    "/incidents/calendar", summary="Holidays and make-up working days", response_model=Calendar
)
async def calendar(
    engine: Engine, start: date | None = None, end: date | None = None
) -> dict[str, Any]:
    """The days that break the Monday-to-Friday rule, between ``start`` and ``end``."""
    async with engine.connect() as conn:
        days = await list_calendar_days(conn, start, end)
    return {"days": [d.as_dict() for d in days]}


class CalendarDayBody(BaseModel):
    """A holiday (working false) or a make-up working day (working true)."""

    model_config = {"extra": "forbid"}

    working: bool
    name: Text | None = Field(None, max_length=200)


@router.put(
    "/incidents/calendar/{day}",
    summary="Set a holiday or make-up working day (admin)",
    response_model=CalendarDay,
)
async def set_day(day: date, body: CalendarDayBody, engine: Engine, _: Admin) -> dict[str, Any]:
    """The stored day; deadlines computed from now on follow it."""
    async with engine.begin() as conn:
        stored = await set_calendar_day(conn, day, body.working, body.name)
    return stored.as_dict()


@router.delete("/incidents/calendar/{day}", status_code=204, summary="Drop a calendar day (admin)")
async def drop_day(day: date, engine: Engine, _: Admin) -> Response:
    """204; the day follows the weekly rule again."""
    async with engine.begin() as conn:
        await delete_calendar_day(conn, day)
    return Response(status_code=204)
