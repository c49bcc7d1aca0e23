"""The evaluation of departments, districts and inspectors (GET /incidents/evaluation)."""

from __future__ import annotations

from pydantic import Field

from spatial_api.schemas import Number, Schema


class EvaluationCounts(Schema):
    """The numerators and denominators of the rates (docs/evaluation.md defines each)."""

    registered: int
    registered_on_time: int
    dispatches: int
    dispatched_on_time: int
    assignments: int
    handed_back: int
    due: int
    handled_on_time: int
    closed: int
    closed_on_time: int
    extended: int
    checks: int
    checked_on_time: int
    resolved: int
    reworked: int
    inspector_reports: int
    self_closed: int


class EvaluationRates(Schema):
    """The rates, 0–1 (None without a denominator)."""

    on_time_registration_rate: Number | None = Field(description="按时立案率")
    on_time_dispatch_rate: Number | None = Field(description="按时派遣率")
    accurate_dispatch_rate: Number | None = Field(description="准确派遣率")
    on_time_handling_rate: Number | None = Field(description="按期处置率")
    on_time_verification_rate: Number | None = Field(description="按期核查率")
    extension_rate: Number | None = Field(description="延期率")
    rework_rate: Number | None = Field(description="返工率")
    closing_rate: Number | None = Field(description="结案率")
    on_time_closing_rate: Number | None = Field(description="按期结案率")
    self_handling_rate: Number | None = Field(description="自行处置率")


class StageTime(Schema):
    """How many of a stage ended in the period, and their mean and p90 hours."""

    count: int
    mean_hours: Number | None
    p90_hours: Number | None


class EvaluationStages(Schema):
    """Stage times: working hours, except ``total`` (calendar hours from report to close)."""

    registration: StageTime
    dispatch: StageTime
    handling: StageTime
    verification: StageTime
    closing: StageTime
    total: StageTime


class EvaluationFigures(Schema):
    """One group's figures, 综合指标值 (score, 0–100) and grade (colour band)."""

    key: int | None
    label: str | None
    counts: EvaluationCounts
    rates: EvaluationRates
    stages: EvaluationStages
    score: Number | None
    grade: str | None


class EvaluationChange(EvaluationRates):
    """Each rate's change (current − previous, a difference of shares) and the score's."""

    score: Number | None


class EvaluationGroup(EvaluationFigures):
    """A group's figures; with ``compare``, those of the previous period and the change."""

    previous: EvaluationFigures | None = None
    change: EvaluationChange | None = None


class Limits(Schema):
    """The time limits of the centre's steps, in working hours."""

    register_hours: Number
    dispatch_hours: Number
    verify_hours: Number


class GradeBand(Schema):
    """A colour band: scores from ``min_score`` (up to the next band) get ``grade``."""

    min_score: Number
    grade: str


class Evaluation(Schema):
    """The evaluation of a period per group and in total, with the settings it used."""

    from_: str = Field(alias="from")
    to: str
    group_by: str
    compare: str | None
    previous_from: str | None
    previous_to: str | None
    limits: Limits
    weights: dict[str, Number]
    grades: list[GradeBand]
    groups: list[EvaluationGroup]
    total: EvaluationGroup
