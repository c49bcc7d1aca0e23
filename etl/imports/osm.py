"""Read an OSM file (.osm XML or .osm.pbf) with pyosmium through a preset into a source
table in EPSG:4326: kind, class code, subtype, name, the OSM type and id, and all tags.

A way whose nodes are not all in the file (cut by the extract's edge) cannot be drawn; it is
left out and counted in the returned notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import osmium
import shapely

from etl.imports.osm_presets import Preset
from etl.imports.source_table import SourceTable
from gis.errors import Unprocessable

OSM_SUFFIXES = (".osm", ".pbf", ".o5m")
# what is read from the file, and what reaches Python (node locations are cached first)
ENTITIES = {
    "point": (osmium.osm.NODE, osmium.osm.NODE),
    "line": (osmium.osm.NODE | osmium.osm.WAY, osmium.osm.WAY),
    "polygon": (osmium.osm.ALL, osmium.osm.AREA),
}


def is_osm_file(path: Path) -> bool:
    """Whether ``path`` names an OSM data file."""
    name = path.name.lower()
    return name.endswith(OSM_SUFFIXES) or name.endswith((".osm.bz2", ".osm.gz"))


class _Collector:
    """Gathers the preset's objects: geometry as WKB hex, and their columns."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.wkb = osmium.geom.WKBFactory()
        self.rows: dict[str, list] = {
            k: []
            for k in ("kind", "class_code", "subtype", "name", "osm_type", "osm_id", "osm_tags")
        }
        self.geometry: list[str] = []
        self.labels: list[str] = []
        self.incomplete = 0

    def take(self, obj: osmium.osm.OSMObject) -> None:
        tags = dict(obj.tags)
        found = self.preset.classify(tags)
        if found is None:
            return
        osm_type, osm_id, geometry = self._geometry(obj)
        if geometry is None:
            return
        for key, value in (
            ("kind", found.kind),
            ("class_code", found.class_code),
            ("subtype", found.subtype),
            ("name", tags.get("name")),
            ("osm_type", osm_type),
            ("osm_id", osm_id),
            ("osm_tags", tags),
        ):
            self.rows[key].append(value)
        self.geometry.append(geometry)
        self.labels.append(f"{osm_type} {osm_id}")

    def _geometry(self, obj: osmium.osm.OSMObject) -> tuple[str, int, str | None]:
        kind = self.preset.geometry
        try:
            if kind == "point" and obj.is_node():
                return "node", obj.id, self.wkb.create_point(obj)
            if kind == "line" and obj.is_way():
                return "way", obj.id, self.wkb.create_linestring(obj)
            if kind == "polygon" and obj.is_area():
                osm_type = "way" if obj.from_way() else "relation"
                return osm_type, obj.orig_id(), self.wkb.create_multipolygon(obj)
        except (osmium.InvalidLocationError, RuntimeError):
            self.incomplete += 1
        return "", 0, None


def read_osm(path: Path, preset: Preset) -> tuple[SourceTable, list[str]]:
    """The objects ``preset`` takes from the OSM file, and notes on what was left out."""
    collector = _Collector(preset)
    try:
        read, wanted = ENTITIES[preset.geometry]
        processor = osmium.FileProcessor(str(path), read)
        if preset.geometry != "point":
            processor = processor.with_locations()
        if preset.geometry == "polygon":
            processor = processor.with_areas()
        processor = processor.with_filter(osmium.filter.EmptyTagFilter())
        for obj in processor.with_filter(osmium.filter.EntityFilter(wanted)):
            collector.take(obj)
    except RuntimeError as exc:
        raise Unprocessable(
            f"cannot read {path.name} as OSM data: {exc}", code="unreadable_file"
        ) from exc
    rows = collector.rows
    columns = {k: np.array(v, dtype=object) for k, v in rows.items() if k != "osm_id"}
    columns["osm_id"] = np.array(rows["osm_id"], dtype=np.int64)
    table = SourceTable(
        columns=columns,
        geometry=shapely.from_wkb(np.array(collector.geometry, dtype=object)),
        declared_crs="EPSG:4326",
        crs_note="EPSG:4326 (OpenStreetMap)",
        row_names=np.array(collector.labels, dtype=object),
        kinds={"osm_tags": "object", "osm_id": "integer"},
    )
    notes = []
    if collector.incomplete:
        notes.append(
            f"{collector.incomplete} OSM objects left out: their nodes are not all in "
            "the file (cut at the extract's edge)"
        )
    return table, notes
