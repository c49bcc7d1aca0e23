"""The demo city's synthetic street network, and where things stand along it.

Each urban core gets a rotated street grid, densest at its centre, and arterials join the
cores. Segments carry a weight (their share of the city's street furniture), so sampling
puts most lamps, manholes and incidents in the busy centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon

from etl.demo.city import ARTERIALS, URBAN_CORES, UrbanCore, on_land, to_lonlat, to_metres

DROPOUT = 0.15
ARTERIAL_SHARE = 0.05
ARTERIAL_PIECE_M = 300.0


@dataclass(frozen=True)
class Streets:
    """Street segments in metres (see ``demo_city.to_metres``) and their sampling weights."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.x0)


def _core_centre(core: UrbanCore) -> tuple[float, float]:
    x, y = to_metres(np.array([core.lon]), np.array([core.lat]))
    return float(x[0]), float(y[0])


def _core_grid(core: UrbanCore, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One core's block-long street segments (both directions) and their weights."""
    b, radius = core.block_m, core.radius_m
    k_max = int(radius // b)
    k, j = np.meshgrid(np.arange(-k_max, k_max + 1), np.arange(-k_max, k_max), indexing="ij")
    k, j = k.ravel(), j.ravel()
    dist = np.hypot(k * b, (j + 0.5) * b)
    inside = dist <= radius
    k, j, dist = k[inside], j[inside], dist[inside]
    # along/across coordinates of both street families in the core's rotated frame
    along0 = np.concatenate([j * b, k * b])
    across0 = np.concatenate([k * b, j * b])
    along1 = np.concatenate([(j + 1) * b, k * b])
    across1 = np.concatenate([k * b, (j + 1) * b])
    dist = np.concatenate([dist, dist])
    arterial = np.concatenate([k, k]) % 4 == 0
    keep = arterial | (rng.random(len(dist)) > DROPOUT)
    theta = np.radians(core.angle_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    cx, cy = _core_centre(core)
    x0 = cx + along0 * cos - across0 * sin
    y0 = cy + along0 * sin + across0 * cos
    x1 = cx + along1 * cos - across1 * sin
    y1 = cy + along1 * sin + across1 * cos
    weight = np.exp(-((dist / (0.5 * radius)) ** 2))
    weight = core.weight * weight / weight[keep].sum()
    return x0[keep], y0[keep], x1[keep], y1[keep], weight[keep]


def _arterial(a: UrbanCore, b: UrbanCore) -> tuple[np.ndarray, ...]:
    """A straight road between two cores, in pieces, weighted by length."""
    ax, ay = _core_centre(a)
    bx, by = _core_centre(b)
    pieces = max(1, int(np.hypot(bx - ax, by - ay) // ARTERIAL_PIECE_M))
    t = np.linspace(0.0, 1.0, pieces + 1)
    xs, ys = ax + t * (bx - ax), ay + t * (by - ay)
    return xs[:-1], ys[:-1], xs[1:], ys[1:], np.hypot(np.diff(xs), np.diff(ys))


def build_streets(rng: np.random.Generator, land_shape: Polygon) -> Streets:
    """The whole network: every core's grid plus the arterials, kept where it is on land."""
    parts = [_core_grid(core, rng) for core in URBAN_CORES]
    arterials = [_arterial(URBAN_CORES[i], URBAN_CORES[j]) for i, j in ARTERIALS]
    total = sum(float(p[4].sum()) for p in arterials)
    parts += [(*p[:4], ARTERIAL_SHARE * p[4] / total) for p in arterials]
    x0, y0, x1, y1, weight = (np.concatenate(col) for col in zip(*parts, strict=True))
    mid_lon, mid_lat = to_lonlat((x0 + x1) / 2, (y0 + y1) / 2)
    keep = on_land(land_shape, mid_lon, mid_lat)
    weight = weight[keep] / weight[keep].sum()
    return Streets(x0[keep], y0[keep], x1[keep], y1[keep], weight)


def along_streets(
    streets: Streets, rng: np.random.Generator, n: int, offset_m: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points on weighted random segments, ``offset_m`` to either side of the kerb line.

    Returns x, y (metres) and the unit direction (ux, uy) of the street at each point.
    """
    seg = rng.choice(len(streets), size=n, p=streets.weight)
    dx = streets.x1[seg] - streets.x0[seg]
    dy = streets.y1[seg] - streets.y0[seg]
    length = np.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    t = rng.random(n)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    offset = side * rng.uniform(offset_m[0], offset_m[1], n)
    x = streets.x0[seg] + t * dx - offset * uy
    y = streets.y0[seg] + t * dy + offset * ux
    return x, y, ux, uy


def street_points(
    streets: Streets,
    rng: np.random.Generator,
    land_shape: Polygon,
    n: int,
    offset_m: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lon/lat points along the streets, all on land."""
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    have = 0
    while have < n:
        x, y, _, _ = along_streets(streets, rng, int((n - have) * 1.2) + 16, offset_m)
        lon, lat = to_lonlat(x, y)
        keep = on_land(land_shape, lon, lat)
        lons.append(lon[keep])
        lats.append(lat[keep])
        have += int(keep.sum())
    return np.concatenate(lons)[:n], np.concatenate(lats)[:n]


def block_centres(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres (metres) of ``n`` random city blocks, with their grid angle and block size."""
    weights = np.array([c.weight for c in URBAN_CORES])
    core = rng.choice(len(URBAN_CORES), size=n, p=weights / weights.sum())
    block = np.array([c.block_m for c in URBAN_CORES])[core]
    spread = 0.45 * np.array([c.radius_m for c in URBAN_CORES])[core]
    theta = np.radians(np.array([c.angle_deg for c in URBAN_CORES])[core])
    along = (np.floor(rng.normal(0.0, spread) / block) + 0.5) * block
    across = (np.floor(rng.normal(0.0, spread) / block) + 0.5) * block
    centres = np.array([_core_centre(c) for c in URBAN_CORES])[core]
    x = centres[:, 0] + along * np.cos(theta) - across * np.sin(theta)
    y = centres[:, 1] + along * np.sin(theta) + across * np.cos(theta)
    return x, y, theta, block
