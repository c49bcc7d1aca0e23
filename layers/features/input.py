"""A write's input checked for its layer: the GeoJSON geometry (parsed, in range for its
CRS, of the layer's type, valid or repaired, transformed to the layer's SRID), the H3 cell
it stands in, and the properties by the catalog's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from gis.crs import CRS, CRS84, to_xy, transform_to_xy
from gis.errors import BadRequest, Unprocessable
from gis.hexgrid import point_cells
from gis.validation import Repair, check_range, check_type, check_valid, parse_geometry
from layers.catalog.changes import BBox
from layers.catalog.registry import Layer
from layers.features.rules import check_properties


@dataclass(frozen=True)
class PreparedWrite:
    """A checked write: the stored geometry (WKB in the layer's SRID; None keeps the stored
    one), its lon/lat bounds, its H3 cells (by column), column values, extras and any repair."""

    wkb: bytes | None
    bounds: BBox | None
    cells: dict[str, int]
    columns: dict[str, Any]
    extras: dict[str, Any]
    repaired: Repair | None


def _geometry(
    layer: Layer,
    value: Any,
    content_crs: CRS,
    repair: bool,
) -> tuple[BaseGeometry, BaseGeometry, Repair | None]:
    """(stored geometry in the layer's SRID, lon/lat geometry, repair) of a write's geometry."""
    geom = parse_geometry(value)
    axes = ("lon", "lat") if content_crs.geographic else ("x", "y")
    check_range(shapely.transform(geom, lambda c: to_xy(c, content_crs)), content_crs.srid, axes)
    lonlat = transform_to_xy(geom, content_crs, 4326)
    lonlat, repaired = check_valid(check_type(lonlat, layer.geometry_type), repair)
    lonlat = check_type(lonlat, layer.geometry_type)
    stored = lonlat if layer.srid == 4326 else transform_to_xy(lonlat, CRS84, layer.srid)
    return stored, lonlat, repaired


def _cells(layer: Layer, lonlat: BaseGeometry) -> dict[str, int]:
    """The cell of every stored resolution (column: cell) containing the point, or a line's
    or polygon's point on surface."""
    columns = layer.cell_columns
    if not columns:
        return {}
    point = lonlat if lonlat.geom_type == "Point" else lonlat.representative_point()
    cells = point_cells(point.x, point.y, columns)
    return {columns[r]: cell for r, cell in cells.items()}


def prepare_write(
    layer: Layer, body: Any, content_crs: CRS, repair: bool, keep_geometry: bool = False
) -> PreparedWrite:
    """A feature body checked for ``layer``: geometry, properties, domain rules; 4xx else.

    With ``keep_geometry`` the body has no geometry and the stored one stays as it is.
    """
    if not isinstance(body, dict) or body.get("type", "Feature") != "Feature":
        raise BadRequest(
            'the body must be a GeoJSON Feature ({"type": "Feature", '
            '"geometry": ..., "properties": {...}})',
            code="invalid_feature",
        )
    checked = check_properties(layer, body.get("properties"))
    if keep_geometry:
        return PreparedWrite(None, None, {}, checked.columns, checked.extras, None)
    if body.get("geometry") is None:
        raise Unprocessable("a feature of this layer needs a geometry", code="invalid_geometry")
    stored, lonlat, repaired = _geometry(layer, body["geometry"], content_crs, repair)
    return PreparedWrite(
        shapely.to_wkb(stored),
        tuple(lonlat.bounds),
        _cells(layer, lonlat),
        checked.columns,
        checked.extras,
        repaired,
    )
