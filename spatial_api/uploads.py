"""One file uploaded as ``multipart/form-data`` with a few small text fields, read with a
bound: a body declared larger than the limit is refused before any of it is read, and
reading stops (413) as soon as more than the limit has arrived, so a client cannot make the
server read, spool or parse more than ``limit`` bytes of file plus 64 KB of form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from gis.errors import BadRequest, PayloadTooLarge
from spatial_api.bodies import media_type

FORM_SLACK = 64 * 1024
"""What the form may carry beyond the file: part headers, boundaries, the text fields."""
FIELD_BYTES = 1024
"""The largest text field."""


@dataclass(frozen=True)
class Upload:
    """The uploaded file's bytes and the form's text fields."""

    data: bytes
    fields: dict[str, str]


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is larger than {limit / 1e6:g} MB / 文件超过 {limit / 1e6:g} MB",
        code="file_too_large",
    )


async def _bounded(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's chunks until more than ``limit`` bytes have come; then PayloadTooLarge."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit - FORM_SLACK)
        yield chunk


async def read_upload(request: Request, limit: int, fields: tuple[str, ...]) -> Upload:
    """The form's ``file`` (at most ``limit`` bytes) and its text ``fields`` (each optional,
    others refused): 415 when the body is not multipart/form-data, 413 past the limit, 400
    for a malformed form or one without a file."""
    if media_type(request) != "multipart/form-data":
        raise HTTPException(
            415, "send the file as multipart/form-data with the field 'file' / 请用表单上传文件"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise _too_large(limit)
    parser = MultiPartParser(
        request.headers,
        _bounded(request.stream(), limit + FORM_SLACK),
        max_files=1,
        max_fields=len(fields),
        max_part_size=FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"malformed form: {exc.message}", code="invalid_form") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest(
                "the form needs a file in the field 'file' / 表单缺少文件", code="no_file"
            )
        unknown = sorted(set(form.keys()) - {"file", *fields})
        if unknown:
            raise BadRequest(
                f"unknown form fields: {', '.join(unknown)}; allowed: file, {', '.join(fields)}",
                code="invalid_form",
            )
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit)
        if not data:
            raise BadRequest("the file is empty / 文件为空", code="empty_file")
        values = {name: form[name] for name in fields if isinstance(form.get(name), str)}
        return Upload(data, values)  # type: ignore[arg-type]
    finally:
        await form.close()
