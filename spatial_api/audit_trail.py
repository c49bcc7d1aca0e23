"""The audit trail of HTTP requests: writes, admin actions, key use, reads of personal data.

``AuditTrail`` is an ASGI middleware. It knows the caller through the same ``principal_from``
the routes use (a write's before it runs, a read's when its answer starts, from the key cache
the route has just filled) and records:

- every POST, PUT, PATCH and DELETE (``write``; ``admin`` when the caller has the admin
  role), done or refused. A write is recorded inside its own transaction, just before that
  commits (``layers.audit.recording``): the change and its entry commit together or not at
  all, and the entry's status is null (the HTTP status was not known yet). A write that
  committed nothing through the server's engine (it was refused, or wrote through a
  connection of its own, as grid builds and imports do), or whose answer is an error, gets
  an entry with its HTTP status before the answer leaves;
- every request to ``/audit`` (``admin``), whoever sends it;
- every answered read of personal data (``personal.read``, routes in ``PERSONAL_READS``)
  by a caller with a key: the read, never the data;
- the first use of each key or token in a UTC hour (``key.use``): each process remembers
  which it has recorded, and the database keeps one per credential and hour across
  processes, so a hot tile client costs one dictionary lookup per request.

When an entry that must precede the answer cannot be recorded, the caller gets 503
``audit_unavailable`` instead of the answer: personal data never leaves unrecorded, and a
write whose entry failed inside its transaction was not committed. An entry that follows a
change already committed elsewhere, or a key-use entry, does not hold the answer back when
it fails: the failure is logged and counted (``cityhex_audit_failures_total``), and a key's
use is tried again on its next request. An answer of 503 gets no entry: it did nothing (a
change it made would have been recorded in its transaction), and the database is likely out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import asyncpg
from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.audit.entries import ADMIN, KEY_USE, PERSONAL_READ, WRITE, Entry
from layers.audit.recording import WriteAudit, append_on, recording_writes, watch
from layers.db.engine import plain_url
from spatial_api.auth import ANONYMOUS, Principal, principal_from, query_token
from spatial_api.errors import error_response

log = logging.getLogger("cityhex.audit")

UNAVAILABLE = 503
"""An answer with this status did nothing (a change it made would have been recorded in its
transaction) and says the database is out: it gets no entry."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
PERSONAL_READS: dict[str, tuple[str, ...]] = {
    "/incidents": ("reporter",),
    "/incidents/{incident_id}": ("reporter",),
    "/incidents/{incident_id}/transitions": ("staff",),
    "/incidents/{incident_id}/attachments": ("staff", "photo_location"),
    "/collections/{layer_id}/items/{feature_id}/attachments": ("staff",),
    "/incidents/evaluation": ("staff",),  # inspectors' names and performance
    "/events": ("staff",),
    "/grid/lookup": ("staff",),
    "/grid/cells": ("staff",),
    "/grid/cells/{cell}": ("staff",),
    "/grid/cells/{cell}/assignment": ("staff",),
    "/grid/coverage": ("staff",),
    "/collections/{layer_id}/items/{feature_id}/history": ("staff",),
    "/patrol/tracks": ("patrol_track",),
    "/patrol/live": ("patrol_position",),
}
"""Route templates whose answers hold personal data for every role with a key, and what
kind: reporters' details, staff names, ids and contacts, where photos were taken, patrol
tracks (recorded as soon as the patrol routes exist)."""

POOL_SIZE = 4
TIMEOUT_S = 5.0
"""Connect and statement timeout of the audit pool's appends."""

APPEND_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    RuntimeError,
)
"""What appending on the audit pool raises when the database refuses or cannot be reached."""
AUDIT_FAILURES = Counter(
    "cityhex_audit_failures_total", "Audit entries that could not be recorded", ["action"]
)


def client_address(scope: Scope) -> str | None:
    """Where the request came from: the direct peer's address."""
    client = scope.get("client")
    return client[0] if client else None


class AnswerRefused(Exception):
    """Raised into a route whose answer the trail replaced with 503, to stop it."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the trail names them."""

    principal: Principal
    actor: str

    @property
    def credential(self) -> str | None:
        """The key or token used (None for the anonymous and for refused credentials)."""
        if self.principal.role == ANONYMOUS:
            return None
        return f"{self.principal.key_id}:{self.actor}"


async def caller_of(scope: Scope) -> Caller:
    """The caller of a request, resolved like the routes resolve it; a credential the
    routes will refuse (or cannot check now) is named as such."""
    request = Request(scope)
    header = request.headers.get("authorization")
    if not header and query_token(request) is None:
        return Caller(Principal(role=ANONYMOUS), ANONYMOUS)
    try:
        principal = await principal_from(request, header)
    except Exception:  # the route resolves it again and answers 401 or 503 itself
        return Caller(Principal(role=ANONYMOUS), "anonymous (credential not accepted)")
    return Caller(principal, principal.actor)


def entry(scope: Scope, caller: Caller, action: str, status: int | None, **detail: object) -> Entry:
    """The entry of a request: who, what (method, route, path and its ids), the status, and
    where from."""
    route = scope.get("route")
    params = scope.get("path_params") or {}
    return Entry(
        action=action,
        actor=caller.actor,
        role=caller.principal.role,
        key_id=caller.principal.key_id,
        method=scope["method"],
        route=getattr(route, "path", None),
        path=scope["path"],
        target={k: str(v) for k, v in params.items()} or None,
        status=status,
        client=client_address(scope),
        detail=dict(detail) or None,
    )


def request_entry(
    scope: Scope, caller: Caller, write: WriteAudit | None, status: int
) -> Entry | None:
    """The entry a request needs before its answer leaves, if any."""
    if write is not None:
        if write.recorded and status < 400:
            return None
        admin = caller.principal.role == "admin"
        return entry(scope, caller, ADMIN if admin else WRITE, status)
    template = getattr(scope.get("route"), "path", None)
    if template is not None and (template == "/audit" or template.startswith("/audit/")):
        return entry(scope, caller, ADMIN, status)
    kinds = PERSONAL_READS.get(template or "")
    if (
        kinds
        and status < 400
        and scope["method"] in READ_METHODS
        and caller.principal.role != ANONYMOUS
    ):
        return entry(scope, caller, PERSONAL_READ, status, personal=list(kinds))
    return None


def must_precede(found: Entry, write: WriteAudit | None) -> bool:
    """Whether ``found`` holds the answer back when it cannot be recorded: all but the
    entry of a write answered with success (its change is committed already)."""
    return write is None or found.status is None or found.status >= 400


class AuditTrail:
    """Records each request's audit entries (see the module) before its answer leaves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pool: asyncpg.Pool | None = None
        self.key_hours: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(scope, send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in WRITE_METHODS:
            await self._serve(scope, receive, send, None, None)
            return
        caller = await caller_of(scope)
        write = WriteAudit(lambda: entry(scope, caller, self._write_action(caller), None))
        with recording_writes(write):
            await self._serve(scope, receive, send, caller, write)

    @staticmethod
    def _write_action(caller: Caller) -> str:
        return ADMIN if caller.principal.role == "admin" else WRITE

    def _lifespan_send(self, scope: Scope, send: Send) -> Send:
        """``send`` that opens the audit pool (and watches the engine) once the application
        has started, and closes the pool when it has shut down."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                engine = scope["app"].state.engine
                watch(engine)
                self.pool = await asyncpg.create_pool(
                    plain_url(engine.url.render_as_string(hide_password=False)),
                    min_size=0,
                    max_size=POOL_SIZE,
                    timeout=TIMEOUT_S,
                    command_timeout=TIMEOUT_S,
                )
            elif message["type"] == "lifespan.shutdown.complete" and self.pool is not None:
                await self.pool.close()
                self.pool = None
            await send(message)

        return lifespan_send

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller | None,
        write: WriteAudit | None,
    ) -> None:
        """Run the request, recording its entries when its answer starts (a read's caller
        is resolved then, from the key cache the route has just filled)."""
        refused = False
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal refused, started
            if refused:
                raise AnswerRefused
            if message["type"] == "http.response.start":
                started = True
                if not await self._record(scope, caller, write, message["status"]):
                    refused = True
                    await self._refuse(send)
                    raise AnswerRefused
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if refused:  # the 503 is sent: stop the route (a stream would run on)
                return
            if not started:
                await self._record(scope, caller, write, 500)
            raise

    async def _record(
        self, scope: Scope, caller: Caller | None, write: WriteAudit | None, status: int
    ) -> bool:
        """Record the request's entries; False when the answer must not leave."""
        if write is not None and write.failed:
            AUDIT_FAILURES.labels(write.build().action).inc()
            return False
        if status == UNAVAILABLE:
            return True
        if caller is None:
            caller = await caller_of(scope)
        found = request_entry(scope, caller, write, status)
        key_use = self._key_use(scope, caller, status)
        entries = [e for e in (found, key_use) if e is not None]
        if not entries:
            return True
        try:
            await self._append(entries)
        except APPEND_FAILURES as exc:
            for failed in entries:
                AUDIT_FAILURES.labels(failed.action).inc()
            log.error("audit entries %s not recorded: %s", [e.action for e in entries], exc)
            return found is None or not must_precede(found, write)
        if key_use is not None and caller.credential is not None:
            self._remember_key(caller.credential)
        return True

    async def _append(self, entries: list[Entry]) -> None:
        if self.pool is None:
            raise RuntimeError("the audit pool is not open (the application has not started)")
        await append_on(self.pool, entries)

    def _key_use(self, scope: Scope, caller: Caller, status: int) -> Entry | None:
        """The key-use entry of the request, unless this process recorded the credential's
        use this hour."""
        credential = caller.credential
        if credential is None or self.key_hours.get(credential) == _hour():
            return None
        return replace(entry(scope, caller, KEY_USE, status), path=None, target=None)

    def _remember_key(self, credential: str) -> None:
        if len(self.key_hours) > 100_000:
            self.key_hours.clear()
        self.key_hours[credential] = _hour()

    @staticmethod
    async def _refuse(send: Callable[[Message], Awaitable[None]]) -> None:
        response = error_response(
            503,
            "audit_unavailable",
            "the audit trail could not record this request, so nothing was done or answered",
        )
        await send({"type": "http.response.start", "status": 503, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def _hour() -> int:
    return int(time.time() // 3600)
