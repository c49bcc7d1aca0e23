"""Geometries as hex EWKB with SRID 4326, the text a geometry column reads: from shapely
geometries, or written straight from coordinates for points and simple polygons."""

from __future__ import annotations

import struct

import numpy as np
import shapely

SRID = 4326
_POINT = 0x20000001  # EWKB type of a 2D point carrying an SRID
_POLYGON = 0x20000003


def ewkb_hex(geoms: np.ndarray) -> list[str]:
    """Hex EWKB of every geometry of a shapely array."""
    with_srid = shapely.set_srid(geoms, SRID)
    return shapely.to_wkb(with_srid, hex=True, include_srid=True).tolist()


def ewkb_hex_points(lon: np.ndarray, lat: np.ndarray) -> list[str]:
    """Hex EWKB of points, without making geometry objects."""
    return _hex_records(struct.pack("<BII", 1, _POINT, SRID), np.column_stack((lon, lat)))


def ewkb_hex_rings(rings: np.ndarray) -> list[str]:
    """Hex EWKB of one-ring polygons given as ``(n, k, 2)`` lon/lat rings (left open),
    without making geometry objects."""
    n, k, _ = rings.shape
    closed = np.concatenate([rings, rings[:, :1]], axis=1).reshape(n, 2 * (k + 1))
    return _hex_records(struct.pack("<BIIII", 1, _POLYGON, SRID, 1, k + 1), closed)


def _hex_records(header: bytes, coords: np.ndarray) -> list[str]:
    """Hex text of one record per row of ``coords``: ``header``, then the row's numbers as
    little-endian doubles."""
    n, size = len(coords), len(header)
    record = np.empty((n, size + 8 * coords.shape[1]), dtype=np.uint8)
    record[:, :size] = np.frombuffer(header, dtype=np.uint8)
    record[:, size:] = np.ascontiguousarray(coords, "<f8").view(np.uint8)
    text = record.tobytes().hex()
    width = 2 * record.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]
