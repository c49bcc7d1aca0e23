"""The open datasets: what each one is, the fields it publishes (an allow-list) and where its
rows come from.

A public catalog layer is open only through the fields listed here: a field that is not
listed (a name, a phone, an inspector, a supervisor, whoever edited a row, free text) is
never read. A public layer without an entry here, or whose entry names a property the layer
no longer has, is not published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

import psycopg

from etl.exports.open_data.sources import (
    CASE_RESOLUTION,
    MIN_COUNT,
    Chunk,
    asset_inventory_rows,
    case_cell_rows,
    layer_rows,
    sensor_day_rows,
)
from gis.errors import NotFound
from layers.catalog.registry import Catalog

FieldType = Literal["string", "integer", "number"]
FREQUENCY = "http://purl.org/cld/freq/"
"""The Dublin Core collection frequency vocabulary (DCAT ``accrualPeriodicity``)."""


@dataclass(frozen=True)
class Field:
    """One published field: its name, type and meaning."""

    name: str
    type: FieldType
    description: str


@dataclass(frozen=True)
class Dataset:
    """One open dataset: its identity and description, fields, geometry and rows."""

    id: str
    title: dict[str, str]
    """The title by language (``zh``, ``en``)."""
    description: dict[str, str]
    keywords: tuple[str, ...]
    frequency: str
    """How often the data change: a term of the collection frequency vocabulary."""
    geometry_type: str | None
    """The geometry type of every row (``Unknown``: mixed); None for a table."""
    fields: tuple[Field, ...]
    rows: Callable[[psycopg.Connection], Iterator[Chunk]]
    layer: str | None = None
    """The catalog layer the dataset publishes, if it is one."""
    temporal: str | None = None
    """SQL giving the first and last day the data cover, in the city's time zone (``tz``);
    only where it is cheap (an indexed column)."""

    @property
    def field_names(self) -> list[str]:
        """The names of the published fields, in order."""
        return [f.name for f in self.fields]


def layer_dataset(
    layer: str,
    title: dict[str, str],
    description: dict[str, str],
    geometry_type: str,
    fields: tuple[Field, ...],
) -> Dataset:
    """A catalog layer published with exactly ``fields`` (``id`` is the layer's id)."""
    return Dataset(
        id=layer,
        title=title,
        description=description,
        keywords=(layer, "layer"),
        frequency=FREQUENCY + "continuous",
        geometry_type=geometry_type,
        fields=fields,
        rows=partial(layer_rows, layer_id=layer, fields=[f.name for f in fields]),
        layer=layer,
    )


LAYERS = (
    layer_dataset(
        "districts",
        {"zh": "行政区", "en": "Districts"},
        {
            "zh": "各行政区的边界、六位行政区划代码和名称。",
            "en": "The administrative districts: boundary, 6-digit division code and name.",
        },
        "MultiPolygon",
        (
            Field("id", "integer", "District number, as district_id in the other datasets"),
            Field("code", "string", "6-digit administrative division code"),
            Field("name", "string", "Name (Chinese)"),
            Field("name_en", "string", "Name (English)"),
        ),
    ),
    layer_dataset(
        "grid",
        {"zh": "单元网格", "en": "Unit grid"},
        {
            "zh": "城市管理单元网格（H3 第 10 级六边形）及其所属行政区。不含网格员和监督员信息。",
            "en": "The unit grid of city management (H3 resolution-10 hexagons) and the "
            "district of each cell. Who patrols or supervises a cell is not published.",
        },
        "Polygon",
        (
            Field("id", "string", "H3 cell (hex)"),
            Field("district_id", "integer", "District the cell belongs to"),
            Field("area_m2", "number", "Area of the cell, square metres"),
        ),
    ),
    layer_dataset(
        "assets",
        {"zh": "城市部件", "en": "Municipal assets"},
        {
            "zh": "路灯、井盖、消火栓、管线和绿地等城市部件：16 位部件编码、类别、状态和"
            "权属部门。不含名称、备注和编辑人员。",
            "en": "Street lamps, manholes, hydrants, pipes and green areas: 16-digit asset "
            "code, class, state and owning department. Names, notes and editors are left out.",
        },
        "Unknown",
        (
            Field("id", "integer", "Asset number"),
            Field("code", "string", "16-digit code: division, major class, minor class, serial"),
            Field("class_code", "string", "4-digit class (major + minor)"),
            Field("kind", "string", "lamp, manhole, hydrant, pipe, green_area, ..."),
            Field("state", "string", "intact, damaged, lost or removed"),
            Field("owner_department_id", "integer", "Department that owns and maintains it"),
        ),
    ),
    layer_dataset(
        "sensors",
        {"zh": "传感器", "en": "Sensors"},
        {
            "zh": "城市感知设备（空气质量、噪声、积水、井盖倾斜等）：编号、类型、所在部件和"
            "报警状态。",
            "en": "The city's sensing network (air quality, noise, water level, manhole "
            "tilt): code, kind, the asset it is mounted on and its alarm state.",
        },
        "Point",
        (
            Field("id", "integer", "Sensor number"),
            Field("code", "string", "Sensor code"),
            Field("kind", "string", "What the sensor measures"),
            Field("asset_code", "string", "Code of the asset it is mounted on"),
            Field("alarm_state", "string", "normal, warning or alarm"),
        ),
    ),
)

DERIVED = (
    Dataset(
        id="incidents_h3_monthly",
        title={"zh": "城市管理事件月度网格统计", "en": "City management cases by cell and month"},
        description={
            "zh": f"按 H3 第 {CASE_RESOLUTION} 级六边形（约 0.74 平方公里）、事件类别和上报月份"
            f"（本地时间）统计的事件数。每个事件计入包含其位置的六边形；已作废的事件不计；"
            f"少于 {MIN_COUNT} 件的组合不予发布（整行省略）。不含任何事件描述、上报人或精确位置。",
            "en": f"Reported cases counted by H3 resolution-{CASE_RESOLUTION} hexagon (about "
            f"0.74 km²), category and month of report (city time). Each case counts in the "
            f"hexagon that contains its location; cancelled cases are not counted. A count "
            f"below {MIN_COUNT} is suppressed: its row is left out. No description, reporter "
            f"or exact location of any case is published.",
        },
        keywords=("incidents", "cases", "h3", "statistics"),
        frequency=FREQUENCY + "monthly",
        geometry_type="Polygon",
        fields=(
            Field("cell", "string", f"H3 cell of resolution {CASE_RESOLUTION} (hex)"),
            Field("month", "string", "Month of report, YYYY-MM"),
            Field("category_code", "string", "4-digit category (major + minor class)"),
            Field("category", "string", "Category name (Chinese)"),
            Field("category_en", "string", "Category name (English)"),
            Field("cases", "integer", f"Number of cases (never below {MIN_COUNT})"),
        ),
        rows=case_cell_rows,
        temporal="SELECT (min(reported_at) AT TIME ZONE %(tz)s)::date,"
        " (max(reported_at) AT TIME ZONE %(tz)s)::date FROM incidents",
    ),
    Dataset(
        id="sensor_daily_means",
        title={"zh": "传感器日均值", "en": "Daily sensor means"},
        description={
            "zh": "每个传感器每个监测项每天（本地时间）读数的平均值和读数个数，"
            "位置为传感器所在处。",
            "en": "The mean of each sensor's readings of each property on each day (city "
            "time), with the number of readings, located at the sensor (city property).",
        },
        keywords=("sensors", "readings", "air quality", "noise", "water level"),
        frequency=FREQUENCY + "daily",
        geometry_type="Point",
        fields=(
            Field("sensor", "string", "Sensor code"),
            Field("kind", "string", "What the sensor measures"),
            Field("property", "string", "The measured property (pm25, laeq, level_m, ...)"),
            Field("unit", "string", "Unit of the values"),
            Field("day", "string", "Day, YYYY-MM-DD"),
            Field("mean", "number", "Mean of the day's readings"),
            Field("readings", "integer", "Number of readings that day"),
        ),
        rows=sensor_day_rows,
    ),
    Dataset(
        id="asset_inventory",
        title={"zh": "城市部件统计", "en": "Asset inventory"},
        description={
            "zh": "按行政区（部件编码前六位）、部件类别和状态统计的城市部件数量。",
            "en": "The number of municipal assets by district (the division code their code "
            "starts with), class and state.",
        },
        keywords=("assets", "inventory", "statistics"),
        frequency=FREQUENCY + "continuous",
        geometry_type=None,
        fields=(
            Field("district_code", "string", "6-digit administrative division code"),
            Field("district", "string", "District name (Chinese)"),
            Field("district_en", "string", "District name (English)"),
            Field("class_code", "string", "4-digit asset class"),
            Field("kind", "string", "Asset kind"),
            Field("state", "string", "intact, damaged, lost or removed"),
            Field("assets", "integer", "Number of assets"),
        ),
        rows=asset_inventory_rows,
    ),
)


def is_open_layer(dataset: Dataset, catalog: Catalog) -> bool:
    """Whether a layer dataset's layer is in the catalog, public, and still has every
    listed field."""
    if dataset.layer not in catalog:
        return False
    layer = catalog.get(dataset.layer)
    known = set(layer.properties) | {"id"}
    return layer.public and set(dataset.field_names) <= known


def open_datasets(catalog: Catalog) -> list[Dataset]:
    """The datasets open today: the allow-listed public layers, then the derived ones."""
    return [d for d in LAYERS if is_open_layer(d, catalog)] + list(DERIVED)


def find_dataset(catalog: Catalog, dataset_id: str) -> Dataset:
    """The open dataset ``dataset_id``; NotFound naming the open ones otherwise."""
    datasets = open_datasets(catalog)
    for dataset in datasets:
        if dataset.id == dataset_id:
            return dataset
    known = ", ".join(d.id for d in datasets)
    raise NotFound(
        f"no open dataset {dataset_id!r}; open datasets: {known}", code="unknown_dataset"
    )
