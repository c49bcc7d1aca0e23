"""Attachments: photos and documents of cases and features."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spatial_api.schemas import Schema
from spatial_api.schemas.incidents import Point


class Attachment(Schema):
    """A stored photo or document: where to get it and its thumbnail, its hash (the ETag of
    the file), and what was read from it. ``location`` (the photo's EXIF GPS, removed from
    the file) and ``uploaded_by`` are given to staff only."""

    id: int
    url: str = Field(description="The file (EXIF GPS, device and owner tags removed)")
    thumbnail_url: str | None = Field(description="A WebP thumbnail; null for a PDF")
    sha256: str = Field(description="SHA-256 of the stored file, hex; its ETag")
    stage: Literal["report", "before", "after", "verification"] | None = Field(
        description="The case's stage (null for a feature's attachment)"
    )
    media_type: str
    bytes: int
    width: int | None = None
    height: int | None = None
    taken_at: str | None = Field(None, description="When the photo was taken (its EXIF)")
    transition_id: int | None = None
    uploaded_at: str
    uploaded_by: str | None = None
    location: Point | None = None


class AttachmentList(Schema):
    """The attachments of a case or a feature, oldest first."""

    attachments: list[Attachment]
