"""Patrol: fix ingest, coverage, tracks, live positions, shifts and the evaluation."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from spatial_api.schemas import Number, Schema


class FixRejection(Schema):
    """A fix that was not stored, with its position in the batch."""

    index: int
    code: str
    reason: str


class FixReport(Schema):
    """What became of a batch of fixes."""

    inspector_id: int
    received: int
    accepted: int
    duplicate: int
    rejected: int
    rejections: list[FixRejection]


class OffPost(Schema):
    """An off-post episode (脱岗)."""

    id: int
    started_at: str
    ended_at: str | None
    ended_by: str | None
    minutes: Number


class PatrolCoverage(Schema):
    """An inspector's patrol over a period."""

    inspector_id: int
    assigned_cells: int
    patrolled_cells: list[str]
    coverage: Number | None
    on_duty_minutes: Number
    shift_on_duty_minutes: Number
    shift_minutes: Number
    on_duty_rate: Number | None
    off_post: list[OffPost]


class InspectorRow(Schema):
    """One inspector's line of a centre's daily table."""

    district: str | None
    inspector_id: int
    assigned_cells: int
    patrolled_cells: int
    coverage: Number | None
    on_duty_minutes: Number
    shift_on_duty_minutes: Number
    shift_minutes: Number
    on_duty_rate: Number | None


class DistrictRow(Schema):
    """A district's sums over its inspectors and the rates of the sums."""

    district: str | None
    inspectors: int
    assigned_cells: Number
    patrolled_cells: Number
    on_duty_minutes: Number
    shift_on_duty_minutes: Number
    shift_minutes: Number
    coverage: Number | None
    on_duty_rate: Number | None


class CoverageTable(Schema):
    """Coverage per district and per inspector (``group_by=district``)."""

    from_: str = Field(alias="from")
    to: str
    districts: list[DistrictRow]
    inspectors: list[InspectorRow]


class CoverageAnswer(RootModel[PatrolCoverage | CoverageTable]):
    """One inspector's coverage, or (``group_by=district``) a centre's table."""


class PatrolFeatures(Schema):
    """GeoJSON features (a track's lines, or live positions)."""

    type: str
    features: list[dict[str, Any]]
    truncated: bool | None = None
    on_shift: int | None = None


class ShiftSchedule(Schema):
    """A daily shift of an inspector or of a district's inspectors."""

    inspector_id: int | None
    district: str | None
    start_time: str
    end_time: str
    working_days_only: bool


class PatrolEvaluation(Schema):
    """Inspector evaluation figures per inspector and per district over a period."""

    from_: str = Field(alias="from")
    to: str
    verify_hours: Number
    check_hours: Number
    inspectors: list[dict[str, Any]]
    districts: list[dict[str, Any]]
