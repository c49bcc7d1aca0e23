"""OGC API - Features over HTTP: Part 1 Core, Part 2 CRS, Part 3 Filtering, Part 4 Create,
Replace, Update, Delete; plus feature history and restore.

This module only translates HTTP: the repository is layers.features (repository, history).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.crs import CRS84, parse_crs, served_crs_uris, transform_bbox
from gis.errors import BadRequest
from layers.catalog.metadata import layer_extent, queryables
from layers.catalog.registry import Layer, load_catalog
from layers.features.filters import DEFAULT_LIMIT, ItemQuery
from layers.features.gml_schema import gml_schema
from layers.features.history import list_history, restore_version
from layers.features.repository import (
    MAX_LIMIT,
    WriteResult,
    create_feature,
    delete_feature,
    get_feature,
    parse_feature_id,
    query_features,
    update_feature,
)
from spatial_api.auth import Principal
from spatial_api.bodies import read_json
from spatial_api.deps import (
    Caller,
    EditableLayer,
    Engine,
    HistoryLayer,
    ReadableLayer,
    ReadEngine,
)
from spatial_api.openapi import errors
from spatial_api.params import INT_MAX, Offset
from spatial_api.proxies import public_base_url
from spatial_api.responses import (
    GEOJSON,
    JSON,
    MERGE_PATCH,
    SCHEMA_JSON,
    SchemaJSONResponse,
    json_response,
)
from spatial_api.schemas.features import (
    Collection,
    Collections,
    Conformance,
    FeatureHistory,
    Queryables,
)

router = APIRouter(tags=["features"])

MAX_BODY = 20 * 1024 * 1024
XML = "application/xml"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
]
LANDING_LINKS = [
    ("conformance", "/conformance", "The conformance classes this server implements"),
    ("data", "/collections", "The layers as OGC API Features collections"),
]
IF_MATCH = Header(None, alias="If-Match", description="The feature's current ETag")
FEATURE_SCHEMA = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"enum": ["Feature"]},
        "geometry": {"type": "object", "description": "A GeoJSON geometry (in Content-Crs)"},
        "properties": {"type": "object"},
    },
}
FEATURE_BODY = {
    "requestBody": {
        "required": True,
        "content": {GEOJSON: {"schema": FEATURE_SCHEMA}, JSON: {"schema": FEATURE_SCHEMA}},
    }
}
PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            MERGE_PATCH: {"schema": {"type": "object"}},
            JSON: {"schema": {"type": "object"}},
            GEOJSON: {"schema": {"type": "object"}},
        },
    }
}
WRITE_ERRORS = errors(409, 413, 415, 422)
"""What a write of a feature can answer beyond the errors of every conditional write."""
ITEM_PARAMS = {
    "bbox",
    "bbox-crs",
    "limit",
    "offset",
    "datetime",
    "properties",
    "filter",
    "filter-lang",
    "filter-crs",
    "crs",
    "f",
}


# --------------------------------------------------------------------------- helpers


def base_url(request: Request) -> str:
    """This server's root URL as its clients reach it, without a trailing slash."""
    return public_base_url(request)


def collection_json(request: Request, layer: Layer, extent: list[float] | None) -> dict:
    """The collection description of one layer."""
    base = f"{base_url(request)}/collections/{layer.id}"
    storage = (
        CRS84.uri if layer.srid == 4326 else f"http://www.opengis.net/def/crs/EPSG/0/{layer.srid}"
    )
    body: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "crs": served_crs_uris(),
        "storageCrs": storage,
        "links": [
            {"rel": "self", "type": JSON, "href": base, "title": "This collection"},
            {"rel": "items", "type": GEOJSON, "href": f"{base}/items", "title": "Its features"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "href": f"{base}/queryables",
                "title": "What its features can be filtered by",
            },
            {  # relation types are case-insensitive; GDAL before 3.8 only reads this spelling
                "rel": "describedBy",
                "type": XML,
                "href": f"{base}/schema.xsd",
                "title": "Its feature type and geometry type (GML application schema)",
            },
        ],
    }
    if extent:
        body["extent"] = {"spatial": {"bbox": [extent], "crs": CRS84.uri}}
    return body


def parse_bbox(value: str | None, bbox_crs: str | None) -> tuple[float, float, float, float] | None:
    """The bbox parameter as a CRS84 lon/lat box; 400 when malformed."""
    if value is None:
        if bbox_crs:
            raise BadRequest("bbox-crs needs a bbox", code="invalid_parameter")
        return None
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise BadRequest(
            "bbox must be 4 (or 6) comma-separated numbers", code="invalid_bbox"
        ) from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(abs(n) < 1e12 for n in numbers):
        raise BadRequest(
            "bbox must be 4 (or 6) comma-separated finite numbers", code="invalid_bbox"
        )
    crs = parse_crs(bbox_crs)
    if crs.is_crs84:
        minx, miny, maxx, maxy = numbers
        if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise BadRequest(
                "bbox must be lon/lat within -180..180, -90..90 with min <= max "
                "latitude (or give bbox-crs)",
                code="invalid_bbox",
            )
        return minx, miny, maxx, maxy
    return transform_bbox(tuple(numbers), crs, CRS84)  # type: ignore[arg-type]


def page_links(
    request: Request, layer: Layer, returned: int, matched: int | None, limit: int, offset: int
) -> list[dict[str, str]]:
    """self, alternate, collection, and next/prev links of an items page."""
    url = f"{base_url(request)}/collections/{layer.id}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]

    def at(new_offset: int) -> str:
        return f"{url}?{urlencode([*params, ('offset', str(new_offset))])}"

    links = [
        {"rel": "self", "type": GEOJSON, "href": at(offset), "title": "This page"},
        {
            "rel": "collection",
            "type": JSON,
            "href": url.rsplit("/", 1)[0],
            "title": "The collection",
        },
    ]
    more = matched > offset + returned if matched is not None else returned == limit
    if more:
        links.append(
            {"rel": "next", "type": GEOJSON, "href": at(offset + limit), "title": "Next page"}
        )
    if offset > 0:
        links.append(
            {
                "rel": "prev",
                "type": GEOJSON,
                "href": at(max(0, offset - limit)),
                "title": "Previous page",
            }
        )
    return links


def content_crs(request: Request) -> Any:
    """The CRS of a request body (Content-Crs header, default CRS84)."""
    value = request.headers.get("content-crs")
    return parse_crs(value.strip().strip("<>") if value else None)


def write_response(
    request: Request, layer: Layer, result: WriteResult, crs_header: str, status: int = 200
) -> Response:
    """A written feature: body, ETag, Content-Crs, Location on create, repair notice."""
    headers = {"ETag": result.etag or "", "Content-Crs": crs_header}
    body = result.output or "{}"
    if result.repaired:
        headers["X-Geometry-Repaired"] = result.repaired.describe()
        note = orjson.dumps(result.repaired.describe()).decode()
        body = body[:-1] + ',"cityhex:repaired":' + note + "}"
    if status == 201:
        headers["Location"] = f"{base_url(request)}/collections/{layer.id}/items/{result.id}"
    return Response(body, status_code=status, media_type=GEOJSON, headers=headers)


# --------------------------------------------------------------------------- discovery


@router.get(
    "/conformance",
    summary="The conformance classes this server implements",
    response_model=Conformance,
)
async def conformance() -> dict[str, list[str]]:
    """The OGC conformance classes implemented, exactly."""
    return {"conformsTo": CONFORMANCE}


@router.get(
    "/collections",
    summary="Every layer the caller may read, as a collection",
    response_model=Collections,
    response_model_exclude_unset=True,
)
async def collections(request: Request, caller: Caller, engine: ReadEngine) -> dict[str, Any]:
    """The readable layers, with their extents and links."""
    found = []
    for layer in load_catalog():
        if layer.can_read(caller.role):
            found.append(collection_json(request, layer, await layer_extent(engine, layer)))
    links = [
        {
            "rel": "self",
            "type": JSON,
            "href": f"{base_url(request)}/collections",
            "title": "The collections",
        }
    ]
    return {"collections": found, "links": links, "crs": served_crs_uris()}


@router.get(
    "/collections/{layer_id}",
    summary="One layer as a collection",
    response_model=Collection,
    response_model_exclude_unset=True,
)
async def collection(request: Request, layer: ReadableLayer, engine: ReadEngine) -> dict[str, Any]:
    """The layer's description, extent and links."""
    extent = await layer_extent(engine, layer)
    return collection_json(request, layer, extent)


@router.get(
    "/collections/{layer_id}/queryables",
    summary="What the layer's features can be filtered by (JSON Schema)",
    response_class=SchemaJSONResponse,
    responses={200: {"model": Queryables}},
)
async def collection_queryables(
    request: Request, layer: ReadableLayer, engine: ReadEngine
) -> Response:
    """The queryables: catalog properties and the free-form keys found in the data."""
    schema = await queryables(engine, layer)
    schema = {"$id": f"{base_url(request)}/collections/{layer.id}/queryables", **schema}
    return json_response(schema, media_type=SCHEMA_JSON)


@router.get(
    "/collections/{layer_id}/schema.xsd",
    summary="The layer's feature and geometry type (GML application schema)",
    response_class=Response,
    responses={200: {"content": {XML: {"schema": {"type": "string"}}}}},
)
async def collection_schema(request: Request, layer: ReadableLayer) -> Response:
    """An XML Schema declaring the layer's geometry type (a mixed layer: any geometry)."""
    return Response(gml_schema(layer, f"{base_url(request)}/collections"), media_type=XML)


# --------------------------------------------------------------------------- items


@router.get(
    "/collections/{layer_id}/items",
    summary="The layer's features (GeoJSON)",
    response_class=Response,
)
async def items(
    request: Request,
    layer: ReadableLayer,
    engine: ReadEngine,
    bbox: str | None = Query(None, description="minx,miny,maxx,maxy (in bbox-crs)"),
    bbox_crs: str | None = Query(None, alias="bbox-crs"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, description=f"Page size; at most {MAX_LIMIT}"),
    offset: Offset = 0,
    datetime_: str | None = Query(None, alias="datetime"),
    properties: str | None = Query(None, description="Properties to return (comma list)"),
    filter_: str | None = Query(None, alias="filter", description="A CQL2 filter"),
    filter_lang: str = Query("cql2-text", alias="filter-lang"),
    filter_crs: str | None = Query(None, alias="filter-crs"),
    crs: str | None = Query(None, description="The CRS of the response geometries"),
) -> Response:
    """Features matching bbox, datetime, filter and property=value parameters, paged."""
    equals = {k: v for k, v in request.query_params.items() if k not in ITEM_PARAMS}
    unknown = [
        k
        for k in equals
        if k not in layer.properties and k != "id" and not layer.extra_properties_column
    ]
    if unknown:
        raise BadRequest(f"unknown parameter {', '.join(unknown)}", code="invalid_parameter")
    out_crs = parse_crs(crs)
    query = ItemQuery(
        bbox=parse_bbox(bbox, bbox_crs),
        datetime=datetime_,
        properties=[p.strip() for p in properties.split(",") if p.strip()]
        if properties is not None
        else None,
        filter=filter_,
        filter_lang=filter_lang,
        filter_crs=parse_crs(filter_crs),
        equals=equals,
        limit=min(limit, MAX_LIMIT),
        offset=offset,
        crs=out_crs,
    )
    page = await query_features(engine, layer, query)
    rest = {
        "numberMatched": page.number_matched,
        "numberReturned": page.number_returned,
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": page_links(
            request, layer, page.number_returned, page.number_matched, page.limit, page.offset
        ),
    }
    if rest["numberMatched"] is None:
        del rest["numberMatched"]
    body = (
        '{"type":"FeatureCollection","features":['
        + ",".join(page.features)
        + "],"
        + orjson.dumps(rest).decode()[1:]
    )
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": out_crs.header})


@router.post(
    "/collections/{layer_id}/items",
    status_code=201,
    response_class=Response,
    summary="Create a feature (201 with Location and ETag)",
    openapi_extra=FEATURE_BODY,
    responses=WRITE_ERRORS,
)
async def create_item(
    request: Request,
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
    repair: bool = Query(False, description="Repair invalid geometry"),
) -> Response:
    """Insert the GeoJSON Feature in the body."""
    body_crs = content_crs(request)
    result = await create_feature(
        engine,
        layer,
        await read_json(request, MAX_BODY),
        caller.actor,
        content_crs=body_crs,
        crs=body_crs,
        repair=repair,
        scope=caller.scope,
    )
    return write_response(request, layer, result, body_crs.header, status=201)


@router.get(
    "/collections/{layer_id}/items/{feature_id}",
    response_class=Response,
    summary="One feature, with its ETag",
)
async def item(
    request: Request,
    layer: ReadableLayer,
    engine: ReadEngine,
    feature_id: str,
    crs: str | None = Query(None),
) -> Response:
    """The feature, in ``crs`` (default CRS84); 404 for one outside the caller's scope."""
    out_crs = parse_crs(crs)
    found = await get_feature(engine, layer, parse_feature_id(layer, feature_id), out_crs)
    base = f"{base_url(request)}/collections/{layer.id}"
    links = [
        {"rel": "self", "type": GEOJSON, "href": f"{base}/items/{feature_id}"},
        {"rel": "collection", "type": JSON, "href": base},
    ]
    body = found.output[:-1] + ',"links":' + orjson.dumps(links).decode() + "}"
    return Response(
        body, media_type=GEOJSON, headers={"ETag": found.etag, "Content-Crs": out_crs.header}
    )


async def _update(
    request: Request,
    layer: Layer,
    caller: Principal,
    engine: AsyncEngine,
    feature_id: str,
    if_match: str | None,
    patch: bool,
    repair: bool,
) -> Response:
    """Replace or merge-patch the feature with the body; the written feature."""
    body_crs = content_crs(request)
    result = await update_feature(
        engine,
        layer,
        parse_feature_id(layer, feature_id),
        await read_json(request, MAX_BODY),
        if_match,
        caller.actor,
        patch=patch,
        content_crs=body_crs,
        crs=body_crs,
        repair=repair,
        scope=caller.scope,
    )
    return write_response(request, layer, result, body_crs.header)


@router.put(
    "/collections/{layer_id}/items/{feature_id}",
    response_class=Response,
    summary="Replace a feature (If-Match required)",
    openapi_extra=FEATURE_BODY,
    responses=WRITE_ERRORS,
)
async def replace_item(
    request: Request,
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
    feature_id: str,
    repair: bool = Query(False),
    if_match: str | None = IF_MATCH,
) -> Response:
    """Replace the feature with the body if If-Match holds its current ETag."""
    return await _update(
        request, layer, caller, engine, feature_id, if_match, patch=False, repair=repair
    )


@router.patch(
    "/collections/{layer_id}/items/{feature_id}",
    response_class=Response,
    summary="Merge-patch a feature (If-Match required)",
    openapi_extra=PATCH_BODY,
    responses=WRITE_ERRORS,
)
async def patch_item(
    request: Request,
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
    feature_id: str,
    repair: bool = Query(False),
    if_match: str | None = IF_MATCH,
) -> Response:
    """Apply a JSON merge patch (RFC 7396) if If-Match holds the current ETag."""
    return await _update(
        request, layer, caller, engine, feature_id, if_match, patch=True, repair=repair
    )


@router.delete(
    "/collections/{layer_id}/items/{feature_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a feature (If-Match required)",
)
async def delete_item(
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
    feature_id: str,
    if_match: str | None = IF_MATCH,
) -> Response:
    """Delete the feature if If-Match holds its current ETag; its history keeps it."""
    fid = parse_feature_id(layer, feature_id)
    await delete_feature(engine, layer, fid, if_match, caller.actor, caller.scope)
    return Response(status_code=204)


# --------------------------------------------------------------------------- history


@router.get(
    "/collections/{layer_id}/items/{feature_id}/history",
    summary="Every version of a feature: operation, who, when, before and after",
    response_model=FeatureHistory,
)
async def history(layer: HistoryLayer, engine: ReadEngine, feature_id: str) -> dict[str, Any]:
    """The feature's versions, oldest first (needs an API key: it names who edited)."""
    fid = parse_feature_id(layer, feature_id)
    versions = await list_history(engine, layer, fid)
    return {"layer": layer.id, "id": fid, "versions": [v.as_json() for v in versions]}


@router.post(
    "/collections/{layer_id}/items/{feature_id}/history/{version}/restore",
    response_class=Response,
    summary="Restore a version (re-creates a deleted feature under its id)",
    responses=errors(409, 422),
)
async def restore(
    request: Request,
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
    feature_id: str,
    version: Annotated[int, Path(ge=1, le=INT_MAX, description="A version of the feature")],
    if_match: str | None = IF_MATCH,
) -> Response:
    """Bring the feature back as it was at ``version``: 201 when it had been deleted, else
    200 (a replace, which needs If-Match)."""
    fid = parse_feature_id(layer, feature_id)
    result = await restore_version(
        engine, layer, fid, version, if_match, caller.actor, scope=caller.scope
    )
    return write_response(
        request, layer, result, CRS84.header, status=201 if result.created else 200
    )
