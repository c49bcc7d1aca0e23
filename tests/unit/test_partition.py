"""gis.partition: connected territories of balanced weight, checked with the h3 package."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.errors import Unprocessable
from gis.hexgrid import cover_cells
from gis.partition import partition
from tests.helpers import connected


def city_cells(res: int) -> np.ndarray:
    """A concave city with a lake, as sorted cells."""
    shape = (
        shapely.box(113.95, 22.50, 114.15, 22.62)
        .difference(shapely.Point(114.05, 22.56).buffer(0.025))
        .difference(shapely.box(114.10, 22.50, 114.15, 22.57))
    )
    return np.array(sorted(cover_cells(shape, res)), dtype=np.int64)


def hotspot_weights(cells: np.ndarray, seed: int = 1) -> np.ndarray:
    """Incident-like weights: a background and two hotspots."""
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    lat, lon = centres[:, 0], centres[:, 1]
    rate = (
        0.5
        + 20 * np.exp(-((lon - 114.0) ** 2 + (lat - 22.53) ** 2) / 0.0004)
        + 8 * np.exp(-((lon - 114.12) ** 2 + (lat - 22.60) ** 2) / 0.0002)
    )
    return np.random.default_rng(seed).poisson(rate).astype(float)


def check(cells: np.ndarray, weights: np.ndarray, labels: np.ndarray, n: int, tol: float) -> None:
    """Every territory connected (h3 adjacency) and max/mean within ``tol``, recomputed."""
    assert labels.shape == cells.shape and set(labels.tolist()) == set(range(n))
    for part in range(n):
        members = [h3.int_to_str(int(c)) for c in cells[labels == part]]
        assert connected(members), f"territory {part} is in pieces"
    loads = np.bincount(labels, weights, n)
    assert loads.max() / loads.mean() <= tol, loads


def test_twenty_balanced_connected_territories() -> None:
    cells = city_cells(9)
    weights = hotspot_weights(cells)
    result = partition(cells, weights, 20)
    check(cells, weights, result.labels, 20, 1.10)
    assert result.connected and result.balance <= 1.10


def test_by_area_on_a_concave_city() -> None:
    cells = city_cells(8)
    weights = np.array([h3.cell_area(h3.int_to_str(int(c)), "m^2") for c in cells])
    result = partition(cells, weights, 7)
    check(cells, weights, result.labels, 7, 1.10)


def test_keep_current_moves_nothing_when_balanced_and_little_for_one_more() -> None:
    cells = city_cells(9)
    weights = hotspot_weights(cells, seed=2)
    first = partition(cells, weights, 12)
    again = partition(cells, weights, 12, current=first.labels, keep_current=True)
    assert again.moved == 0
    assert (again.labels == first.labels).all()
    grown = partition(cells, weights, 13, current=first.labels, keep_current=True)
    check(cells, weights, grown.labels, 13, 1.10)
    fresh = partition(cells, weights, 13, current=first.labels)
    check(cells, weights, fresh.labels, 13, 1.10)
    assert grown.moved == int((grown.labels != first.labels).sum())
    assert grown.moved <= fresh.moved


def test_keep_current_repairs_a_territory_in_pieces() -> None:
    cells = city_cells(9)
    weights = np.ones(len(cells))
    first = partition(cells, weights, 6)
    broken = first.labels.copy()
    stray = np.flatnonzero(broken == 0)[:5]
    broken[stray] = 1
    result = partition(cells, weights, 6, current=broken, keep_current=True)
    check(cells, weights, result.labels, 6, 1.10)


def test_islands_get_their_own_territories() -> None:
    left = cover_cells(shapely.box(114.0, 22.5, 114.03, 22.53), 9)
    right = cover_cells(shapely.box(114.10, 22.5, 114.14, 22.53), 9)
    cells = np.array(sorted(left | right), dtype=np.int64)
    weights = np.ones(len(cells))
    result = partition(cells, weights, 5)
    for part in range(5):
        members = [h3.int_to_str(int(c)) for c in cells[result.labels == part]]
        assert connected(members)
    with pytest.raises(Unprocessable) as err:
        partition(cells, weights, 1)
    assert err.value.code == "too_few_territories"


@pytest.mark.parametrize(
    ("weights", "n", "code"),
    [
        ("zeros", 3, "zero_weight"),
        ("negative", 3, "invalid_weight"),
        ("ones", 0, "too_few_territories"),
        ("ones", 10_000, "too_many_territories"),
    ],
)
def test_impossible_requests_say_why(weights: str, n: int, code: str) -> None:
    cells = city_cells(7)
    values = {
        "zeros": np.zeros(len(cells)),
        "ones": np.ones(len(cells)),
        "negative": -np.ones(len(cells)),
    }[weights]
    with pytest.raises(Unprocessable) as err:
        partition(cells, values, n)
    assert err.value.code == code


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(20.0, 40.0),
    lon=st.floats(100.0, 120.0),
    radius=st.integers(6, 12),
    n=st.integers(2, 6),
    seed=st.integers(0, 10_000),
)
def test_random_blobs_split_connected_and_balanced(
    lat: float, lon: float, radius: int, n: int, seed: int
) -> None:
    centre = h3.latlng_to_cell(lat, lon, 9)
    rng = np.random.default_rng(seed)
    blob = sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, radius))
    cells = np.array(blob, dtype=np.int64)
    weights = rng.uniform(1.0, 3.0, len(cells))
    result = partition(cells, weights, n)
    check(cells, weights, result.labels, n, 1.10)


@pytest.mark.parametrize("hot_cells", [3, 4, 7])
def test_a_cluster_of_very_heavy_cells_is_split_up(hot_cells: int) -> None:
    cells = city_cells(9)
    weights = np.ones(len(cells))
    hot = h3.latlng_to_cell(22.53, 114.0, 9)
    cluster = [h3.str_to_int(c) for c in h3.grid_disk(hot, 1)][:hot_cells]
    weights[np.isin(cells, cluster)] = 0.5 * len(cells) / 20
    result = partition(cells, weights, 20)
    check(cells, weights, result.labels, 20, 1.10)
