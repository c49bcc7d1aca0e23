"""``cell_ring``: the cells around a tile, against a bit-by-bit Morton number of every cell of
the 3 × 3 tiles around it that borders the tile."""

from __future__ import annotations

import pytest

from gis.tilemath import cell_ring


def morton(col: int, row: int) -> int:
    """Bit i of ``col`` to bit 2i, bit i of ``row`` to bit 2i + 1, one bit at a time."""
    return sum(((col >> i) & 1) << (2 * i) | ((row >> i) & 1) << (2 * i + 1) for i in range(24))


@pytest.mark.parametrize(
    "z,x,y", [(16, 53530, 28529), (13, 6688, 3569), (0, 0, 0), (1, 0, 1), (14, 16383, 0)]
)
def test_ring_is_the_bordering_cells_on_the_map(z: int, x: int, y: int) -> None:
    n, size = 16, 1 << (z + 4)
    expected = {
        morton(c, r)
        for c in range(x * n - 1, x * n + n + 1)
        for r in range(y * n - 1, y * n + n + 1)
        if 0 <= c < size
        and 0 <= r < size
        and not (x * n <= c < x * n + n and y * n <= r < y * n + n)
    }
    ring = cell_ring(z, x, y, 4)
    assert len(ring) == len(set(ring))
    assert set(ring) == expected
    assert len(ring) == {0: 0, 1: 33, 14: 33}.get(z, 68)
