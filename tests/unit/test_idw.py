"""IDW on arrays: exact at a site, the weighted mean by the formula between sites, only the
nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from gis.analytics.idw import idw
from tests.helpers import formula


def test_idw_is_exact_at_each_site() -> None:
    sx, sy, v = np.array([0.0, 100.0, 0.0]), np.array([0.0, 0.0, 100.0]), np.array([1, 5, 9.0])
    assert idw(sx, sy, v, sx, sy, 2.0).tolist() == [1.0, 5.0, 9.0]


def test_idw_between_sites_follows_the_formula() -> None:
    rng = np.random.default_rng(2)
    sx, sy, v = rng.uniform(0, 1000, 8), rng.uniform(0, 1000, 8), rng.uniform(0, 50, 8)
    qx, qy = rng.uniform(0, 1000, 50), rng.uniform(0, 1000, 50)
    sites = list(zip(sx, sy, v, strict=True))
    for power in (1.0, 2.0, 3.5):
        got = idw(sx, sy, v, qx, qy, power)
        for i in range(len(qx)):
            assert got[i] == pytest.approx(formula(qx[i], qy[i], sites, power), rel=1e-12)


def test_idw_uses_only_the_nearest_neighbors() -> None:
    sx, sy, v = np.array([0.0, 10.0, 1000.0]), np.array([0.0, 0.0, 0.0]), np.array([1, 3, 100.0])
    sites = [(0.0, 0.0, 1.0), (10.0, 0.0, 3.0)]
    assert idw(sx, sy, v, np.array([4.0]), np.array([3.0]), 2.0, neighbors=2)[0] == pytest.approx(
        formula(4.0, 3.0, sites, 2.0)
    )
