"""OSM presets: which OpenStreetMap objects an import takes and how their tags become a kind
and a component class code (部件 classes after the major classes of GB/T 30428.2: 01 public
utilities, 02 roads and traffic, 03 city appearance, 04 landscaping, 05 buildings and land).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gis.errors import BadRequest

Tags = dict[str, str]


@dataclass(frozen=True)
class AssetClass:
    """What an OSM object is as a municipal component: its kind and 4-digit class code."""

    kind: str
    class_code: str
    subtype: str | None = None


@dataclass(frozen=True)
class Preset:
    """Which OSM objects to take (nodes, ways as lines, areas as polygons) and their class."""

    name: str
    description: str
    geometry: Literal["point", "line", "polygon"]
    classify: Callable[[Tags], AssetClass | None]


# (key, value) → (kind, class code); the first match in this order wins. Lamps, hydrants
# and manhole covers take the kinds and codes the demo city uses (etl.demo.assets).
STREET_FURNITURE = (
    ("highway", "street_lamp", "lamp", "0220"),
    ("emergency", "fire_hydrant", "hydrant", "0114"),
    ("amenity", "bench", "bench", "0407"),
    ("leisure", "picnic_table", "bench", "0407"),
    ("amenity", "waste_basket", "waste_basket", "0304"),
    ("amenity", "recycling", "recycling_point", "0305"),
    ("man_made", "surveillance", "surveillance_camera", "0120"),
    ("highway", "traffic_signals", "traffic_signal", "0211"),
    ("highway", "bus_stop", "bus_stop", "0203"),
    ("amenity", "post_box", "post_box", "0116"),
    ("amenity", "toilets", "public_toilet", "0301"),
    ("amenity", "telephone", "telephone_booth", "0118"),
    ("natural", "tree", "street_tree", "0402"),
)
# manhole=* → class code of the cover (上水, 污水, 雨水, 电力, 通讯, 热力, 燃气; other: 0113)
MANHOLES = {
    "water": "0101",
    "sewer": "0102",
    "drain": "0103",
    "storm": "0103",
    "power": "0105",
    "telecom": "0107",
    "heating": "0110",
    "gas": "0111",
}
ROAD_CLASSES = {
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "service",
    "living_street",
    "pedestrian",
    "motorway_link",
    "trunk_link",
    "primary_link",
    "secondary_link",
    "tertiary_link",
    "footway",
    "cycleway",
    "path",
    "steps",
    "track",
}
ROAD_CLASS_CODE = "0230"
BUILDING_CLASS_CODE = "0501"


def street_furniture(tags: Tags) -> AssetClass | None:
    """Lamps, hydrants, benches, bins, cameras, signals, manholes and the like."""
    if tags.get("man_made") == "manhole":
        subtype = tags.get("manhole")
        return AssetClass("manhole", MANHOLES.get(subtype or "", "0113"), subtype)
    for key, value, kind, code in STREET_FURNITURE:
        if tags.get(key) == value:
            return AssetClass(kind, code)
    return None


def roads(tags: Tags) -> AssetClass | None:
    """Streets and paths (OSM highway=* ways) as lines."""
    highway = tags.get("highway")
    return AssetClass("road", ROAD_CLASS_CODE, highway) if highway in ROAD_CLASSES else None


def buildings(tags: Tags) -> AssetClass | None:
    """Buildings (closed ways and multipolygons with building=*) as polygons."""
    building = tags.get("building")
    if building is None or building == "no":
        return None
    return AssetClass("building", BUILDING_CLASS_CODE, building)


PRESETS = {
    p.name: p
    for p in (
        Preset(
            "street-furniture", "street furniture nodes as asset points", "point", street_furniture
        ),
        Preset("roads", "highway=* ways as lines", "line", roads),
        Preset("buildings", "building=* areas as polygons", "polygon", buildings),
    )
}


def get_preset(name: str | None) -> Preset:
    """The preset called ``name``; BadRequest listing the presets otherwise."""
    known = ", ".join(PRESETS)
    if name is None:
        raise BadRequest(f"an OSM file needs --osm-preset: one of {known}", code="missing_preset")
    try:
        return PRESETS[name]
    except KeyError:
        raise BadRequest(
            f"no OSM preset {name!r}; presets: {known}", code="unknown_preset"
        ) from None
