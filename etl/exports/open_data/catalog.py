"""The open-data catalog: every open dataset with its licence, update frequency, coverage,
fields and one download per format, as DCAT-style JSON-LD (``dcat:Catalog``)."""

from __future__ import annotations

from typing import Any

import psycopg

from etl.exports.open_data.datasets import Dataset, open_datasets
from etl.exports.open_data.export import open_data_connection
from etl.exports.open_data.settings import OpenDataSettings, open_data_settings
from etl.exports.open_data.writers import FORMATS
from layers.catalog.registry import load_catalog
from layers.incidents.working_time import working_time_settings

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "title": {"@id": "dct:title", "@container": "@language"},
    "description": {"@id": "dct:description", "@container": "@language"},
    "identifier": "dct:identifier",
    "keyword": "dcat:keyword",
    "license": {"@id": "dct:license", "@type": "@id"},
    "publisher": "dct:publisher",
    "name": "foaf:name",
    "accrualPeriodicity": {"@id": "dct:accrualPeriodicity", "@type": "@id"},
    "spatial": "dct:spatial",
    "bbox": "dcat:bbox",
    "temporal": "dct:temporal",
    "startDate": "dcat:startDate",
    "endDate": "dcat:endDate",
    "dataset": "dcat:dataset",
    "distribution": "dcat:distribution",
    "downloadURL": {"@id": "dcat:downloadURL", "@type": "@id"},
    "mediaType": "dcat:mediaType",
    "format": "dct:format",
    "rights": "dct:rights",
}
CITY_EXTENT = (
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
    " FROM (SELECT ST_Extent(geom)::geometry AS e FROM districts) t"
)


def city_bbox(conn: psycopg.Connection) -> str | None:
    """The extent of the districts as a WKT polygon (DCAT ``bbox``); None with no district."""
    west, south, east, north = conn.execute(CITY_EXTENT).fetchone()
    if west is None:
        return None
    ring = f"{west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}"
    return f"POLYGON(({ring}))"


def period(conn: psycopg.Connection, dataset: Dataset) -> dict[str, str] | None:
    """The days the dataset covers (DCAT ``temporal``), when it is cheap to know."""
    if dataset.temporal is None:
        return None
    tz = working_time_settings().timezone
    start, end = conn.execute(dataset.temporal, {"tz": tz}).fetchone()
    if start is None:
        return None
    return {"@type": "dct:PeriodOfTime", "startDate": start.isoformat(), "endDate": end.isoformat()}


def distributions(dataset: Dataset, base_url: str, license_url: str) -> list[dict[str, Any]]:
    """One download of ``dataset`` per format."""
    return [
        {
            "@type": "dcat:Distribution",
            "title": {"en": f"{dataset.title['en']} ({fmt.title})"},
            "format": fmt.title,
            "mediaType": fmt.media_type,
            "downloadURL": f"{base_url}/open/{dataset.id}.{fmt.suffix}",
            "license": license_url,
        }
        for fmt in FORMATS.values()
    ]


def dataset_entry(
    dataset: Dataset,
    base_url: str,
    settings: OpenDataSettings,
    bbox: str | None,
    temporal: dict[str, str] | None,
) -> dict[str, Any]:
    """The catalog entry (``dcat:Dataset``) of one open dataset."""
    entry: dict[str, Any] = {
        "@type": "dcat:Dataset",
        "identifier": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "keyword": list(dataset.keywords),
        "license": settings.license,
        "publisher": {"@type": "foaf:Agent", "name": settings.publisher},
        "accrualPeriodicity": dataset.frequency,
        "fields": [
            {"name": f.name, "type": f.type, "description": f.description} for f in dataset.fields
        ],
        "distribution": distributions(dataset, base_url, settings.license),
    }
    if bbox is not None:
        entry["spatial"] = {"@type": "dct:Location", "bbox": bbox}
    if temporal is not None:
        entry["temporal"] = temporal
    return entry


def open_catalog(url: str, base_url: str) -> dict[str, Any]:
    """The DCAT-style catalog of the open datasets, their downloads under ``base_url``."""
    settings = open_data_settings()
    datasets = open_datasets(load_catalog())
    with open_data_connection(url) as conn:
        bbox = city_bbox(conn)
        periods = {d.id: period(conn, d) for d in datasets}
    return {
        "@context": CONTEXT,
        "@type": "dcat:Catalog",
        "title": {"zh": "城市开放数据", "en": "City open data"},
        "description": {
            "zh": "脱敏的城市管理数据：不含任何人员姓名、电话、证件号或事件的精确位置。",
            "en": "Desensitized city management data: no name, phone or ID number of "
            "anyone, and no exact location of any reported case.",
        },
        "publisher": {"@type": "foaf:Agent", "name": settings.publisher},
        "license": settings.license,
        "rights": settings.license_name,
        "dataset": [dataset_entry(d, base_url, settings, bbox, periods[d.id]) for d in datasets],
    }
