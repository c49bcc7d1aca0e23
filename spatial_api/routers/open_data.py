"""Open data for everyone, no key needed: ``/open/`` (the DCAT-style catalog) and
``/open/{dataset}.{csv|geojson|gpkg}`` (the downloads), from ``etl.exports.open_data``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import BinaryIO

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from etl.exports.open_data.catalog import open_catalog
from etl.exports.open_data.export import resolve_download
from etl.exports.open_data.files import built_files
from etl.exports.open_data.settings import open_data_settings
from layers.db.engine import database_url
from spatial_api.deps import DatabaseUrl
from spatial_api.proxies import public_base_url
from spatial_api.responses import JSON

router = APIRouter(tags=["open data"])
READ_BYTES = 1 << 16
UNAVAILABLE = {
    304: {"description": "Not modified: If-None-Match names the current ETag"},
    503: {"description": "The database is unavailable or the query ran too long"},
}


def cache_headers(etag: str) -> dict[str, str]:
    """The validator and the public caching rule of an open-data answer."""
    return {"ETag": etag, "Cache-Control": f"public, max-age={open_data_settings().max_age}"}


def not_modified(request: Request, etag: str) -> bool:
    """Whether the client's If-None-Match already names ``etag`` (weak comparison)."""
    sent = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in sent.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


def file_chunks(data: BinaryIO) -> Iterator[bytes]:
    """The bytes of an open file, a block at a time; the file is closed after."""
    with data:
        while block := data.read(READ_BYTES):
            yield block


@router.get("/open/", summary="The open data catalog (DCAT-style JSON-LD)", responses=UNAVAILABLE)
@router.get(
    "/open/catalog.json", summary="The open data catalog (same as /open/)", responses=UNAVAILABLE
)
async def catalog(request: Request, app_url: DatabaseUrl) -> Response:
    """Every open dataset: title, description, licence, update frequency, coverage,
    fields, and its downloads in CSV, GeoJSON and GeoPackage."""
    url = app_url or database_url()
    base = public_base_url(request)
    body = orjson.dumps(await run_in_threadpool(open_catalog, url, base))
    headers = cache_headers(f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


@router.get(
    "/open/{name}",
    summary="Download an open dataset: <dataset>.csv, .geojson or .gpkg",
    response_class=Response,
    responses={
        200: {
            "description": "The dataset as a file",
            "content": {
                "text/csv": {},
                "application/geo+json": {},
                "application/geopackage+sqlite3": {},
            },
        },
        400: {"description": "Unknown format"},
        404: {"description": "Unknown dataset"},
        **UNAVAILABLE,
    },
)
async def download(request: Request, name: str, app_url: DatabaseUrl) -> Response:
    """The dataset ``name`` names (``grid.geojson``) as an attachment, with a weak ETag."""
    dataset, fmt = resolve_download(name)
    url = app_url or database_url()
    written, data = await run_in_threadpool(built_files.open, url, dataset, fmt)
    headers = cache_headers(written.etag)
    if not_modified(request, written.etag):
        data.close()
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{written.filename}"'
    headers["Content-Length"] = str(os.fstat(data.fileno()).st_size)
    return StreamingResponse(file_chunks(data), media_type=fmt.media_type, headers=headers)
