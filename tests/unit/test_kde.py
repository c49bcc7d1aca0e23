"""The kernel on arrays: it keeps the mass, peaks at the Gaussian height, and points just
outside the grid still warm its edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gis.analytics.grid import RasterGrid
from gis.analytics.kde import kde

UTM_50N = 32650  # 114.05° E lies in UTM zone floor((114.05 + 180) / 6) + 1 = 50, north


def test_kernel_keeps_the_mass_and_peaks_at_the_gaussian_height() -> None:
    grid = RasterGrid(UTM_50N, 0.0, 20_000.0, 20.0, 1000, 1000)
    sigma = 200.0
    one = kde(np.array([10_010.0]), np.array([9_990.0]), grid, sigma)
    peak = 1e6 / (2 * math.pi * sigma**2)
    assert one.max() == pytest.approx(peak, rel=0.01)
    assert np.unravel_index(np.argmax(one), one.shape) == (500, 500)
    rng = np.random.default_rng(1)
    x, y = rng.normal(10_000, 500, 5000), rng.normal(10_000, 500, 5000)
    many = kde(x, y, grid, sigma)
    assert many.sum() * (20 * 20) / 1e6 == pytest.approx(5000, rel=1e-3)


def test_points_just_outside_the_grid_still_warm_its_edge() -> None:
    grid = RasterGrid(UTM_50N, 0.0, 1_000.0, 10.0, 100, 100)
    outside = kde(np.array([-50.0]), np.array([500.0]), grid, 100.0)
    assert outside[:, 0].max() > 0.5 * outside.max() > 0
