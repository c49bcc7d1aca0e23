"""Incidents: cases, lists, metrics, history, categories and the working-day calendar."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from spatial_api.schemas import Coded, Number, Schema
from spatial_api.schemas.grid import Department, Staff


class Point(Schema):
    """A GeoJSON point (lon, lat)."""

    type: str
    coordinates: list[Number]


class PossibleDuplicate(Schema):
    """An open case near a new report that may be the same (how far, and whether on the
    same asset, only for callers who may read cases)."""

    id: int
    status: str
    distance_m: Number | None = None
    same_asset: bool | None = None


class AttachedReport(Schema):
    """A report attached to an open case, as a caller who may not read cases is told."""

    attached: bool
    incident_id: int


class AllowedAction(Schema):
    """A workflow action the caller may take on the case now."""

    action: str
    label: str


class Case(Schema):
    """A case (事件): category, status, location, routing, times, deadline and version; a
    new case also says where it was routed (``district``, ``inspector``, ``department``, as
    ``/grid/lookup`` gives them to the caller; no inspector for callers who may not read
    cases)."""

    id: int
    category_code: str
    status: str
    description: str | None
    source: str
    reporter: str | None
    asset_code: str | None
    sensor_id: int | None
    photos: list[str]
    inspector_id: int | None = None
    department_id: int | None
    district_id: int | None
    cell: str | None
    location: Point
    reported_at: str
    registered_at: str | None
    dispatched_at: str | None
    resolved_at: str | None
    closed_at: str | None
    deadline: str | None
    overdue: bool
    rework_count: int
    version: int
    updated_at: str
    distance_m: Number | None = None
    possible_duplicates: list[PossibleDuplicate] | None = None
    attached: bool | None = None
    allowed_actions: list[AllowedAction] | None = None
    district: Coded | None = None
    inspector: Staff | None = None
    department: Department | None = None


class CasePage(Schema):
    """One page of cases with the total and the next page's offset."""

    items: list[Case]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class MetricsRow(Schema):
    """Counts, rates (结案率, 按期结案率, 返工率, 按期处置率), score and times to close."""

    key: int | str | None
    label: str | None
    reported: int
    registered: int
    due: int
    closed: int
    closed_on_time: int
    handled_on_time: int
    resolved: int
    reworked: int
    closing_rate: Number | None
    on_time_closing_rate: Number | None
    rework_rate: Number | None
    on_time_handling_rate: Number | None
    score: Number | None
    mean_hours_to_close: Number | None
    p90_hours_to_close: Number | None


class CaseMetrics(Schema):
    """The metrics of a period, per group and in total."""

    from_: str = Field(alias="from")
    to: str
    group_by: str | None
    groups: list[MetricsRow]
    total: MetricsRow


class Step(Schema):
    """One recorded step of a case: action, states, who, when, note."""

    id: int
    action: str
    from_: str | None = Field(alias="from")
    to: str | None
    actor: str | None
    at: str
    note: str | None
    details: Any


class CaseHistory(Schema):
    """Every step of a case, oldest first."""

    incident_id: int
    transitions: list[Step]


class Category(Schema):
    """An incident category (事件分类) with its time limit and department."""

    code: str
    major: str
    minor: str
    major_name: str
    name: str
    name_en: str
    time_limit_hours: Number
    department_id: int
    department_code: str
    department_name: str
    department_name_en: str | None


class Categories(Schema):
    """Every incident category."""

    categories: list[Category]


class CalendarDay(Schema):
    """A holiday (working false) or a make-up working day (working true)."""

    day: str
    working: bool
    name: str | None


class Calendar(Schema):
    """The days that break the Monday-to-Friday rule."""

    days: list[CalendarDay]
