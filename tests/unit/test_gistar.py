"""Getis-Ord Gi* against the formula written out with plain loops on a hand-made grid."""

from __future__ import annotations

import random

import h3
import numpy as np
import pytest

from gis.analytics.gistar import gi_star, kring_weights
from gis.errors import Unprocessable
from tests.helpers import direct_gi_star, two_sided

CENTRE = h3.latlng_to_cell(22.54, 114.05, 9)


def hand_made_grid() -> tuple[list[str], list[float]]:
    """37 cells (a 3-ring) with a hot cluster at the centre and a cold patch at one edge."""
    cells = sorted(h3.grid_disk(CENTRE, 3))
    rng = random.Random(11)
    values = []
    for c in cells:
        d = h3.grid_distance(CENTRE, c)
        values.append({0: 40.0, 1: 25.0}.get(d, float(rng.randint(0, 6))))
    return cells, values


def expected_class(z: float, p: float) -> int:
    """ArcGIS Gi_Bin: +-3 at 99 %, +-2 at 95 %, +-1 at 90 % confidence, else 0."""
    level = 3 if p <= 0.01 else 2 if p <= 0.05 else 1 if p <= 0.10 else 0
    return level if z > 0 else -level


@pytest.mark.parametrize("k", [1, 2])
def test_z_and_p_match_the_formula(k: int) -> None:
    cells, values = hand_made_grid()
    ints = np.array([h3.str_to_int(c) for c in cells], dtype=np.int64)
    result = gi_star(ints, np.array(values), k)
    expected = dict(zip(cells, direct_gi_star(cells, values, k), strict=True))
    triples = zip(result.cells, result.z, result.p, strict=True)
    got = {h3.int_to_str(int(c)): (z, p) for c, z, p in triples}
    assert set(got) == set(expected)
    for cell, z in expected.items():
        assert got[cell][0] == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert got[cell][1] == pytest.approx(two_sided(z), rel=1e-9, abs=1e-15)
    assert got[CENTRE][0] > 1.96, "the planted cluster must be a hotspot"


def test_classes_follow_the_confidence_levels() -> None:
    cells, values = hand_made_grid()
    ints = np.array([h3.str_to_int(c) for c in cells], dtype=np.int64)
    result = gi_star(ints, np.array(values), 1)
    for z, p, cls in zip(result.z, result.p, result.classes, strict=True):
        assert cls == expected_class(z, p)
    assert result.classes[list(result.cells).index(h3.str_to_int(CENTRE))] == 3


def test_input_order_does_not_matter() -> None:
    cells, values = hand_made_grid()
    ints = np.array([h3.str_to_int(c) for c in cells], dtype=np.int64)
    perm = np.random.default_rng(3).permutation(len(ints))
    a = gi_star(ints, np.array(values), 1)
    b = gi_star(ints[perm], np.array(values)[perm], 1)
    assert np.array_equal(a.cells, b.cells)
    assert np.allclose(a.z, b.z)


def benjamini_hochberg(p: list[float], alpha: float) -> list[bool]:
    """BH by the textbook: reject the m smallest where m is the largest i with p_(i) <= i a / n."""
    n = len(p)
    ranked = sorted(range(n), key=lambda i: p[i])
    m = 0
    for rank, i in enumerate(ranked, start=1):
        if p[i] <= rank * alpha / n:
            m = rank
    rejected = [False] * n
    for i in ranked[:m]:
        rejected[i] = True
    return rejected


def test_fdr_classes_follow_benjamini_hochberg() -> None:
    rng = np.random.default_rng(5)
    cells = sorted(h3.grid_disk(CENTRE, 6))
    ints = np.array([h3.str_to_int(c) for c in cells], dtype=np.int64)
    values = rng.poisson(3, len(cells)).astype(float)
    for c in h3.grid_disk(CENTRE, 1):
        values[cells.index(c)] += 12
    plain = gi_star(ints, values, 1)
    fdr = gi_star(ints, values, 1, fdr=True)
    p = plain.p.tolist()
    for level, alpha in ((1, 0.10), (2, 0.05), (3, 0.01)):
        rejected = benjamini_hochberg(p, alpha)
        for i, cls in enumerate(fdr.classes):
            assert (abs(int(cls)) >= level) == rejected[i]
    assert np.count_nonzero(fdr.classes) <= np.count_nonzero(plain.classes)


def test_constant_values_are_not_significant() -> None:
    ints = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 2)), dtype=np.int64)
    result = gi_star(ints, np.full(len(ints), 4.0), 1)
    assert np.all(result.z == 0) and np.all(result.classes == 0)


def test_too_small_or_duplicated_study_area_is_refused() -> None:
    one = np.array([h3.str_to_int(CENTRE)], dtype=np.int64)
    with pytest.raises(Unprocessable):
        gi_star(one, np.array([1.0]), 1)
    with pytest.raises(Unprocessable):
        gi_star(np.concatenate([one, one]), np.array([1.0, 2.0]), 1)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_kring_weights_are_the_grid_disks(k: int) -> None:
    """The vectorised weights (local IJ offsets) equal h3.grid_disk cell by cell, over a
    study area with holes and ragged edges, and near a pentagon (where IJ is not used)."""
    rng = np.random.default_rng(k)
    city = np.array(sorted(h3.grid_disk(CENTRE, 12)), dtype=object)
    city = city[rng.random(len(city)) < 0.8]
    pentagon = sorted(h3.get_pentagons(9))[3]
    near = sorted(h3.grid_disk(pentagon, 6))
    for area in (city.tolist(), near):
        ints = np.array(sorted(h3.str_to_int(c) for c in area), dtype=np.int64)
        weights = kring_weights(ints, k).tocsr()
        index = {int(c): i for i, c in enumerate(ints)}
        for i, c in enumerate(ints.tolist()):
            expected = sorted(index[h3.str_to_int(n)] for n in h3.grid_disk(h3.int_to_str(c), k)
                              if h3.str_to_int(n) in index)  # fmt: skip
            row = weights.indices[weights.indptr[i] : weights.indptr[i + 1]]
            assert sorted(row.tolist()) == expected
            assert (weights.data[weights.indptr[i] : weights.indptr[i + 1]] == 1).all()
