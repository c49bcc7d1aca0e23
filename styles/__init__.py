"""MapLibre style documents: one per layer and ``city``, which combines them.

The documents live next to this file as JSON, their tile sources written as
``{base}/tiles/<layers>/tilejson.json[?filter]`` and their glyphs as
``{base}/styles/glyphs/{fontstack}/{range}.pbf``; :func:`load_style` puts in the base URL
of the server that serves them, and :func:`style_for` cuts a style to what one caller may
read:

- a source is kept when the caller may read every tile layer in its URL;
- a style layer is kept when its source is kept and every attribute it reads
  (``["get", name]``, ``["has", name]``) is one the caller's tiles carry; a layer whose
  ``metadata["cityhex:fallback-for"]`` names another layer is kept only when that other
  layer is not (so a caller who does not get ``inspector_id`` gets cells coloured by
  district instead);
- label (symbol) layers and ``glyphs`` are dropped when the server has no glyphs;
- the legend (``metadata["cityhex:legend"]``: entries ``{"layer", "label": {"zh", "en"},
  "color"}``) keeps the entries of the kept layers.

A style none of whose tile sources the caller may read is not offered to it at all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BASE = "{base}"
LEGEND = "cityhex:legend"
FALLBACK_FOR = "cityhex:fallback-for"
VALUE = "<value>"
"""The placeholder of an attribute name that stands for any value (``status_<value>``)."""
TILES_PREFIX = BASE + "/tiles/"
TILEJSON_SUFFIX = "/tilejson.json"

Fields = Mapping[str, frozenset[str]]
"""Tile layer (source) name → the attributes its features carry, for one caller."""


def style_names() -> list[str]:
    """The names of the styles, sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


@lru_cache
def _template(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


def _check_name(name: str) -> None:
    if name not in style_names():
        raise KeyError(f"no style {name!r}; known styles: {', '.join(style_names())}")


def _with_base(value: Any, base: str) -> Any:
    """``value`` with ``{base}`` replaced by ``base`` in every string."""
    if isinstance(value, str):
        return value.replace(BASE, base)
    if isinstance(value, list):
        return [_with_base(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _with_base(v, base) for k, v in value.items()}
    return value


def load_style(name: str, base_url: str) -> dict[str, Any]:
    """The whole style ``name`` (every source and layer) on the server at ``base_url``;
    KeyError naming the known styles when there is no such style."""
    _check_name(name)
    return _with_base(copy.deepcopy(_template(name)), base_url.rstrip("/"))


def style_title(name: str) -> str:
    """The human name of a style."""
    _check_name(name)
    return _template(name).get("name", name)


def source_layers(source: Mapping[str, Any]) -> list[str]:
    """The tile layers a vector source's TileJSON URL names (none for another source)."""
    url = source.get("url", "")
    if source.get("type") != "vector" or not url.startswith(TILES_PREFIX):
        return []
    path = url.removeprefix(TILES_PREFIX).partition("?")[0]
    return path.removesuffix(TILEJSON_SUFFIX).split(",")


def attributes_read(value: Any) -> Iterator[str]:
    """The attribute names an expression (or a layer's filter, paint or layout) reads
    with ``get`` or ``has`` (the two-argument forms, which read another object, excepted)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from attributes_read(v)
    elif isinstance(value, list):
        if len(value) == 2 and value[0] in ("get", "has") and isinstance(value[1], str):
            yield value[1]
        for v in value[1:] if value and isinstance(value[0], str) else value:
            yield from attributes_read(v)


def carries(fields: frozenset[str], name: str) -> bool:
    """Whether a tile layer with ``fields`` carries attribute ``name``."""
    if name in fields:
        return True
    return any(
        f.endswith(VALUE) and name.startswith(f.removesuffix(VALUE)) and name != f[: -len(VALUE)]
        for f in fields
    )


def _layer_readable(layer: Mapping[str, Any], sources: set[str], fields: Fields) -> bool:
    """Whether a style layer draws only what the caller may read."""
    if "source" not in layer:
        return True
    if layer["source"] not in sources:
        return False
    offered = fields.get(layer.get("source-layer", ""), frozenset())
    parts = [layer.get(k) for k in ("filter", "paint", "layout")]
    return all(carries(offered, name) for name in attributes_read(parts))


def style_for(
    name: str, base_url: str, fields: Fields, glyphs: bool = True
) -> dict[str, Any] | None:
    """The style ``name`` cut to what a caller who reads ``fields`` may render (see the
    module's rules); None when it may read none of the style's tile sources. ``glyphs``:
    whether the server has glyphs for labels. KeyError for an unknown style."""
    doc = load_style(name, base_url)
    kept_sources = {
        key
        for key, source in doc["sources"].items()
        if (tiles := source_layers(_template(name)["sources"][key]))
        and all(t in fields for t in tiles)
    }
    if not kept_sources:
        return None
    readable = {
        layer["id"]
        for layer in doc["layers"]
        if _layer_readable(layer, kept_sources, fields) and (glyphs or layer["type"] != "symbol")
    }
    kept = []
    for layer in doc["layers"]:
        instead_of = layer.get("metadata", {}).get(FALLBACK_FOR)
        if layer["id"] in readable and (instead_of is None or instead_of not in readable):
            kept.append(layer)
    ids = {layer["id"] for layer in kept}
    used = {layer["source"] for layer in kept if "source" in layer}
    doc["sources"] = {k: v for k, v in doc["sources"].items() if k in used}
    doc["layers"] = kept
    if not glyphs:
        doc.pop("glyphs", None)
    metadata = doc.get("metadata", {})
    if LEGEND in metadata:
        metadata[LEGEND] = [e for e in metadata[LEGEND] if e["layer"] in ids]
    return doc
