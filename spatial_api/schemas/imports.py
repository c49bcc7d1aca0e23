"""What an import did."""

from __future__ import annotations

from spatial_api.schemas import Number, Schema


class Problem(Schema):
    """A source row that needed attention, named as a person finds it in the file."""

    row: str
    reason: str


class ImportReport(Schema):
    """Rows read, written, repaired and rejected (each with its reason), and the time."""

    layer: str
    source: str
    crs: str
    mode: str
    dry_run: bool
    created: bool
    read: int
    written: int
    inserted: int
    updated: int
    deleted: int
    repaired: list[Problem]
    rejected: list[Problem]
    notes: list[str]
    seconds: Number
    repaired_count: int
    rejected_count: int
