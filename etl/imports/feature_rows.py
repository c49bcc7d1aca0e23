"""The rows an import writes, as COPY text: property columns, the extra properties object,
the H3 cell and the geometry as hex EWKB (SRID 4326), built on whole arrays."""

from __future__ import annotations

import numpy as np
import shapely

from gis.hexgrid import latlng_cells

SRID = 4326
# EWKB of a 2D point with SRID: byte order 1 (little endian), type 0x20000001, srid
_POINT_HEADER = np.frombuffer(
    bytes([1]) + np.uint32(0x20000001).tobytes() + np.uint32(SRID).tobytes(), dtype=np.uint8
)
# every byte value as its two hex digits, packed in one uint16 (little endian: digit order kept)
_HEX = np.frombuffer(b"".join(f"{i:02X}".encode() for i in range(256)), dtype="<u2")
POINT_HEX_CHARS = 50


def ewkb_hex_points(lon: np.ndarray, lat: np.ndarray) -> list[str]:
    """Hex EWKB (SRID 4326) of points, without making geometry objects."""
    n = len(lon)
    raw = np.empty((n, 25), dtype=np.uint8)
    raw[:, :9] = _POINT_HEADER
    raw[:, 9:17] = np.ascontiguousarray(lon, dtype="<f8").view(np.uint8).reshape(n, 8)
    raw[:, 17:] = np.ascontiguousarray(lat, dtype="<f8").view(np.uint8).reshape(n, 8)
    text = _HEX[raw].tobytes().decode("ascii")
    width = POINT_HEX_CHARS
    return [text[i : i + width] for i in range(0, n * width, width)]


def ewkb_hex_geometries(geoms: np.ndarray) -> list[str]:
    """Hex EWKB (SRID 4326) of shapely geometries."""
    with_srid = shapely.set_srid(geoms, SRID)
    return shapely.to_wkb(with_srid, hex=True, include_srid=True).tolist()


def h3_texts(lon: np.ndarray, lat: np.ndarray, res: int) -> list[str]:
    """The COPY text of the H3 cell (bigint) of every lon/lat point."""
    return list(map(str, latlng_cells(lon, lat, res).tolist()))


def bbox(lon: np.ndarray, lat: np.ndarray, geoms: np.ndarray | None) -> tuple[float, ...] | None:
    """The lon/lat box of the written features (None when there are none)."""
    if geoms is not None and len(geoms):
        box = shapely.total_bounds(geoms)
        return tuple(float(v) for v in box)
    if not len(lon):
        return None
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """The 16 low bits of ``v`` moved to the even bit positions of a uint32."""
    v = v.astype(np.uint32) & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def spatial_order(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """An order of the points along a Z curve over their extent: rows written in this order
    sit near their neighbours in the table, which makes index upkeep and tile reads cheaper."""
    if len(lon) < 2:
        return np.arange(len(lon))
    scale = []
    for v in (lon, lat):
        span = float(v.max() - v.min()) or 1.0
        scale.append(((v - v.min()) / span * 0xFFFF).astype(np.uint32))
    key = _spread_bits(scale[0]) | (_spread_bits(scale[1]) << 1)
    return np.argsort(key, kind="stable")
