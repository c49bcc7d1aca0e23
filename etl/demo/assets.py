"""The demo city's municipal assets (部件): lamps, manholes and hydrants along the streets,
pipes under them, green areas in the blocks.

Each asset's 16-digit code is its grid cell's district code, its 4-digit class and a
6-digit serial within that district and class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from etl.copytext.ewkb import ewkb_hex
from etl.copytext.fields import json_texts, timestamp_texts
from etl.demo.city import DAY_S, END_S, M_PER_DEG_LAT, M_PER_DEG_LON, ORIGIN, on_land, to_lonlat
from etl.demo.grid import Grid
from etl.demo.streets import Streets, along_streets, block_centres, street_points
from gis.errors import BadRequest
from gis.hexgrid import latlng_cells, level_cells


@dataclass(frozen=True)
class AssetClass:
    """A component class: its code (major + minor), kind, name, owner and share of its kind."""

    code: str
    kind: str
    name: str
    department: str
    share: float


ASSET_CLASSES = (
    AssetClass("0220", "lamp", "路灯", "gd", 1.0),
    AssetClass("0101", "manhole", "上水井盖", "swj", 0.30),
    AssetClass("0102", "manhole", "污水井盖", "swj", 0.30),
    AssetClass("0103", "manhole", "雨水井盖", "swj", 0.20),
    AssetClass("0105", "manhole", "电力井盖", "gd", 0.10),
    AssetClass("0111", "manhole", "燃气井盖", "rq", 0.10),
    AssetClass("0114", "hydrant", "消防栓", "swj", 1.0),
    AssetClass("0130", "pipe", "给水管线", "swj", 0.5),
    AssetClass("0131", "pipe", "排水管线", "swj", 0.3),
    AssetClass("0132", "pipe", "燃气管线", "rq", 0.2),
    AssetClass("0505", "green_area", "绿地", "yl", 1.0),
)
KIND_COUNTS = {"lamp": 40_000, "manhole": 35_000, "hydrant": 8_000, "pipe": 12_000,
               "green_area": 5_000}  # fmt: skip
STATES = ("intact", "damaged", "lost", "removed")
# intact, damaged, lost, removed: covers go missing, pipes and green areas do not
STATE_SHARES = {"manhole": (0.88, 0.06, 0.05, 0.01), "pipe": (0.94, 0.05, 0.0, 0.01),
                "green_area": (0.93, 0.06, 0.0, 0.01)}  # fmt: skip
DEFAULT_STATE_SHARES = (0.91, 0.06, 0.01, 0.02)
POINT_OFFSETS_M = {"lamp": (7.0, 10.0), "manhole": (0.0, 3.0), "hydrant": (5.0, 9.0)}
PROPERTY_CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {
    "lamp": {"height_m": (6, 8, 10, 12), "power_w": (60, 100, 150, 250)},
    "manhole": {"diameter_mm": (600, 700, 800), "material": ("球墨铸铁", "复合材料", "混凝土")},
    "hydrant": {"type": ("地上式", "地下式"), "pressure_mpa": (0.2, 0.3, 0.4)},
    "pipe": {"diameter_mm": (100, 150, 200, 300, 400, 600), "material": ("PE", "球墨铸铁", "钢")},
    "green_area": {"maintenance": ("一级", "二级", "三级")},
}


@dataclass(frozen=True)
class Assets:
    """The ``assets`` rows, and each asset's kind, code and representative lon/lat."""

    rows: dict[str, Any]
    kind: np.ndarray
    code: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def _pipes(rng: np.random.Generator, streets: Streets, land_shape: Polygon, n: int) -> np.ndarray:
    """Candidate pipe lines: straight runs along a street with a slight kink, on land."""
    x, y, ux, uy = along_streets(streets, rng, n, (1.0, 4.0))
    length = rng.uniform(40.0, 250.0, n)
    kink = rng.normal(0.0, 1.5, n)
    xs = np.column_stack([x, x + 0.5 * length * ux - kink * uy, x + length * ux])
    ys = np.column_stack([y, y + 0.5 * length * uy + kink * ux, y + length * uy])
    lon, lat = to_lonlat(xs, ys)
    lines = shapely.linestrings(np.stack([lon, lat], axis=-1))
    return lines[on_land(land_shape, lon, lat).all(axis=1)]


def _green_areas(rng: np.random.Generator, land_shape: Polygon, n: int) -> np.ndarray:
    """Candidate green areas: rectangles inside city blocks, on land."""
    x, y, theta, block = block_centres(rng, n)
    half_w = block * rng.uniform(0.12, 0.4, n)
    half_h = block * rng.uniform(0.12, 0.4, n)
    corner_a = np.array([-1, 1, 1, -1])[None, :] * half_w[:, None]
    corner_b = np.array([-1, -1, 1, 1])[None, :] * half_h[:, None]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    lon, lat = to_lonlat(x[:, None] + corner_a * cos - corner_b * sin,
                         y[:, None] + corner_a * sin + corner_b * cos)  # fmt: skip
    polygons = shapely.polygons(np.stack([lon, lat], axis=-1))
    return polygons[on_land(land_shape, lon, lat).all(axis=1)]


def _draw(
    kind: str, rng: np.random.Generator, streets: Streets, land_shape: Polygon, n: int
) -> np.ndarray:
    """About ``n`` candidate geometries of ``kind`` (fewer once those off land are dropped)."""
    if kind == "pipe":
        return _pipes(rng, streets, land_shape, n)
    if kind == "green_area":
        return _green_areas(rng, land_shape, n)
    return shapely.points(*street_points(streets, rng, land_shape, n, POINT_OFFSETS_M[kind]))


def _geometries(
    kind: str, rng: np.random.Generator, streets: Streets, land_shape: Polygon, grid: Grid, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` geometries of ``kind`` whose representative point lies in the grid, and its cell."""
    kept: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    have = 0
    while have < n:
        geoms = _draw(kind, rng, streets, land_shape, int((n - have) * 1.3) + 16)
        rep = shapely.point_on_surface(geoms)
        cell = latlng_cells(shapely.get_x(rep), shapely.get_y(rep))
        inside = grid.locate(cell) >= 0
        kept.append(geoms[inside])
        cells.append(cell[inside])
        have += int(inside.sum())
    return np.concatenate(kept)[:n], np.concatenate(cells)[:n]


def _classes(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """A class (index into ``ASSET_CLASSES``) for every asset, by its kind's class shares."""
    out = np.empty(len(kind), dtype=np.int64)
    for k in KIND_COUNTS:
        idx = np.flatnonzero(kind == k)
        options = [i for i, c in enumerate(ASSET_CLASSES) if c.kind == k]
        shares = np.array([ASSET_CLASSES[i].share for i in options])
        out[idx] = np.array(options)[rng.choice(len(options), len(idx), p=shares / shares.sum())]
    return out


def serials(district: np.ndarray, klass: np.ndarray) -> np.ndarray:
    """1, 2, 3 ... within every (district, class) group, in input order."""
    order = np.lexsort((np.arange(len(district)), klass, district))
    key = district[order] * 1000 + klass[order]
    starts = np.r_[True, key[1:] != key[:-1]]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(key)), 0))
    out = np.empty(len(key), dtype=np.int64)
    out[order] = np.arange(len(key)) - run_start + 1
    return out


def _properties(rng: np.random.Generator, kind: np.ndarray, geoms: np.ndarray) -> list[dict]:
    """Each asset's kind-specific attributes; pipes get their length, green areas their area."""
    props: list[dict] = [{} for _ in range(len(kind))]
    for k, choices in PROPERTY_CHOICES.items():
        idx = np.flatnonzero(kind == k).tolist()
        for name, values in choices.items():
            picks = rng.integers(0, len(values), len(idx)).tolist()
            for i, p in zip(idx, picks, strict=True):
                props[i][name] = values[p]
    metric = shapely.transform(geoms, lambda c: (c - ORIGIN) * (M_PER_DEG_LON, M_PER_DEG_LAT))
    for k, name, measure in (
        ("pipe", "length_m", shapely.length),
        ("green_area", "area_m2", shapely.area),
    ):
        idx = np.flatnonzero(kind == k)
        for i, value in zip(idx.tolist(), np.round(measure(metric[idx]), 1).tolist(), strict=True):
            props[i][name] = value
    return props


def _states(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Mostly intact; some damaged, lost (manhole covers above all) or removed."""
    out = np.empty(len(kind), dtype=object)
    for k in KIND_COUNTS:
        idx = np.flatnonzero(kind == k)
        shares = STATE_SHARES.get(k, DEFAULT_STATE_SHARES)
        out[idx] = np.array(STATES, dtype=object)[rng.choice(len(STATES), len(idx), p=shares)]
    return out


def build_assets(
    rng: np.random.Generator,
    streets: Streets,
    land_shape: Polygon,
    grid: Grid,
    district_codes: list[str],
    departments: dict[str, int],
    first_id: int,
    scale: float,
) -> Assets:
    """About ``100,000 * scale`` assets over the streets, each coded by its cell's district."""
    parts = [
        (k, *_geometries(k, rng, streets, land_shape, grid, max(1, round(count * scale))))
        for k, count in KIND_COUNTS.items()
    ]
    kind = np.concatenate([np.full(len(g), k) for k, g, _ in parts])
    geoms = np.concatenate([g for _, g, _ in parts])
    cells = np.concatenate([c for _, _, c in parts])
    district = grid.district[grid.locate(cells)]
    klass = _classes(rng, kind)
    serial = serials(district, klass)
    if serial.max() > 999_999:
        raise BadRequest("the scale is too large: asset serials would pass 999999")
    classes = ASSET_CLASSES
    code = np.array([
        f"{district_codes[d]}{classes[c].code}{s:06d}"
        for d, c, s in zip(district.tolist(), klass.tolist(), serial.tolist(), strict=True)
    ])  # fmt: skip
    rep = shapely.point_on_surface(geoms)
    n = len(kind)
    rows = {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "code": code,
        "class_code": [classes[c].code for c in klass.tolist()],
        "kind": kind,
        "name": [
            f"{classes[c].name}-{s:06d}"
            for c, s in zip(klass.tolist(), serial.tolist(), strict=True)
        ],
        "state": _states(rng, kind),
        "owner_department_id": np.array(
            [departments[classes[c].department] for c in klass.tolist()]
        ),
        "properties": json_texts(_properties(rng, kind, geoms)),
        "version": np.ones(n, dtype=np.int64),
        "updated_at": timestamp_texts(END_S - rng.integers(30 * DAY_S, 720 * DAY_S, n)),
        "updated_by": ["demo"] * n,
        "h3": cells,
        **level_cells(shapely.get_x(rep), shapely.get_y(rep)),
        "geom": ewkb_hex(geoms),
    }
    return Assets(rows, kind, code, shapely.get_x(rep), shapely.get_y(rep))
