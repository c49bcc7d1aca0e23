"""What one role may read of the tiles: each tile layer (source) it may read, with the
attributes its features carry for that role, as the TileJSON lists them. Styles are cut to
this (``styles.style_for``) so a style never names a source or an attribute the caller
would not get."""

from __future__ import annotations

from layers.catalog.registry import Catalog, load_catalog
from tiles.sources import HEX_SUFFIX, Source, has_hex
from tiles.tilejson import vector_layer


def readable_fields(role: str, catalog: Catalog | None = None) -> dict[str, frozenset[str]]:
    """Source name → attribute names, for every source ``role`` may read (a ``<value>``
    placeholder, as in ``status_<value>``, stands for any value)."""
    catalog = catalog or load_catalog()
    fields: dict[str, frozenset[str]] = {}
    for layer in catalog.for_role(role):
        if not layer.can_read(role):
            continue
        sources = [Source(layer.id, layer)]
        if has_hex(layer):
            sources.append(Source(layer.id + HEX_SUFFIX, layer, hex=True))
        for source in sources:
            fields[source.name] = frozenset(vector_layer(source)["fields"])
    return fields
