"""What an uploaded file is, and the copy of it CityHex keeps.

The type is sniffed from the bytes, never taken from a name or a declared media type: JPEG,
PNG and WebP as Pillow identifies them, PDF by its ``%PDF-`` magic. Anything else is refused
(415), and so is an image Pillow cannot decode to its end (422) or one with more pixels than
Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, 422).

What is stored and served carries no EXIF GPS, device or owner tags:

- a JPEG keeps its compressed image data bit for bit (no re-encoding, no quality loss): its
  APP1..APP15 and COM segments (EXIF, XMP, IPTC, maker notes, comments, the extra images of
  a multi-picture file after the first image's end) are left out, except the ICC profile
  (APP2) and the Adobe colour transform (APP14); the orientation is kept in a new EXIF
  segment that holds nothing else;
- a PNG or WebP is re-encoded by Pillow with the orientation applied and no metadata but
  its ICC profile and transparency (its first frame only);
- a PDF is kept as sent.

The capture time (EXIF DateTimeOriginal with its offset, else read in ``CITYHEX_TIMEZONE``)
and the GPS position come back as fields; a WebP thumbnail, upright, is made here once.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageOps, UnidentifiedImageError

from gis.errors import Unprocessable, UnsupportedMediaType

JPEG, PNG, WEBP, PDF = "image/jpeg", "image/png", "image/webp", "application/pdf"
MEDIA_TYPES = {"JPEG": JPEG, "PNG": PNG, "WEBP": WEBP}
"""Pillow's format name → the media type stored and served."""
ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_ORIGINAL = 0x9003, 0x9004, 0x9011
KEPT_SEGMENTS = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
"""The APPn segments a stored JPEG keeps (by the signature their payload starts with)."""
JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A marker inside entropy-coded data (0xFF followed by neither a stuffed 0x00, a restart
marker nor a fill byte)."""
UNKNOWN_TYPE = (
    "the file is not a JPEG, PNG or WebP image nor a PDF (judged from its bytes) / "
    "文件不是 JPEG、PNG、WebP 图片或 PDF（按内容判断）"
)


@dataclass(frozen=True)
class Prepared:
    """An upload made ready to store: the bytes to keep and what was read from them."""

    media_type: str
    data: bytes
    """What is stored and served (metadata stripped)."""
    sha256: str
    """The hex SHA-256 of ``data``: the file's name, its ETag."""
    width: int | None
    height: int | None
    """The size as displayed (orientation applied); None for a PDF."""
    thumbnail: bytes | None
    """A WebP at most ``thumbnail_px`` on its longer side; None for a PDF."""
    taken_at: datetime | None
    lonlat: tuple[float, float] | None
    """Where the photo was taken, from its EXIF GPS tags."""


def prepare(data: bytes, thumbnail_px: int, tz: ZoneInfo) -> Prepared:
    """The stored form of an uploaded file, with its capture time, position and thumbnail;
    UnsupportedMediaType (415) for a file of another type, Unprocessable (422) for a broken
    image or a decompression bomb."""
    if data.startswith(b"%PDF-"):
        return Prepared(PDF, data, hashlib.sha256(data).hexdigest(), None, None, None, None, None)
    try:
        image = Image.open(io.BytesIO(data), formats=tuple(MEDIA_TYPES))
    except UnidentifiedImageError:
        raise UnsupportedMediaType(UNKNOWN_TYPE, code="unsupported_file_type") from None
    except Image.DecompressionBombError:
        raise _bomb() from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _broken(exc) from None
    with image:
        if image.width * image.height > Image.MAX_IMAGE_PIXELS:
            raise _bomb()
        try:
            exif = image.getexif()
            orientation = exif.get(ORIENTATION, 1)
            orientation = orientation if orientation in range(1, 9) else 1
            taken_at, lonlat = _taken_at(exif, tz), _position(exif)
            width, height = image.size
            if orientation >= 5:  # 5..8 turn the picture a quarter
                width, height = height, width
            media_type = MEDIA_TYPES.get(image.format or "")
            if media_type is None:
                raise UnsupportedMediaType(UNKNOWN_TYPE, code="unsupported_file_type")
            stored = strip_jpeg(data, orientation) if media_type == JPEG else _reencode(image)
            thumbnail = make_thumbnail(stored, thumbnail_px)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise _broken(exc) from None
    digest = hashlib.sha256(stored).hexdigest()
    return Prepared(media_type, stored, digest, width, height, thumbnail, taken_at, lonlat)


def _bomb() -> Unprocessable:
    return Unprocessable(
        f"the image has more than {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?) / "
        "图片像素过多",
        code="image_too_large",
    )


def _broken(exc: Exception) -> Unprocessable:
    return Unprocessable(
        f"the image cannot be decoded ({exc}) / 图片无法解码", code="invalid_image"
    )


def strip_jpeg(data: bytes, orientation: int) -> bytes:
    """The JPEG ``data`` without its metadata segments and without anything after its first
    image's end, the compressed image data unchanged; a new EXIF segment holds
    ``orientation`` alone when it is not 1. ValueError when the JPEG is truncated."""
    header: list[bytes] = []
    pos = 2
    while True:  # the segments before the first scan
        while data[pos : pos + 2] == b"\xff\xff":  # fill bytes
            pos += 1
        if len(data) < pos + 4 or data[pos] != 0xFF or data[pos + 1] in (0xD8, 0xD9):
            raise ValueError("a JPEG segment is missing or truncated")
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ValueError("a JPEG segment is truncated")
        if _kept(marker, data[pos + 4 : end]):
            header.append(data[pos:end])
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
    if orientation != 1:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        payload = exif.tobytes()
        segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2) + payload
        header.insert(1 if header and header[0][1] == 0xE0 else 0, segment)
    body = bytearray(b"\xff\xd8" + b"".join(header))
    start = pos
    while True:  # scans and the segments between them, up to the end of the image
        found = JPEG_MARKER.search(data, pos)
        if found is None:
            raise ValueError("the JPEG has no end of image marker (truncated?)")
        at = found.start()
        body += data[start:at]
        marker = data[at + 1]
        if marker == 0xD9:
            body += b"\xff\xd9"
            return bytes(body)
        length = int.from_bytes(data[at + 2 : at + 4])
        end = at + 2 + length
        if length < 2 or end > len(data):
            raise ValueError("a JPEG segment is truncated")
        if _kept(marker, data[at + 4 : end]):
            body += data[at:end]
        pos = start = end


def _kept(marker: int, payload: bytes) -> bool:
    """Whether a JPEG segment stays in the stored file (metadata segments do not)."""
    if marker == 0xFE or 0xE0 <= marker <= 0xEF:
        signature = KEPT_SEGMENTS.get(marker)
        return signature is not None and payload.startswith(signature)
    return True


def _reencode(image: Image.Image) -> bytes:
    """A PNG or WebP re-encoded upright, with no metadata but its ICC profile and
    transparency."""
    upright = ImageOps.exif_transpose(image)
    kept = {k: image.info[k] for k in ("icc_profile", "transparency") if k in image.info}
    upright.info = kept
    out = io.BytesIO()
    if image.format == "PNG":
        upright.save(out, "PNG", **kept)
    else:
        upright.save(out, "WEBP", quality=90, **kept)
    return out.getvalue()


def make_thumbnail(stored: bytes, size: int) -> bytes:
    """A WebP of the image ``stored``, upright, at most ``size`` pixels on its longer side.
    Decoding it reads the whole image (a JPEG at a reduced scale), so a truncated or broken
    image raises here."""
    with Image.open(io.BytesIO(stored)) as image:
        image.thumbnail((size, size), reducing_gap=1.0)  # a JPEG decoded at 1/2 to 1/8 scale
        small = ImageOps.exif_transpose(image)
        mode = "RGBA" if "A" in small.getbands() or "transparency" in small.info else "RGB"
        small = small.convert(mode)
        small.info = {}
        out = io.BytesIO()
        small.save(out, "WEBP", quality=80)
        return out.getvalue()


def _taken_at(exif: Image.Exif, tz: ZoneInfo) -> datetime | None:
    """When the photo was taken: DateTimeOriginal (else DateTimeDigitized) with its offset
    tag, else read in ``tz``; None when absent or malformed."""
    tags = exif.get_ifd(EXIF_IFD)
    stamp = tags.get(DATETIME_ORIGINAL) or tags.get(DATETIME_DIGITIZED)
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = tags.get(OFFSET_ORIGINAL)
    if isinstance(offset, str):
        try:
            return datetime.fromisoformat(when.isoformat() + offset.strip("\x00 "))
        except ValueError:
            pass
    return when.replace(tzinfo=tz)


def _position(exif: Image.Exif) -> tuple[float, float] | None:
    """(lon, lat) from the GPS tags; None when absent or not a place on Earth."""
    gps = exif.get_ifd(GPS_IFD)
    lat, lon = _degrees(gps.get(2), gps.get(1), "S"), _degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lon, lat


def _degrees(dms: Any, ref: Any, negative: str) -> float | None:
    """Degrees from EXIF (degrees, minutes, seconds) rationals and their hemisphere."""
    try:
        d, m, s = (float(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        return None
    return -value if isinstance(ref, str) and ref.strip("\x00 ").upper() == negative else value
