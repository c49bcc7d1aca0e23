"""Make a source's geometries fit to store: lon/lat, valid, of the layer's type, each with
the point that gives its H3 cell. Whole arrays at a time (shapely 2, pyproj).

Every row that cannot be stored gets a Problem with its reason. Under the ``reject`` policy
any problem stops the import; ``repair`` mends invalid geometries (make_valid) and stops on
the rest; ``skip`` leaves problem rows out and reports them as rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyproj
import shapely

from etl.imports.report import Problem
from etl.imports.source_crs import geometries_to_wgs84, points_to_wgs84
from etl.imports.source_table import SourceTable

TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
POINT, LINESTRING, POLYGON = 0, 1, 3
MULTI_OF = {POINT: 4, LINESTRING: 5, POLYGON: 6}
MAKE_MULTI = {
    POINT: shapely.multipoints,
    LINESTRING: shapely.multilinestrings,
    POLYGON: shapely.multipolygons,
}


@dataclass
class PreparedGeometry:
    """Geometries ready to store (points as lon/lat arrays, others as shapely) and problems.

    ``keep`` marks the rows to write; ``lon``/``lat`` are each row's representative point.
    """

    keep: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    geoms: np.ndarray | None = None
    fatal: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)

    @property
    def is_points(self) -> bool:
        """Whether the rows are plain points held as coordinates only."""
        return self.geoms is None

    def rows(self, order: np.ndarray) -> PreparedGeometry:
        """Only the rows ``order`` names, in that order (all kept)."""
        return PreparedGeometry(
            keep=np.ones(len(order), dtype=bool),
            lon=self.lon[order],
            lat=self.lat[order],
            geoms=None if self.geoms is None else self.geoms[order],
            repaired=self.repaired,
            rejected=self.rejected,
        )


class _Sorter:
    """Files each problem as fatal or rejected by the policy, and drops rejected rows."""

    def __init__(self, table: SourceTable, policy: str, prepared: PreparedGeometry) -> None:
        self.table, self.policy, self.out = table, policy, prepared

    def unusable(self, rows: np.ndarray, reason: str | list[str]) -> None:
        reasons = [reason] * len(rows) if isinstance(reason, str) else reason
        found = [
            Problem(self.table.label(i), r) for i, r in zip(rows.tolist(), reasons, strict=True)
        ]
        (self.out.rejected if self.policy == "skip" else self.out.fatal).extend(found)
        self.out.keep[rows] = False


def prepare_geometry(
    table: SourceTable, crs: pyproj.CRS, target_type: str, policy: str
) -> PreparedGeometry:
    """The table's geometries in lon/lat, checked against ``target_type`` (a PostGIS type
    name such as POINT, MULTIPOLYGON or GEOMETRY) under ``policy``."""
    n = len(table)
    out = PreparedGeometry(keep=np.ones(n, dtype=bool), lon=np.zeros(n), lat=np.zeros(n))
    sorter = _Sorter(table, policy, out)
    target = target_type.upper()
    if table.xy is not None and target in ("POINT", "GEOMETRY"):
        lon, lat = points_to_wgs84(*table.xy, crs)
        _check_lonlat(lon, lat, np.arange(n), sorter, crs)
        out.lon, out.lat = lon, lat
        return out
    geoms = geometries_to_wgs84(shapely.force_2d(table.geometries()), crs)
    missing = shapely.is_missing(geoms)
    sorter.unusable(
        np.flatnonzero(missing), "no geometry (none in the file, or the file is damaged there)"
    )
    sorter.unusable(np.flatnonzero(~missing & shapely.is_empty(geoms)), "empty geometry")
    _check_coordinates(geoms, sorter, crs)
    geoms = _validate(geoms, table, sorter)
    geoms = _fit_type(geoms, target, sorter)
    out.geoms = geoms
    usable = np.flatnonzero(out.keep)
    if len(usable):
        anchor = shapely.get_coordinates(shapely.point_on_surface(geoms[usable]))
        out.lon[usable], out.lat[usable] = anchor[:, 0], anchor[:, 1]
    return out


def _check_lonlat(
    lon: np.ndarray, lat: np.ndarray, rows: np.ndarray, sorter: _Sorter, crs: pyproj.CRS
) -> None:
    bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    bad_rows = np.unique(rows[bad])
    if crs.is_geographic:
        reason = f"coordinates are not longitudes/latitudes in {crs.name} (is --src-crs right?)"
    else:
        reason = (
            f"coordinates do not transform from {crs.name} to lon/lat (outside the "
            "CRS's area? is --src-crs right?)"
        )
    sorter.unusable(bad_rows, reason)


def _check_coordinates(geoms: np.ndarray, sorter: _Sorter, crs: pyproj.CRS) -> None:
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    if len(coords):
        _check_lonlat(coords[:, 0], coords[:, 1], index, sorter, crs)


def _validate(geoms: np.ndarray, table: SourceTable, sorter: _Sorter) -> np.ndarray:
    rows = np.flatnonzero(sorter.out.keep)
    valid = shapely.is_valid(geoms[rows])
    invalid = rows[~valid]
    if not len(invalid):
        return geoms
    reasons = shapely.is_valid_reason(geoms[invalid]).tolist()
    if sorter.policy != "repair":
        sorter.unusable(invalid, [f"invalid geometry: {r}" for r in reasons])
        return geoms
    mended = _same_dimension(shapely.make_valid(geoms[invalid]), geoms[invalid])
    broken = shapely.is_empty(mended) | ~shapely.is_valid(mended)
    sorter.unusable(
        invalid[broken],
        [
            f"invalid geometry that cannot be repaired: {r}"
            for r, b in zip(reasons, broken, strict=True)
            if b
        ],
    )
    geoms = geoms.copy()
    geoms[invalid[~broken]] = mended[~broken]
    sorter.out.repaired.extend(
        Problem(table.label(i), f"repaired: {r}")
        for i, r, b in zip(invalid.tolist(), reasons, broken, strict=True)
        if not b
    )
    return geoms


def _same_dimension(mended: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The parts of each repaired geometry that have the original's dimension, as a single
    geometry when one part remains and a multi-geometry otherwise."""
    parts, index = shapely.get_parts(mended, return_index=True)
    dims = shapely.get_dimensions(original)
    keep = shapely.get_dimensions(parts) == dims[index]
    parts, index = parts[keep], index[keep]
    out = np.array([shapely.Polygon()] * len(mended), dtype=object)
    counts = np.bincount(index, minlength=len(mended))
    single = counts == 1
    first = np.searchsorted(index, np.arange(len(mended)))
    out[single] = parts[first[single]]
    for dim, make in (
        (0, shapely.multipoints),
        (1, shapely.multilinestrings),
        (2, shapely.multipolygons),
    ):
        multi = np.flatnonzero((counts > 1) & (dims == dim))
        if len(multi):
            take = np.isin(index, multi)
            out[multi] = make(parts[take], indices=np.searchsorted(multi, index[take]))
    return out


def _fit_type(geoms: np.ndarray, target: str, sorter: _Sorter) -> np.ndarray:
    if target == "GEOMETRY":
        return geoms
    rows = np.flatnonzero(sorter.out.keep)
    types = shapely.get_type_id(geoms[rows])
    wanted = TYPE_NAMES.index(_camel(target))
    single = next((s for s, m in MULTI_OF.items() if m == wanted), None)
    if single is not None:
        promote = rows[types == single]
        if len(promote):
            geoms = geoms.copy()
            geoms[promote] = MAKE_MULTI[single](geoms[promote], indices=np.arange(len(promote)))
        types = shapely.get_type_id(geoms[rows])
    wrong = types != wanted
    if np.any(wrong):
        reasons = [
            f"a {TYPE_NAMES[t]}, but the layer takes {_camel(target)}"
            for t in types[wrong].tolist()
        ]
        sorter.unusable(rows[wrong], reasons)
    return geoms


def _camel(postgis_type: str) -> str:
    return next(t for t in TYPE_NAMES if t.upper() == postgis_type.upper())
