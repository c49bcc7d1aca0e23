"""Getis-Ord Gi* hotspot statistics on H3 cells with binary k-ring weights.

For cell i with neighbourhood N_i (every cell within grid distance k, the cell itself
included, restricted to the study area), binary weights w_ij = 1 for j in N_i:

    Gi* = (sum_j w_ij x_j - mean * W_i) / (S * sqrt((n * W_i - W_i**2) / (n - 1)))

with W_i = sum_j w_ij (binary weights, so sum_j w_ij**2 = W_i), n the number of cells in
the study area, mean their mean value and S = sqrt(sum_j x_j**2 / n - mean**2). Gi* is a
z-score; p is two-sided from the standard normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3
import numpy as np
import scipy.sparse as sp
from h3.api import basic_int as h3i
from scipy.stats import norm

from gis.errors import Unprocessable

CONFIDENCE_LEVELS = (0.99, 0.95, 0.90)
"""Confidence levels of the hot/cold classes, strongest first: class ±3, ±2, ±1."""

CLASS_LABELS = {
    3: "hot_99",
    2: "hot_95",
    1: "hot_90",
    0: "not_significant",
    -1: "cold_90",
    -2: "cold_95",
    -3: "cold_99",
}


@dataclass(frozen=True)
class GiStarResult:
    """Gi* of every study-area cell: z-score, two-sided p-value and class (-3 .. 3)."""

    cells: np.ndarray
    values: np.ndarray
    z: np.ndarray
    p: np.ndarray
    classes: np.ndarray


def ring_offsets(k: int) -> np.ndarray:
    """The (di, dj) offsets in H3 local IJ coordinates of every cell within grid distance
    ``k`` (the distance of an offset is (|di| + |dj| + |di - dj|) / 2)."""
    di, dj = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij")
    near = (np.abs(di) + np.abs(dj) + np.abs(di - dj)) <= 2 * k
    return np.stack([di[near], dj[near]], axis=1)


def local_ij(cells: np.ndarray) -> np.ndarray | None:
    """The local IJ coordinates of ``cells`` around their middle cell, (n, 2) int64; None
    when H3 cannot unfold them into one plane (a pentagon among them or too far apart)."""
    origin = int(cells[len(cells) // 2])
    try:
        pairs = [h3i.cell_to_local_ij(origin, c) for c in cells.tolist()]
    except h3.H3BaseException:
        return None
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def pentagon_within(cells: np.ndarray, ij: np.ndarray, k: int) -> bool:
    """Whether a pentagon of the cells' resolution lies in the IJ box of ``cells`` widened by
    ``k`` (around a pentagon the IJ plane is cut, so offsets do not give grid distance)."""
    origin = int(cells[len(cells) // 2])
    lo, hi = ij.min(axis=0) - k, ij.max(axis=0) + k
    for pentagon in h3i.get_pentagons(h3i.get_resolution(origin)):
        try:
            at = np.array(h3i.cell_to_local_ij(origin, pentagon))
        except h3.H3BaseException:
            continue
        if (at >= lo).all() and (at <= hi).all():
            return True
    return False


def kring_weights(cells: np.ndarray, k: int) -> sp.csr_matrix:
    """Binary weights: w_ij = 1 when cell j lies within grid distance ``k`` of cell i.

    ``cells`` must be sorted and unique; neighbours outside ``cells`` are left out. The
    neighbours are found with array operations on the cells' local IJ coordinates (as H3's
    own grid distance does); where H3 cannot unfold the cells into one plane, with
    ``grid_disk`` per cell.
    """
    n = len(cells)
    ij = local_ij(cells) if n else None
    if ij is None or pentagon_within(cells, ij, k):
        return _kring_weights_by_disk(cells, k)
    lo = ij.min(axis=0) - k
    span = int(ij[:, 1].max() - lo[1] + k + 1)
    keys = (ij[:, 0] - lo[0]) * span + (ij[:, 1] - lo[1])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    rows, cols = [], []
    for di, dj in ring_offsets(k).tolist():
        wanted = keys + di * span + dj
        at = np.minimum(np.searchsorted(sorted_keys, wanted), n - 1)
        hit = sorted_keys[at] == wanted
        rows.append(np.nonzero(hit)[0])
        cols.append(order[at[hit]])
    row, col = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(row)), (row, col)), shape=(n, n))


def _kring_weights_by_disk(cells: np.ndarray, k: int) -> sp.csr_matrix:
    """kring_weights with one ``grid_disk`` call per cell (for cells H3 cannot unfold)."""
    disks = [h3i.grid_disk(int(c), k) for c in cells.tolist()]
    sizes = np.fromiter(map(len, disks), dtype=np.int64, count=len(disks))
    flat = np.fromiter((n for disk in disks for n in disk), dtype=np.int64, count=int(sizes.sum()))
    rows = np.repeat(np.arange(len(cells)), sizes)
    cols = np.searchsorted(cells, flat)
    cols_clipped = np.minimum(cols, len(cells) - 1)
    inside = cells[cols_clipped] == flat
    data = np.ones(int(inside.sum()), dtype=np.float64)
    shape = (len(cells), len(cells))
    return sp.csr_matrix((data, (rows[inside], cols_clipped[inside])), shape=shape)


def gi_star_z(values: np.ndarray, weights: sp.csr_matrix) -> np.ndarray:
    """The Gi* z-score of every cell for ``values`` under binary ``weights``."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise Unprocessable("Gi* needs a study area of at least two cells", code="too_few_cells")
    mean = x.mean()
    s = np.sqrt(max((x * x).mean() - mean * mean, 0.0))
    w_sum = np.asarray(weights.sum(axis=1)).ravel()
    local = weights @ x
    denom = s * np.sqrt(np.maximum(n * w_sum - w_sum * w_sum, 0.0) / (n - 1))
    z = np.zeros(n)
    defined = denom > 0
    z[defined] = (local[defined] - mean * w_sum[defined]) / denom[defined]
    return z


def two_sided_p(z: np.ndarray) -> np.ndarray:
    """Two-sided p-value of standard normal z-scores."""
    return 2.0 * norm.sf(np.abs(z))


def bh_significant(p: np.ndarray, alpha: float) -> np.ndarray:
    """Which tests the Benjamini–Hochberg procedure rejects at false-discovery rate ``alpha``."""
    n = len(p)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha * np.arange(1, n + 1) / n
    keep = np.zeros(n, dtype=bool)
    if passed.any():
        last = int(np.nonzero(passed)[0][-1])
        keep[order[: last + 1]] = True
    return keep


def classify(z: np.ndarray, p: np.ndarray, fdr: bool = False) -> np.ndarray:
    """Hot (+) / cold (-) class 3, 2, 1 at 99, 95, 90 % confidence; 0 when not significant.

    With ``fdr`` each level's threshold comes from the Benjamini–Hochberg procedure.
    """
    classes = np.zeros(len(z), dtype=np.int8)
    for strength, level in zip((1, 2, 3), CONFIDENCE_LEVELS[::-1], strict=True):
        alpha = 1.0 - level
        significant = bh_significant(p, alpha) if fdr else p <= alpha
        classes[significant] = strength
    return (classes * np.sign(z)).astype(np.int8)


def gi_star(cells: np.ndarray, values: np.ndarray, k: int, fdr: bool = False) -> GiStarResult:
    """Gi* hotspots over the study area ``cells`` (H3 ints) with ``values`` (same order)."""
    cells = np.asarray(cells, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if cells.shape != values.shape:
        raise Unprocessable("cells and values differ in length", code="shape_mismatch")
    order = np.argsort(cells, kind="stable")
    cells, values = cells[order], values[order]
    if len(cells) > 1 and (np.diff(cells) == 0).any():
        raise Unprocessable("the study area lists a cell twice", code="duplicate_cells")
    z = gi_star_z(values, kring_weights(cells, k))
    p = two_sided_p(z)
    return GiStarResult(cells, values, z, p, classify(z, p, fdr))
