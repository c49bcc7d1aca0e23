"""``Idempotency-Key`` on the POSTs a client may have to retry blindly (an offline outbox
replaying what it queued): the same key from the same caller gets the first answer again,
and never runs the request twice.

The middleware reads the request body, claims (caller, key) in ``idempotency_keys``
(``layers.db.idempotency``), runs the request, and stores a successful (2xx) answer for
``CITYHEX_IDEMPOTENCY_KEY_HOURS``; a failed one gives the key up so a retry runs again. A
concurrent retry waits for the first answer. The same key with another body (or another
If-Match) is a 422. The caller is who the credentials name (role, key or token subject,
user), so a new short-lived token of the same user finds its earlier keys.
"""

from __future__ import annotations

import hashlib
import re

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis.errors import BadRequest, CityHexError, PayloadTooLarge
from layers.attachments.store import attachment_settings
from layers.db.idempotency import StoredAnswer, claim, finish, release
from spatial_api.auth import ANONYMOUS, Principal, principal_from
from spatial_api.errors import DATABASE_FAILURES, cityhex_error_response, database_failure_response
from spatial_api.proxies import client_address
from spatial_api.settings import api_settings

ATTACHMENTS = re.compile(r"/incidents/[0-9]+/attachments")
IDEMPOTENT_POSTS = (
    re.compile(r"/incidents"),
    re.compile(r"/incidents/[0-9]+/transitions"),
    ATTACHMENTS,
    re.compile(r"/patrol/fixes"),
)
"""The POST paths that honour the header (elsewhere it is ignored)."""
KEY = re.compile(r"[\x21-\x7e]{1,255}")
"""A key: 1 to 255 visible ASCII characters (a UUID, as clients usually send)."""
REPLAYED_HEADERS = ("content-type", "etag", "location")
"""The headers of a stored answer that its replay carries again."""
MAX_BODY = 8 * 1024 * 1024
"""The largest body kept to be compared (a batch of 10,000 patrol fixes is about 1 MB); an
upload may carry its file's bound (CITYHEX_ATTACHMENT_MAX_MB) and FORM_SLACK more."""
FORM_SLACK = 64 * 1024
"""Room for an upload form's other fields and part headers around its file."""
BOUNDARY = re.compile(rb"boundary=\"?([^\";]+)")
WAIT_S = 10.0
"""How long a retry waits for a concurrent first request with its key to answer."""


def idempotency_key(scope: Scope) -> str | None:
    """The request's Idempotency-Key when it is a POST that honours one."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    if not any(p.fullmatch(scope["path"]) for p in IDEMPOTENT_POSTS):
        return None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return value.decode("latin-1")
    return None


def caller_of(principal: Principal, request: Request) -> str:
    """Whose keys a request's key is among: the API key (or the key a token was made from),
    else the token's subject and user; anonymous callers by their address."""
    if principal.role == ANONYMOUS:
        return f"{ANONYMOUS}@{client_address(request)}"
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"{principal.role}:{principal.name}#{principal.inspector_id}"


def fingerprint(scope: Scope, body: bytes) -> bytes:
    """SHA-256 of what makes two requests the same: path, If-Match and the body (as
    canonical JSON when it is JSON, so key order and spacing do not count; a multipart form
    without its boundary, which a client draws anew for every attempt)."""
    headers = dict(scope["headers"])
    boundary = BOUNDARY.search(headers.get(b"content-type", b""))
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body.replace(boundary.group(1), b"") if boundary else body
    if_match = headers.get(b"if-match", b"")
    digest = hashlib.sha256()
    for part in (scope["path"].encode(), if_match, canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def body_limit(scope: Scope) -> int:
    """The largest body of a request with a key kept to be compared: MAX_BODY, or an
    upload's file bound and FORM_SLACK when that is more."""
    if ATTACHMENTS.fullmatch(scope["path"]):
        return max(MAX_BODY, attachment_settings().max_bytes + FORM_SLACK)
    return MAX_BODY


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The whole request body; 413 past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise PayloadTooLarge(
                f"a request with an Idempotency-Key may carry at most {limit} bytes",
                code="payload_too_large",
            )
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class Idempotency:
    """Answers a retried POST (same caller, same Idempotency-Key) with the stored first
    answer (header ``Idempotent-Replayed: true``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = idempotency_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not KEY.fullmatch(key):
            error = BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
                code="invalid_idempotency_key",
            )
            await cityhex_error_response(error)(scope, receive, send)
            return
        try:
            principal = await principal_from(request, request.headers.get("authorization"))
        except CityHexError:  # the route answers the bad credentials itself
            await self.app(scope, receive, send)
            return
        engine = scope["app"].state.engine
        try:
            body = await read_body(receive, body_limit(scope))
            stored = await claim(
                engine,
                caller_of(principal, request),
                key,
                fingerprint(scope, body),
                api_settings().idempotency_key_hours * 3600,
                WAIT_S,
            )
        except CityHexError as exc:
            await cityhex_error_response(exc)(scope, receive, send)
            return
        except DATABASE_FAILURES as exc:
            await (await database_failure_response(request, exc))(scope, receive, send)
            return
        if stored is not None:
            await replay(stored, send)
            return
        held = (engine, caller_of(principal, request), key)
        await self.run_and_store(scope, receive, send, body, held)

    async def run_and_store(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, held: tuple
    ) -> None:
        """Run the request that holds the key; store its answer if it succeeded, else give
        the key up."""
        engine, caller, key = held
        answer: dict = {"status": 0, "headers": {}, "body": []}
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1") in REPLAYED_HEADERS
                }
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))
            await send(message)

        stored = False
        try:
            await self.app(scope, replay_body, capture)
            if 200 <= answer["status"] < 300:
                result = StoredAnswer(answer["status"], answer["headers"], b"".join(answer["body"]))
                await finish(engine, caller, key, result)
                stored = True
        finally:
            if not stored:
                await release(engine, caller, key)


async def replay(stored: StoredAnswer, send: Send) -> None:
    """Send a stored answer again."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers.items()]
    headers.append((b"idempotent-replayed", b"true"))
    headers.append((b"content-length", str(len(stored.body)).encode()))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
