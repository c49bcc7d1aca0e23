"""``POST /collections/{layer}/import``: the importer of ``cityhex import``, for admins, over
HTTP (multipart: the file, or a Shapefile's parts, and the same options as the command)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from etl.imports.options import options_from_input
from etl.imports.vector import import_file
from gis.errors import BadRequest
from layers.db.engine import database_url
from spatial_api.deps import Admin, DatabaseUrl
from spatial_api.openapi import errors
from spatial_api.schemas.imports import ImportReport

router = APIRouter(tags=["import"])
MAIN_SUFFIXES = (
    ".geojson",
    ".json",
    ".gpkg",
    ".shp",
    ".fgb",
    ".csv",
    ".tsv",
    ".txt",
    ".osm",
    ".pbf",
    ".zip",
)


async def save_uploads(uploads: list[UploadFile], folder: Path) -> Path:
    """Store the uploaded files in ``folder``; the one to import (not a sidecar file)."""
    saved = []
    for upload in uploads:
        name = Path(upload.filename or "").name
        if not name or name.startswith("."):
            raise BadRequest("every uploaded file needs a file name", code="invalid_upload")
        path = folder / name
        with path.open("wb") as out:
            await run_in_threadpool(shutil.copyfileobj, upload.file, out)
        saved.append(path)
    main = [p for p in saved if p.suffix.lower() in MAIN_SUFFIXES]
    if len(main) != 1:
        raise BadRequest(
            f"upload one file to import ({', '.join(MAIN_SUFFIXES)}), with the sidecar files "
            f"of a Shapefile (.shx, .dbf, .prj, .cpg) if any; got: "
            f"{', '.join(p.name for p in saved)}",
            code="invalid_upload",
        )
    return main[0]


@router.post(
    "/collections/{layer}/import",
    summary="Import a vector file into a layer (admin)",
    responses={
        200: {"model": ImportReport, "description": "The report of a dry run (nothing kept)"},
        **errors(409, 413, 422),
    },
    status_code=201,
    response_model=ImportReport,
)
async def import_into_layer(
    layer: str,
    response: Response,
    principal: Admin,
    database: DatabaseUrl,
    file: list[UploadFile] = File(
        ..., description="The file (a Shapefile: .shp with .shx, .dbf and .prj, or one .zip)"
    ),
    src_crs: str | None = Form(None, description="CRS of the coordinates (EPSG:4490 …)"),
    mode: str = Form("append", description="append, upsert or replace"),
    key: str | None = Form(None, description="The property identifying a feature (upsert)"),
    field_map: list[str] = Form([], alias="map", description="field=property (repeatable)"),
    invalid: str = Form("reject", description="reject, repair or skip invalid geometries"),
    dry_run: bool = Form(False, description="Check and write, then roll back"),
    source_layer: str | None = Form(None),
    lon_field: str | None = Form(None),
    lat_field: str | None = Form(None),
    wkt_field: str | None = Form(None),
    create: bool = Form(False, description="Make a new layer from the file"),
    time_field: str | None = Form(None),
    title: str | None = Form(None),
    public: bool = Form(False),
    osm_preset: str | None = Form(None),
    division: str | None = Form(None),
) -> dict[str, Any]:
    """Import the uploaded file into ``layer``; the report (read, written, repaired,
    rejected with reasons, seconds). Bad files are a 4xx and write nothing."""
    options = options_from_input(locals(), actor=principal.actor)  # the form, by its names
    url = database or database_url()
    with tempfile.TemporaryDirectory(prefix="cityhex-import-") as folder:
        path = await save_uploads(file, Path(folder))
        report = await run_in_threadpool(import_file, url, path, options)
    if dry_run:
        response.status_code = 200
    return report.to_dict()
