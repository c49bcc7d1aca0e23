"""The demo city's fixed shape: Shenzhen's land outline, its districts and its urban cores.

Everything here is a constant or a pure function of constants, so the same city comes out
of every run. Distances are worked in a local metric frame (metres east and north of
``ORIGIN``), which is accurate to well under a percent over the city's extent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

SEED = 20261031
EXTENT = (113.75, 22.45, 114.35, 22.85)
ORIGIN = (114.05, 22.65)
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(ORIGIN[1]))

# A rough outline of Shenzhen's land inside the extent: the Pearl River estuary on the west,
# Shenzhen Bay, the Shenzhen River (the Hong Kong border) and Mirs Bay on the south.
LAND_OUTLINE = (
    (113.790, 22.850), (113.775, 22.800), (113.780, 22.750), (113.800, 22.700),
    (113.815, 22.650), (113.840, 22.600), (113.860, 22.560), (113.880, 22.520),
    (113.885, 22.480), (113.905, 22.470), (113.925, 22.478), (113.945, 22.500),
    (113.975, 22.512), (114.010, 22.508), (114.040, 22.512), (114.060, 22.518),
    (114.085, 22.530), (114.110, 22.535), (114.135, 22.540), (114.160, 22.548),
    (114.190, 22.552), (114.220, 22.550), (114.245, 22.560), (114.270, 22.578),
    (114.300, 22.590), (114.330, 22.598), (114.350, 22.605), (114.350, 22.800),
    (114.300, 22.810), (114.250, 22.800), (114.200, 22.820), (114.150, 22.850),
)  # fmt: skip


@dataclass(frozen=True)
class DistrictSeed:
    """A district: its division code, names, and the point its Voronoi cell grows from."""

    code: str
    name: str
    name_en: str
    lon: float
    lat: float


# Shenzhen's division codes; the last three districts are synthetic (codes 4403 9x).
DISTRICTS = (
    DistrictSeed("440303", "罗湖区", "Luohu", 114.135, 22.575),
    DistrictSeed("440304", "福田区", "Futian", 114.050, 22.545),
    DistrictSeed("440305", "南山区", "Nanshan", 113.950, 22.545),
    DistrictSeed("440306", "宝安区", "Bao'an", 113.870, 22.620),
    DistrictSeed("440307", "龙岗区", "Longgang", 114.220, 22.680),
    DistrictSeed("440308", "盐田区", "Yantian", 114.270, 22.600),
    DistrictSeed("440309", "龙华区", "Longhua", 114.040, 22.670),
    DistrictSeed("440310", "坪山区", "Pingshan", 114.330, 22.720),
    DistrictSeed("440311", "光明区", "Guangming", 113.930, 22.770),
    DistrictSeed("440391", "前海区", "Qianhai", 113.890, 22.530),
    DistrictSeed("440392", "沙井区", "Shajing", 113.820, 22.740),
    DistrictSeed("440393", "布吉区", "Buji", 114.130, 22.640),
)


@dataclass(frozen=True)
class UrbanCore:
    """A built-up centre: where it is, its share of the city's assets, its street grid."""

    name: str
    lon: float
    lat: float
    weight: float
    radius_m: float
    angle_deg: float
    block_m: float


URBAN_CORES = (
    UrbanCore("Futian", 114.055, 22.545, 0.16, 4500, 0, 220),
    UrbanCore("Luohu", 114.125, 22.560, 0.11, 3500, 15, 200),
    UrbanCore("Nanshan", 113.935, 22.535, 0.13, 5000, -10, 260),
    UrbanCore("Bao'an", 113.880, 22.590, 0.11, 5500, 30, 280),
    UrbanCore("Longhua", 114.035, 22.660, 0.10, 5500, 5, 280),
    UrbanCore("Buji", 114.120, 22.615, 0.07, 4000, -15, 260),
    UrbanCore("Longgang", 114.245, 22.715, 0.10, 6500, -20, 320),
    UrbanCore("Yantian", 114.240, 22.578, 0.04, 2500, 25, 240),
    UrbanCore("Guangming", 113.925, 22.765, 0.05, 5000, 40, 340),
    UrbanCore("Shajing", 113.830, 22.730, 0.05, 4500, 20, 320),
    UrbanCore("Pingshan", 114.330, 22.700, 0.03, 3000, 10, 320),
)

# Arterial roads between cores (indexes into URBAN_CORES).
ARTERIALS = (
    (0, 1), (0, 2), (2, 3), (3, 9), (9, 8), (0, 4), (4, 8), (1, 5), (5, 6), (6, 10),
    (1, 7), (4, 5), (7, 6),
)  # fmt: skip


def to_metres(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat to metres east and north of ``ORIGIN``."""
    return (lon - ORIGIN[0]) * M_PER_DEG_LON, (lat - ORIGIN[1]) * M_PER_DEG_LAT


def to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of ``ORIGIN`` to lon/lat."""
    return ORIGIN[0] + x / M_PER_DEG_LON, ORIGIN[1] + y / M_PER_DEG_LAT


def land() -> Polygon:
    """The land outline as a (prepared) lon/lat polygon."""
    shape = Polygon(LAND_OUTLINE)
    shapely.prepare(shape)
    return shape


def on_land(shape: Polygon, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Which lon/lat points lie on land."""
    return shapely.contains_xy(shape, lon, lat)


def district_shapes(land_shape: Polygon) -> list[MultiPolygon]:
    """The districts (in ``DISTRICTS`` order): Voronoi cells of their seeds, clipped to land.

    The Voronoi diagram is drawn in metres, so borders are true perpendicular bisectors; the
    districts tile the land outline with no gap and no overlap.
    """
    seeds = np.array([(d.lon, d.lat) for d in DISTRICTS])
    sx, sy = to_metres(seeds[:, 0], seeds[:, 1])
    metric_land = shapely.transform(land_shape, lambda c: np.column_stack(to_metres(*c.T)))
    cells = shapely.voronoi_polygons(
        shapely.multipoints(np.column_stack([sx, sy])), extend_to=metric_land.buffer(10_000)
    )
    shapes: list[MultiPolygon] = []
    for x, y in zip(sx, sy, strict=True):
        cell = next(c for c in cells.geoms if c.contains(shapely.Point(x, y)))
        clipped = shapely.transform(
            cell.intersection(metric_land), lambda c: np.column_stack(to_lonlat(*c.T))
        )
        parts = [g for g in getattr(clipped, "geoms", [clipped]) if isinstance(g, Polygon)]
        shapes.append(MultiPolygon(parts))
    return shapes


CITY_TZ = timezone(timedelta(hours=8))
END = datetime(2026, 11, 1, tzinfo=CITY_TZ)
"""The demo's "now": the end of 31 October 2026, Shenzhen time."""
END_S = int(END.timestamp())
DAY_S = 86_400


def phase_rng(phase: int) -> np.random.Generator:
    """The random stream of one generation phase: PCG64 seeded by (SEED, phase)."""
    return np.random.Generator(np.random.PCG64([SEED, phase]))
