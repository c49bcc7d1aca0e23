"""Kernel density estimation on a raster grid: points binned to cells, then an FFT
convolution with a Gaussian kernel. Coordinates are metres in the grid's CRS."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import fftconvolve

from gis.analytics.grid import RasterGrid
from gis.errors import BadRequest

KERNEL_SIGMAS = 4.0
"""The kernel is cut off at this many bandwidths (it keeps > 99.9 % of its mass)."""

MAX_KERNEL_CELLS = 1_000
"""The most cells a kernel may reach from its centre."""


def kernel_radius_cells(bandwidth_m: float, cell_m: float) -> int:
    """How many cells the truncated Gaussian reaches from its centre."""
    return max(1, math.ceil(KERNEL_SIGMAS * bandwidth_m / cell_m))


def check_bandwidth(bandwidth_m: float, cell_m: float) -> None:
    """BadRequest unless ``bandwidth_m`` is at least half a cell and its kernel fits."""
    if not (math.isfinite(bandwidth_m) and bandwidth_m >= cell_m / 2):
        raise BadRequest(
            f"bandwidth_m must be at least half a cell ({cell_m / 2:g} m)",
            code="invalid_bandwidth",
        )
    if kernel_radius_cells(bandwidth_m, cell_m) > MAX_KERNEL_CELLS:
        raise BadRequest(
            f"bandwidth_m {bandwidth_m:g} is too wide for cells of {cell_m:g} m: at most "
            f"{MAX_KERNEL_CELLS * cell_m / KERNEL_SIGMAS:g} m",
            code="invalid_bandwidth",
        )


def gaussian_kernel(bandwidth_m: float, cell_m: float) -> np.ndarray:
    """A square Gaussian kernel sampled at cell offsets, summing to 1 / cell area (per m²)."""
    r = kernel_radius_cells(bandwidth_m, cell_m)
    offsets = np.arange(-r, r + 1) * cell_m
    one_d = np.exp(-0.5 * (offsets / bandwidth_m) ** 2)
    kernel = np.outer(one_d, one_d)
    return kernel / (kernel.sum() * cell_m * cell_m)


def bin_points(
    x: np.ndarray, y: np.ndarray, grid: RasterGrid, pad: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Point counts (or weight sums) per cell of ``grid`` widened by ``pad`` cells a side."""
    width, height = grid.width + 2 * pad, grid.height + 2 * pad
    col = np.floor((x - grid.minx) / grid.cell_m).astype(np.int64) + pad
    row = np.floor((grid.maxy - y) / grid.cell_m).astype(np.int64) + pad
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = row[inside] * width + col[inside]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[inside]
    counts = np.bincount(flat, weights=w, minlength=width * height)
    return counts.reshape(height, width)


def kde(
    x: np.ndarray,
    y: np.ndarray,
    grid: RasterGrid,
    bandwidth_m: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """The kernel density of the points on ``grid`` in points per km², float32 (height, width).

    Points up to the kernel's reach outside the grid still add to the cells near its edge.
    """
    check_bandwidth(bandwidth_m, grid.cell_m)
    kernel = gaussian_kernel(bandwidth_m, grid.cell_m)
    pad = kernel.shape[0] // 2
    binned = bin_points(np.asarray(x), np.asarray(y), grid, pad, weights)
    density = fftconvolve(binned, kernel, mode="same")[pad:-pad, pad:-pad]
    np.maximum(density, 0.0, out=density)
    return (density * 1e6).astype(np.float32)
