"""Spatial queries over HTTP: nearest, within a radius, intersecting a shape.

This module only translates HTTP: the queries are layers.features.spatial_queries.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gis.crs import parse_crs
from gis.errors import BadRequest
from layers.catalog.registry import load_catalog
from layers.features.spatial_queries import (
    MAX_K,
    MAX_NEAREST_M,
    MAX_RADIUS_M,
    MAX_WITHIN_RESULTS,
    Hit,
    intersects_layers,
    nearest,
    within,
)
from spatial_api.bodies import read_json
from spatial_api.deps import LazyCaller, QueriedLayer, ReadEngine, readable
from spatial_api.openapi import errors
from spatial_api.responses import GEOJSON, JSON, json_response

router = APIRouter(prefix="/query", tags=["queries"], responses=errors(404))
MAX_BODY = 5 * 1024 * 1024
FILTER = Query(None, alias="filter", description="A CQL2 filter on the layer's properties")
FILTER_LANG = Query("cql2-text", alias="filter-lang")
INTERSECTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["layers", "geometry"],
                    "properties": {
                        "layers": {"type": "array", "items": {"type": "string"}},
                        "geometry": {"type": "object", "description": "A GeoJSON geometry"},
                        "crs": {"type": "string", "description": "Its CRS (default CRS84)"},
                    },
                }
            }
        },
    }
}


def hits_response(layer_id: str, hits: list[Hit], extra: dict[str, Any]) -> Response:
    """A FeatureCollection of hits, each with ``distance_m`` among its properties."""
    body = {
        "type": "FeatureCollection",
        "layer": layer_id,
        "features": [h.as_json() for h in hits],
        "numberReturned": len(hits),
        **extra,
    }
    return json_response(body, media_type=GEOJSON)


@router.get(
    "/nearest",
    response_class=Response,
    summary="The k features of a layer nearest to a point, with distances in metres",
)
async def nearest_features(
    layer: QueriedLayer,
    engine: ReadEngine,
    lon: float = Query(..., description="WGS 84 longitude"),
    lat: float = Query(..., description="WGS 84 latitude"),
    k: int = Query(10, description=f"How many, 1..{MAX_K}"),
    max_m: float | None = Query(
        None, description=f"Only within this many metres (at most {MAX_NEAREST_M:g})"
    ),
    filter_: str | None = FILTER,
    filter_lang: str = FILTER_LANG,
) -> Response:
    """Nearest first; ``distance_m`` is the true distance on the WGS 84 spheroid."""
    hits = await nearest(engine, layer, lon, lat, k, max_m, filter_, filter_lang)
    return hits_response(layer.id, hits, {"k": k})


@router.get(
    "/within", response_class=Response, summary="The features of a layer within a radius of a point"
)
async def features_within(
    layer: QueriedLayer,
    engine: ReadEngine,
    lon: float = Query(...),
    lat: float = Query(...),
    radius_m: float = Query(..., description=f"Metres, at most {MAX_RADIUS_M:g}"),
    limit: int = Query(1_000, description=f"At most {MAX_WITHIN_RESULTS}"),
    filter_: str | None = FILTER,
    filter_lang: str = FILTER_LANG,
) -> Response:
    """Nearest first with ``distance_m``; ``limited`` says whether more matched."""
    hits, limited = await within(engine, layer, lon, lat, radius_m, filter_, filter_lang, limit)
    return hits_response(layer.id, hits, {"radius_m": radius_m, "limited": limited})


@router.post(
    "/intersects",
    response_class=Response,
    summary="For each layer, the features intersecting a GeoJSON geometry",
    openapi_extra=INTERSECTS_BODY,
    responses=errors(413, 415, 422),
)
async def features_intersecting(
    request: Request, caller: LazyCaller, engine: ReadEngine
) -> Response:
    """Body ``{"layers": [...], "geometry": {...}, "crs": "..."}``; one FeatureCollection
    per layer. The caller is looked up after the body is read, once a layer is named."""
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict) or "geometry" not in body or "layers" not in body:
        raise BadRequest(
            'the body must be {"layers": [...], "geometry": {...}, "crs"?}', code="invalid_body"
        )
    names = body["layers"]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("layers must be a list of layer ids", code="invalid_body")
    catalog = load_catalog()
    layers = [readable(catalog.get(name), await caller()) for name in dict.fromkeys(names)]
    results = await intersects_layers(engine, layers, body["geometry"], parse_crs(body.get("crs")))
    parts = []
    for name, (features, limited) in results.items():
        meta = orjson.dumps(
            {"layer": name, "numberReturned": len(features), "limited": limited}
        ).decode()[1:]
        parts.append(
            f'"{name}":{{"type":"FeatureCollection","features":[' + ",".join(features) + "]," + meta
        )
    return Response('{"layers":{' + ",".join(parts) + "}}", media_type=JSON)
