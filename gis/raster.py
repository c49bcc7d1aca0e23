"""Raster files from arrays: float32 GeoTIFFs for GIS, coloured PNGs for web-map overlays."""

from __future__ import annotations

import warnings

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds

RAMP = np.array(
    [  # position, red, green, blue, alpha: a yellow-orange-red heat ramp
        (0.00, 255, 255, 178, 0),
        (0.01, 255, 255, 178, 90),
        (0.25, 254, 204, 92, 150),
        (0.50, 253, 141, 60, 190),
        (0.75, 240, 59, 32, 220),
        (1.00, 189, 0, 38, 245),
    ],
    dtype=np.float64,
)
"""Colour stops; values at or below zero, and missing values, are fully transparent."""


def geotiff_bytes(
    array: np.ndarray, crs: CRS | int, transform: Affine, nodata: float | None = None
) -> bytes:
    """A single-band float32 GeoTIFF (deflate, tiled when large) of ``array``."""
    data = np.asarray(array, dtype=np.float32)
    height, width = data.shape
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": width,
        "height": height,
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "compress": "deflate",
        "predictor": 3,
        "nodata": nodata,
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        return mem.read()


def colourize(array: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGBA uint8 (4, height, width) of ``array`` on the heat ramp scaled 0 .. ``vmax``."""
    data = np.asarray(array, dtype=np.float64)
    valid = np.isfinite(data) & (data > 0)
    top = vmax if vmax and vmax > 0 else (float(data[valid].max()) if valid.any() else 1.0)
    t = np.clip(np.where(valid, data, 0.0) / top, 0.0, 1.0)
    rgba = np.stack([np.interp(t, RAMP[:, 0], RAMP[:, i]) for i in range(1, 5)])
    rgba[3][~valid] = 0
    return np.round(rgba).astype(np.uint8)


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG of an RGBA uint8 (4, height, width) array."""
    _, height, width = rgba.shape
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=width, height=height, count=4, dtype="uint8") as dst:
            dst.write(rgba)
        return mem.read()


def to_web_mercator(
    array: np.ndarray, crs: CRS | int, transform: Affine, lonlat_bounds: tuple[float, ...]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``array`` warped onto a north-up EPSG:3857 grid of the same size over ``lonlat_bounds``.

    Returns the warped float32 array (NaN outside the source) and the bounds it covers in
    lon/lat, as a map overlay needs them.
    """
    height, width = np.shape(array)
    merc = transform_bounds(4326, 3857, *lonlat_bounds)
    dst_transform = Affine(
        (merc[2] - merc[0]) / width, 0.0, merc[0], 0.0, -(merc[3] - merc[1]) / height, merc[3]
    )
    out = np.full((height, width), np.nan, dtype=np.float32)
    reproject(
        np.asarray(array, dtype=np.float32),
        out,
        src_transform=transform,
        src_crs=CRS.from_user_input(crs),
        dst_transform=dst_transform,
        dst_crs=CRS.from_epsg(3857),
        src_nodata=np.nan,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    west, south, east, north = transform_bounds(3857, 4326, *merc)
    return out, (west, south, east, north)


RASTER_FORMATS = ("tif", "png")


def encode_raster(
    array: np.ndarray,
    crs: CRS | int,
    transform: Affine,
    fmt: str,
    lonlat_bounds: tuple[float, float, float, float],
    nodata: float | None = None,
) -> tuple[bytes, str, dict[str, str]]:
    """``array`` as a file: (bytes, media type, headers).

    ``tif``: a float32 GeoTIFF in ``crs``. ``png``: the heat ramp on EPSG:3857 over
    ``lonlat_bounds``, with an ``X-Image-Bounds: west,south,east,north`` header (lon/lat) that
    places it as a map overlay.
    """
    if fmt == "tif":
        return geotiff_bytes(array, crs, transform, nodata), "image/tiff", {}
    if fmt == "png":
        warped, (west, south, east, north) = to_web_mercator(array, crs, transform, lonlat_bounds)
        headers = {"X-Image-Bounds": f"{west:.7f},{south:.7f},{east:.7f},{north:.7f}"}
        return png_bytes(colourize(warped)), "image/png", headers
    raise ValueError(f"unknown raster format {fmt!r}; known: {', '.join(RASTER_FORMATS)}")
