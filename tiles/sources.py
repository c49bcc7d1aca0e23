"""Tile sources: the MVT layers a tile can hold, from the layer catalog.

Every catalog layer is a source under its own id. Every layer whose rows carry an H3 cell
and may be points (point layers, and mixed layers whose cell is a representative point)
also has an aggregate source ``<id>_hex``: H3 cells with counts, at a resolution that
follows the zoom.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gis.errors import BadRequest, NotFound
from gis.tilemath import MAX_ZOOM, hex_resolution
from layers.catalog.registry import Catalog, Layer
from tiles.derived import derived_attributes

HEX_SUFFIX = "_hex"
MAX_LAYERS_PER_TILE = 16


def hex_maxzoom(finest: int) -> int:
    """The last zoom whose aggregate hexagons are not finer than cells of ``finest``."""
    return max(z for z in range(MAX_ZOOM + 1) if hex_resolution(z) <= finest)


class Mode(Enum):
    """What a source puts in a tile of a given zoom."""

    EMPTY = "empty"
    FEATURES = "features"
    CLUSTERS = "clusters"
    HEX = "hex"


@dataclass(frozen=True)
class Source:
    """One MVT layer of a tile: a catalog layer's features, or its H3 aggregate."""

    name: str
    layer: Layer
    hex: bool = False

    @property
    def cache_name(self) -> str:
        """The source's name in cache keys: with the properties its view of the layer
        withholds, so callers who see different properties never share a tile."""
        hidden = self.layer.withheld
        return self.name + ("!" + ",".join(sorted(hidden)) if hidden else "")

    @property
    def minzoom(self) -> int:
        """The first zoom with content."""
        return self.layer.minzoom

    @property
    def maxzoom(self) -> int:
        """The last zoom with content."""
        if self.hex:
            return min(self.layer.maxzoom, hex_maxzoom(self.layer.h3_resolution))
        return self.layer.maxzoom

    def mode(self, z: int) -> Mode:
        """What this source holds at zoom ``z``."""
        if not self.minzoom <= z <= self.maxzoom:
            return Mode.EMPTY
        if self.hex:
            return Mode.HEX
        if z < self.layer.cluster_below:
            return Mode.CLUSTERS
        return Mode.FEATURES


def same_for_everyone(sources: list[Source]) -> bool:
    """Whether a tile of ``sources`` is the same whoever asks (public layers showing no
    property that only some roles may read), so shared caches may keep it."""
    return all(s.layer.public and not s.layer.shows_restricted for s in sources)


def has_hex(layer: Layer) -> bool:
    """Whether ``layer`` gets an ``_hex`` aggregate: its rows carry a cell and may be points."""
    kind = layer.geometry_type.lower()
    return layer.h3_column is not None and (
        layer.is_point or kind in ("geometry", "geometrycollection")
    )


def feature_attributes(source: Source) -> dict[str, str]:
    """The attributes of a source's single features and their catalog types (``cell`` for
    layers keyed by H3 cell, ``overdue`` where it is derived)."""
    layer = source.layer
    names: dict[str, str] = {}
    if layer.id_type == "h3":
        names["cell"] = "string"
    names.update(layer.properties)
    names.update({d.name: "boolean" for d in derived_attributes(layer)})
    return names


def hex_attributes(source: Source) -> dict[str, str]:
    """The attributes of an aggregate cell: the cell, its count, the count of each derived
    flag, and with ``count_by`` one count per value (``<column>_<value>``)."""
    names = {"cell": "string", "count": "integer"}
    names.update({d.name: "integer" for d in derived_attributes(source.layer)})
    if source.layer.count_by:
        names[f"{source.layer.count_by}_<value>"] = "integer"
    return names


def source_names(catalog: Catalog) -> list[str]:
    """Every source name this catalog offers."""
    names = []
    for layer in catalog:
        names.append(layer.id)
        if has_hex(layer):
            names.append(layer.id + HEX_SUFFIX)
    return names


def find_source(catalog: Catalog, name: str) -> Source:
    """The source called ``name``; NotFound naming the known sources otherwise."""
    if name in catalog:
        return Source(name, catalog.get(name))
    base = name.removesuffix(HEX_SUFFIX)
    if name.endswith(HEX_SUFFIX) and base in catalog and has_hex(catalog.get(base)):
        return Source(name, catalog.get(base), hex=True)
    known = ", ".join(sorted(source_names(catalog)))
    raise NotFound(f"no tile layer {name!r}; known tile layers: {known}", code="unknown_layer")


def parse_sources(catalog: Catalog, text: str) -> list[Source]:
    """The sources of a ``{layers}`` path segment: one name or a comma list, in order."""
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise BadRequest(
            f"{text!r} is not a layer list: give one layer or layers separated by commas",
            code="invalid_layers",
        )
    if len(names) > MAX_LAYERS_PER_TILE:
        raise BadRequest(
            f"{len(names)} layers asked; a tile holds at most {MAX_LAYERS_PER_TILE}",
            code="invalid_layers",
        )
    if len(set(names)) != len(names):
        raise BadRequest(f"a layer is named twice in {text!r}", code="invalid_layers")
    return [find_source(catalog, n) for n in names]
