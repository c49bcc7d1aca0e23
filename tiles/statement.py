"""The statement of a whole tile: one round trip, one ST_AsMVT layer per source.

The statement selects every source's ``(mvt, next)`` row side by side; the tile is the
concatenation of the layers' bytes (an MVT tile is a sequence of layers).
"""

from __future__ import annotations

from typing import Any

from tiles.clusters import clusters_part, density_part
from tiles.filters import TileFilters
from tiles.hexagg import hex_part
from tiles.mvt import Statement, features_part
from tiles.sources import Mode, Source


def source_part(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement
) -> str | None:
    """The subquery of one source at this tile, or None when it is empty at this zoom."""
    mode = source.mode(z)
    if mode is Mode.FEATURES and source.layer.cluster_cell_max:
        return density_part(source, z, x, y, filters, st)
    if mode is Mode.FEATURES:
        return features_part(source, z, x, y, filters, st)
    if mode is Mode.CLUSTERS:
        return clusters_part(source, z, x, y, filters, st)
    if mode is Mode.HEX:
        return hex_part(source, z, x, y, filters, st)
    return None


def tile_statement(
    sources: list[Source], z: int, x: int, y: int, filters: TileFilters
) -> tuple[str, list[Any]] | None:
    """The statement that builds tile ``z/x/y`` of ``sources`` and its arguments (columns
    ``mvt, next`` per source with content), or None when no source has content here."""
    st = Statement([z, x, y])
    parts = [p for s in sources if (p := source_part(s, z, x, y, filters, st)) is not None]
    if not parts:
        return None
    cols = ", ".join(f"s{i}.mvt, s{i}.next" for i in range(len(parts)))
    froms = ", ".join(f"({p}) AS s{i}" for i, p in enumerate(parts))
    return f"SELECT {cols} FROM {froms}", st.args
