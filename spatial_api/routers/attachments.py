"""Attachments over HTTP: upload a photo or document to a case or a feature, list them,
get the file and its thumbnail.

The logic lives in ``layers.attachments``; here the multipart body is read with its bound
(``spatial_api.uploads``) and the files are served with their hash as a strong ETag,
cached as immutable by the caller's browser only (``private``: they are not public).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import BadRequest, Unauthorized
from layers.attachments.records import (
    STAGES,
    Attachment,
    add_case_attachment,
    add_feature_attachment,
    case_attachment,
    case_attachments,
    feature_attachment,
    feature_attachments,
    parse_stage,
    stored_file,
)
from layers.attachments.store import attachment_settings
from layers.catalog.registry import Layer
from layers.features.repository import parse_feature_id
from layers.incidents.cases import BIGINT_MAX
from spatial_api.auth import ANONYMOUS, Principal
from spatial_api.deps import Caller, EditableLayer, Engine, ReadableLayer, Reader
from spatial_api.openapi import errors
from spatial_api.routers.incident_common import actor_of
from spatial_api.schemas.attachments import Attachment as AttachmentModel
from spatial_api.schemas.attachments import AttachmentList
from spatial_api.uploads import read_upload

router = APIRouter(tags=["attachments"])
CaseIdPath = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="the case id")]
AttachmentIdPath = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="the attachment")]
CACHE = "private, max-age=31536000, immutable"
"""Files never change under their URL (content-addressed); only the caller's own cache
may keep them, since they are served under read rules."""
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
}


def _upload_body(with_stage: bool) -> dict[str, Any]:
    """The OpenAPI request body of an upload form."""
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "JPEG, PNG, WebP or PDF (judged from the bytes)",
        }
    }
    required = ["file"]
    if with_stage:
        properties["stage"] = {"type": "string", "enum": list(STAGES)}
        properties["transition_id"] = {"type": "integer", "minimum": 1}
        required.append("stage")
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def body_of(attachment: Attachment, prefix: str, role: str) -> dict[str, Any]:
    """An attachment as JSON, with the URLs of its file and thumbnail under ``prefix``."""
    url = f"{prefix}/{attachment.id}"
    return {
        **attachment.as_dict(role),
        "url": url,
        "thumbnail_url": f"{url}/thumbnail" if attachment.has_thumbnail else None,
    }


def file_response(request: Request, attachment: Attachment, thumbnail: bool) -> Response:
    """The attachment's file (or thumbnail) with its hash as ETag; 304 when the caller has it."""
    path: Path = stored_file(attachment, thumbnail)
    etag = f'"{attachment.sha256}{".thumb" if thumbnail else ""}"'
    media_type = "image/webp" if thumbnail else attachment.media_type
    extension = EXTENSIONS[media_type]
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Content-Disposition": f'inline; filename="attachment-{attachment.id}.{extension}"',
    }
    wanted = request.headers.get("if-none-match", "")
    if etag in (t.strip() for t in wanted.split(",")) or wanted.strip() == "*":
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _transition(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or not 1 <= int(value) <= BIGINT_MAX:
        raise BadRequest(f"transition_id {value!r} is not a step id", code="invalid_transition")
    return int(value)


@router.post(
    "/incidents/{incident_id}/attachments",
    status_code=201,
    summary="Add a photo or document to a case (report, before, after, verification)",
    response_model=AttachmentModel,
    response_model_exclude_unset=True,
    responses=errors(409, 413, 415, 422),
    openapi_extra=_upload_body(True),
)
async def upload_to_case(
    incident_id: CaseIdPath,
    request: Request,
    response: Response,
    engine: Engine,
    principal: Reader,
) -> dict[str, Any]:
    """201 with the stored attachment. Who may add one at which stage and case state is in
    the manual (Attachments); 403 for another role or a case outside the caller's scope,
    409 when the case is past the stage, 413 past ``CITYHEX_ATTACHMENT_MAX_MB``, 415 for a
    file that is not a JPEG, PNG, WebP or PDF, 422 for a broken image."""
    upload = await read_upload(request, attachment_settings().max_bytes, ("stage", "transition_id"))
    stage = parse_stage(upload.fields.get("stage"))
    transition_id = _transition(upload.fields.get("transition_id"))
    attachment = await add_case_attachment(
        engine, incident_id, upload.data, stage, transition_id, actor_of(principal)
    )
    prefix = f"/incidents/{incident_id}/attachments"
    response.headers["Location"] = f"{prefix}/{attachment.id}"
    return body_of(attachment, prefix, principal.role)


@router.get(
    "/incidents/{incident_id}/attachments",
    summary="A case's photos and documents",
    response_model=AttachmentList,
    response_model_exclude_unset=True,
)
async def list_case_attachments(
    incident_id: CaseIdPath, engine: Engine, principal: Reader
) -> dict[str, Any]:
    """Every attachment of the case, oldest first (403 for a case outside the caller's
    scope)."""
    async with engine.connect() as conn:
        found = await case_attachments(conn, incident_id, actor_of(principal))
    prefix = f"/incidents/{incident_id}/attachments"
    return {"attachments": [body_of(a, prefix, principal.role) for a in found]}


async def _case_file(
    request: Request,
    engine: AsyncEngine,
    principal: Principal,
    incident_id: int,
    attachment_id: int,
    thumbnail: bool,
) -> Response:
    async with engine.connect() as conn:
        found = await case_attachment(conn, incident_id, attachment_id, actor_of(principal))
    return file_response(request, found, thumbnail)


@router.get(
    "/incidents/{incident_id}/attachments/{attachment_id}",
    summary="The file of a case's attachment",
    response_class=Response,
    responses={200: {"content": {t: {} for t in EXTENSIONS}, "description": "The file"}},
)
async def case_file(
    incident_id: CaseIdPath,
    attachment_id: AttachmentIdPath,
    request: Request,
    engine: Engine,
    principal: Reader,
) -> Response:
    """The stored file (EXIF GPS, device and owner tags removed); ETag is its SHA-256."""
    return await _case_file(request, engine, principal, incident_id, attachment_id, False)


@router.get(
    "/incidents/{incident_id}/attachments/{attachment_id}/thumbnail",
    summary="The thumbnail of a case's photo",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}, "description": "The thumbnail"}},
)
async def case_thumbnail(
    incident_id: CaseIdPath,
    attachment_id: AttachmentIdPath,
    request: Request,
    engine: Engine,
    principal: Reader,
) -> Response:
    """A WebP thumbnail made at upload (404 for a PDF)."""
    return await _case_file(request, engine, principal, incident_id, attachment_id, True)


def _keyed(caller: Principal, layer: Layer) -> None:
    """401 for an anonymous caller: photos of features are not public data."""
    if caller.role == ANONYMOUS:
        raise Unauthorized(
            f"photos of {layer.id} features need an API key",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _feature_file(
    request: Request,
    layer: Layer,
    caller: Principal,
    engine: AsyncEngine,
    feature_id: str,
    attachment_id: int,
    thumbnail: bool,
) -> Response:
    _keyed(caller, layer)
    fid = parse_feature_id(layer, feature_id)
    found = await feature_attachment(engine, layer, fid, attachment_id)
    return file_response(request, found, thumbnail)


@router.post(
    "/collections/{layer_id}/items/{feature_id}/attachments",
    status_code=201,
    summary="Add a photo or document to a feature (its editors)",
    response_model=AttachmentModel,
    response_model_exclude_unset=True,
    responses=errors(413, 415, 422),
    openapi_extra=_upload_body(False),
)
async def upload_to_feature(
    feature_id: str,
    request: Request,
    response: Response,
    layer: EditableLayer,
    caller: Caller,
    engine: Engine,
) -> dict[str, Any]:
    """201 with the stored attachment; for the roles that may edit the layer."""
    upload = await read_upload(request, attachment_settings().max_bytes, ())
    fid = parse_feature_id(layer, feature_id)
    attachment = await add_feature_attachment(engine, layer, fid, upload.data, actor_of(caller))
    prefix = f"/collections/{layer.id}/items/{feature_id}/attachments"
    response.headers["Location"] = f"{prefix}/{attachment.id}"
    return body_of(attachment, prefix, caller.role)


@router.get(
    "/collections/{layer_id}/items/{feature_id}/attachments",
    summary="A feature's photos and documents",
    response_model=AttachmentList,
    response_model_exclude_unset=True,
)
async def list_feature_attachments(
    feature_id: str, layer: ReadableLayer, caller: Caller, engine: Engine
) -> dict[str, Any]:
    """Every attachment of the feature, oldest first (a key is needed)."""
    _keyed(caller, layer)
    found = await feature_attachments(engine, layer, parse_feature_id(layer, feature_id))
    prefix = f"/collections/{layer.id}/items/{feature_id}/attachments"
    return {"attachments": [body_of(a, prefix, caller.role) for a in found]}


@router.get(
    "/collections/{layer_id}/items/{feature_id}/attachments/{attachment_id}",
    summary="The file of a feature's attachment",
    response_class=Response,
    responses={200: {"content": {t: {} for t in EXTENSIONS}, "description": "The file"}},
)
async def feature_file(
    feature_id: str,
    attachment_id: AttachmentIdPath,
    request: Request,
    layer: ReadableLayer,
    caller: Caller,
    engine: Engine,
) -> Response:
    """The stored file; ETag is its SHA-256."""
    return await _feature_file(request, layer, caller, engine, feature_id, attachment_id, False)


@router.get(
    "/collections/{layer_id}/items/{feature_id}/attachments/{attachment_id}/thumbnail",
    summary="The thumbnail of a feature's photo",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}, "description": "The thumbnail"}},
)
async def feature_thumbnail(
    feature_id: str,
    attachment_id: AttachmentIdPath,
    request: Request,
    layer: ReadableLayer,
    caller: Caller,
    engine: Engine,
) -> Response:
    """A WebP thumbnail made at upload (404 for a PDF)."""
    return await _feature_file(request, layer, caller, engine, feature_id, attachment_id, True)
