"""Compressed answers by ``Accept-Encoding`` (brotli or gzip), with an ETag per encoding.

A compressed answer is another representation of the resource, so it carries its own strong
validator, the identity ETag with the coding appended inside the quotes (``"abc"`` becomes
``"abc-gzip"``, ``W/"7"`` becomes ``W/"7-br"``), and ``Vary: Accept-Encoding``. The
conditional headers ``If-None-Match`` and ``If-Match`` reach the application with those
suffixes taken off, so every route compares against its own identity ETags and a client may
send back whichever ETag it was given (a PATCH with the ETag of a gzip answer works); a 304
names the variant the client holds.

Left as they are: bodies under 1 KB, media types that are not compressible (images,
GeoPackage, archives), event streams (their events must leave at once), partial content,
``Cache-Control: no-transform``, and answers that carry a Content-Encoding already: cached
tiles, which the tile cache compresses once (see ``spatial_api.routers.tiles``).
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol

import anyio.to_thread
import brotli
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GZIP_LEVEL = 6
"""zlib's default level: within a few percent of level 9 at a third of its time."""
BROTLI_QUALITY = 5
"""Smaller than gzip and about as fast; qualities past 6 cost several times more for little."""
MINIMUM_SIZE = 1024
"""Smaller bodies are sent as they are: they fit in one packet either way."""
THREAD_SIZE = 64 * 1024
"""Bodies from this size are compressed in a worker thread, not on the event loop."""
PREFERENCE = ("br", "gzip")
"""The supported content codings, the one taken on a tie of the client's weights first."""
COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/vnd.mapbox-vector-tile",
        "application/x-protobuf",
        "image/svg+xml",
    }
)
"""Media types worth compressing besides ``text/*`` and ``*+json`` / ``*+xml``."""
ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')
VARIANT_TAG = re.compile(r'(W/)?"([^"]*)-(?:br|gzip)"')
CONDITIONAL = (b"if-none-match", b"if-match")


class Encoder(Protocol):
    """A streaming compressor: bytes in, compressed bytes out, the rest at the end."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class BrotliEncoder:
    """The brotli compressor as an Encoder."""

    def __init__(self) -> None:
        self._compressor = brotli.Compressor(quality=BROTLI_QUALITY)

    def compress(self, data: bytes) -> bytes:
        """Compressed bytes of ``data`` that are ready (maybe none yet)."""
        return self._compressor.process(data)

    def flush(self) -> bytes:
        """The last compressed bytes; the stream ends."""
        return self._compressor.finish()


def encoder(coding: str) -> Encoder:
    """A compressor for content coding ``coding`` (``br`` or ``gzip``)."""
    if coding == "br":
        return BrotliEncoder()
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip stream, no file time


def compress(body: bytes, coding: str) -> bytes:
    """``body`` in content coding ``coding``: the same bytes for the same body every time."""
    stream = encoder(coding)
    return stream.compress(body) + stream.flush()


def negotiate(accept_encoding: str | None) -> str | None:
    """The coding to answer a request with this Accept-Encoding in: the supported one the
    client weighs most (``br`` on a tie), or None for the body as it is."""
    weights: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.lower()] = weight
    best, best_weight = None, 0.0
    for coding in PREFERENCE:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return None if weights.get("identity", 0.0) > best_weight else best


def variant_etag(etag: str, coding: str) -> str:
    """The ETag of the ``coding`` variant of the representation whose ETag is ``etag``."""
    weak = "W/" if etag.startswith("W/") else ""
    return f'{weak}"{etag.removeprefix("W/").strip(chr(34))}-{coding}"'


def identity_tags(header: str) -> str:
    """A conditional header with each variant ETag replaced by its identity ETag."""
    return VARIANT_TAG.sub(r'\1"\2"', header)


def held_variant(if_none_match: str, etag: str) -> str | None:
    """The variant ETag of ``etag`` that an If-None-Match names, if it names one."""
    plain = etag.removeprefix("W/")
    for tag in ENTITY_TAG.findall(if_none_match):
        if VARIANT_TAG.fullmatch(tag) and identity_tags(tag).removeprefix("W/") == plain:
            return tag
    return None


def compressible(media_type: str) -> bool:
    """Whether bodies of ``media_type`` (a Content-Type value) shrink when compressed."""
    kind = media_type.partition(";")[0].strip().lower()
    if kind == "text/event-stream":
        return False
    return (
        kind in COMPRESSIBLE
        or kind.startswith("text/")
        or kind.endswith("+json")
        or kind.endswith("+xml")
    )


def with_identity_conditions(scope: Scope) -> Scope:
    """``scope`` with the conditional headers naming identity ETags only."""
    headers = scope["headers"]
    if not any(k in CONDITIONAL and b"-" in v for k, v in headers):
        return scope
    plain = [
        (k, identity_tags(v.decode("latin-1")).encode("latin-1") if k in CONDITIONAL else v)
        for k, v in headers
    ]
    return {**scope, "headers": plain}


class CompressionMiddleware:
    """Compresses answers by the request's Accept-Encoding and lets conditional requests
    name the ETag of any encoding (see the module's description)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        answer = CompressingSend(
            send, negotiate(headers.get("accept-encoding")), headers.get("if-none-match")
        )
        await self.app(with_identity_conditions(scope), receive, answer)


class CompressingSend:
    """The ``send`` of one request: holds the response start until the first body part
    shows whether and how to compress, then compresses every part on the way out."""

    def __init__(self, send: Send, coding: str | None, if_none_match: str | None) -> None:
        self.downstream = send
        self.coding = coding
        self.if_none_match = if_none_match
        self.start: Message | None = None
        self.stream: Encoder | None = None
        self.passing = True

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self.started(message)
        elif self.passing:
            await self.downstream(message)
        elif kind != "http.response.body":  # a file sent by path, trailers: as they are
            self.passing = True
            await self.flush_start()
            await self.downstream(message)
        elif self.stream is None:
            await self.first_body(message)
        else:
            await self.next_body(message)

    async def started(self, message: Message) -> None:
        """Note the response start: pass it on now, or hold it for the first body part."""
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        if message["status"] == 304:
            held = self.if_none_match and held_variant(self.if_none_match, headers.get("etag", ""))
            if held:
                headers["ETag"] = held
                headers.add_vary_header("Accept-Encoding")
        elif (
            message["status"] not in (204, 206)
            and "content-encoding" not in headers
            and "no-transform" not in headers.get("cache-control", "")
            and compressible(headers.get("content-type", ""))
        ):
            headers.add_vary_header("Accept-Encoding")
            if self.coding is not None:
                self.start, self.passing = message, False
                return
        await self.downstream(message)

    async def flush_start(self) -> None:
        """Send the held response start as it is."""
        start, self.start = self.start, None
        if start is not None:
            await self.downstream(start)

    def encode_start(self) -> None:
        """Mark the held response start as compressed."""
        assert self.start is not None and self.coding is not None
        headers = MutableHeaders(scope=self.start)
        headers["Content-Encoding"] = self.coding
        if "etag" in headers:
            headers["ETag"] = variant_etag(headers["etag"], self.coding)

    async def first_body(self, message: Message) -> None:
        """Compress the whole body, or start compressing a stream; small bodies as they are."""
        assert self.start is not None and self.coding is not None
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            self.stream = encoder(self.coding)
            self.encode_start()
            del MutableHeaders(scope=self.start)["content-length"]
            await self.flush_start()
            await self.downstream({**message, "body": self.stream.compress(body)})
            return
        self.passing = True
        if len(body) >= MINIMUM_SIZE:
            if len(body) >= THREAD_SIZE:
                body = await anyio.to_thread.run_sync(compress, body, self.coding)
            else:
                body = compress(body, self.coding)
            self.encode_start()
            MutableHeaders(scope=self.start)["Content-Length"] = str(len(body))
        await self.flush_start()
        await self.downstream({**message, "body": body})

    async def next_body(self, message: Message) -> None:
        """Compress the next part of a stream; close the stream with the last part."""
        assert self.stream is not None
        body = self.stream.compress(message.get("body", b""))
        if not message.get("more_body", False):
            body += self.stream.flush()
            self.passing = True
        await self.downstream({**message, "body": body})
