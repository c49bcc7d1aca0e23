"""Analytics answers in JSON (the same routes answer GeoJSON with ``format=geojson``)."""

from __future__ import annotations

from pydantic import Field

from spatial_api.schemas import Number, Schema


class CellCount(Schema):
    """A cell's count (with ``metric=density``: its true area and the density per km²)."""

    cell: str
    count: int
    area_km2: Number | None = None
    density: Number | None = None


class H3Aggregate(Schema):
    """Rows of a layer per H3 cell."""

    layer: str
    res: int
    metric: str
    total: int
    cells: list[CellCount]


class HotspotCell(Schema):
    """A cell's Gi* z-score, p-value and class."""

    cell: str
    count: int
    z: Number | None
    p: Number | None
    gi_bin: int
    hotspot: str


class Hotspots(Schema):
    """Gi* hotspots and coldspots: a summary per class and every (significant) cell."""

    layer: str
    res: int
    k: int
    fdr: bool
    study_area: str
    n_cells: int
    summary: dict[str, int]
    cells: list[HotspotCell]


class HotspotRefresh(Schema):
    """How many hotspot cells were stored for the map."""

    layer: str
    catalog_layer: str
    stored: int


class TimeBucket(Schema):
    """The count of one time bucket."""

    start: str
    count: int


class TimeSeries(Schema):
    """Zero-filled counts per bucket in a cell, a bbox or the whole layer."""

    layer: str
    interval: str
    tz: str
    cell: str | None
    bbox: str | None
    total: int
    buckets: list[TimeBucket]


class Period(Schema):
    """A period [from, to)."""

    from_: str = Field(alias="from")
    to: str


class CellChange(Schema):
    """A cell's counts in two periods, their change and ratios."""

    cell: str
    count_a: int
    count_b: int
    change: int
    ratio: Number | None
    rate_ratio: Number | None


class PeriodComparison(Schema):
    """Counts per cell in two periods."""

    layer: str
    res: int
    a: Period
    b: Period
    total_a: int
    total_b: int
    cells: list[CellChange]
