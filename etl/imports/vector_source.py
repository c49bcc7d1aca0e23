"""Read GeoJSON, GeoPackage, Shapefile and FlatGeobuf layers with pyogrio (GDAL) into arrays.

A file GDAL cannot read, a layer that is not there, or a file shorter than its own header
says (a truncated FlatGeobuf) is an Unprocessable error that names the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import (
    CRSError,
    DataLayerError,
    DataSourceError,
    FeatureError,
    FieldError,
    GeometryError,
)

from etl.imports.source_table import SourceTable
from gis.errors import BadRequest, Unprocessable

READ_ERRORS = (
    DataSourceError,
    DataLayerError,
    FeatureError,
    FieldError,
    GeometryError,
    CRSError,
    OSError,
    RuntimeError,
    ValueError,
)
OGR_KINDS = {
    "OFTInteger": "integer",
    "OFTInteger64": "integer",
    "OFTReal": "number",
    "OFTString": "string",
    "OFTDateTime": "datetime",
    "OFTDate": "date",
    "OFTTime": "string",
}
# a 2D little-endian WKB point is 21 bytes: byte order 1, type 1, x, y
WKB_POINT_SIZE = 21


def unreadable(path: Path, exc: BaseException) -> Unprocessable:
    """The error for a file GDAL cannot read (damaged, truncated, not the format it claims)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Unprocessable(
        f"cannot read {path.name}: {reason} (the file may be truncated or damaged, or not "
        "in the format its name says)",
        code="unreadable_file",
    )


def choose_layer(path: Path, wanted: str | None) -> str | None:
    """The layer to read: ``wanted`` (checked), the only one, or an error listing them."""
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from exc
    if wanted is not None:
        if wanted not in layers:
            raise BadRequest(
                f"{path.name} has no layer {wanted!r}; its layers: {', '.join(layers)}",
                code="unknown_source_layer",
            )
        return wanted
    if len(layers) > 1:
        raise BadRequest(
            f"{path.name} holds {len(layers)} layers ({', '.join(layers)}): "
            "name one with --source-layer",
            code="ambiguous_source_layer",
        )
    return layers[0] if layers else None


def field_kinds(meta: dict) -> dict[str, str]:
    """What each field holds, from its OGR type and subtype."""
    kinds = {}
    for name, ogr_type, subtype in zip(
        meta["fields"], meta["ogr_types"], meta["ogr_subtypes"], strict=True
    ):
        kind = OGR_KINDS.get(ogr_type, "string")
        if subtype == "OFSTBoolean":
            kind = "boolean"
        elif subtype == "OFSTJSON":
            kind = "object"
        kinds[str(name)] = kind
    return kinds


def wkb_points(wkb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """x and y of an array of 2D little-endian WKB points without nulls; None otherwise."""
    try:
        blob = b"".join(wkb)
    except TypeError:
        return None
    if len(blob) != WKB_POINT_SIZE * len(wkb):
        return None
    rows = np.frombuffer(blob, dtype=np.uint8).reshape(len(wkb), WKB_POINT_SIZE)
    kinds = rows[:, 1:5].copy().view("<u4").ravel()
    if not (np.all(rows[:, 0] == 1) and np.all(kinds == 1)):
        return None
    coords = rows[:, 5:].copy().view("<f8")
    return coords[:, 0].copy(), coords[:, 1].copy()


def read_vector(path: Path, source_layer: str | None = None) -> SourceTable:
    """Every feature of one layer of a vector file, with its fields and declared CRS."""
    layer = choose_layer(path, source_layer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            meta, _, wkb, fields = pyogrio.raw.read(
                path, layer=layer, datetime_as_string=True, force_2d=True
            )
            declared = pyogrio.read_info(path, layer=layer)["features"]
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from exc
    if wkb is None:
        raise Unprocessable(f"{path.name} has no geometry column", code="no_geometry")
    if declared >= 0 and declared != len(wkb):
        raise Unprocessable(
            f"cannot read {path.name}: its header announces {declared} features but only "
            f"{len(wkb)} could be read (the file is truncated or damaged)",
            code="unreadable_file",
        )
    xy = wkb_points(wkb)
    geometry = None if xy is not None else shapely.from_wkb(wkb, on_invalid="ignore")
    return SourceTable(
        columns={str(n): v for n, v in zip(meta["fields"], fields, strict=True)},
        geometry=geometry,
        xy=xy,
        declared_crs=meta.get("crs") or None,
        kinds=field_kinds(meta),
    )
