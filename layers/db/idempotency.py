"""Idempotency keys: the first answer to a (caller, key) pair, stored until it expires.

A request carrying a key first *claims* it: a row without an answer. The request that made
the claim runs and then stores its answer (``finish``) or, when it failed, gives the claim up
(``release``) so a retry runs again. Any other request with the same caller and key meets
the row: with another fingerprint (another body) it is refused; with the same one it waits
for the answer and gets it. Expired rows count as absent and are pruned as claims are made.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import Conflict, Unprocessable

ABANDONED_S = 300
"""A claim with no answer after this long is taken to be from a request that died: the next
request with its key takes it over."""
PRUNE_BATCH = 100
"""How many expired rows each claim deletes, so the table never grows without bound."""


@dataclass(frozen=True)
class StoredAnswer:
    """The answer stored for a key: status, the headers worth replaying, body."""

    status: int
    headers: dict[str, str]
    body: bytes


async def claim(
    engine: AsyncEngine,
    caller: str,
    key: str,
    fingerprint: bytes,
    ttl_s: float,
    wait_s: float,
) -> StoredAnswer | None:
    """None when this request now holds the key and must run (then ``finish`` or
    ``release``); the stored answer when an earlier request with the same key and body has
    answered (waiting up to ``wait_s`` for one still running). 422 when the key was used
    with another body; 409 when the earlier request is still running after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM "
                    "idempotency_keys WHERE expires_at < now() LIMIT :n) OR "
                    "(caller = :caller AND key = :key AND (expires_at < now() OR "
                    "(response_status IS NULL AND created_at < now() - make_interval(secs => "
                    ":abandoned))))"
                ),
                {"n": PRUNE_BATCH, "caller": caller, "key": key, "abandoned": ABANDONED_S},
            )
            row = (
                await conn.execute(
                    text(
                        "INSERT INTO idempotency_keys (caller, key, fingerprint, expires_at) "
                        "VALUES (:caller, :key, :fp, now() + make_interval(secs => :ttl)) "
                        "ON CONFLICT (caller, key) DO NOTHING RETURNING true"
                    ),
                    {"caller": caller, "key": key, "fp": fingerprint, "ttl": ttl_s},
                )
            ).first()
            if row is not None:
                return None
            held = (
                await conn.execute(
                    text(
                        "SELECT fingerprint, response_status, response_headers, response_body "
                        "FROM idempotency_keys WHERE caller = :caller AND key = :key"
                    ),
                    {"caller": caller, "key": key},
                )
            ).first()
        if held is None:  # given up between our insert and select: try again
            continue
        if bytes(held.fingerprint) != fingerprint:
            raise Unprocessable(
                "this Idempotency-Key was already used with another request body; "
                "use a new key for a new request",
                code="idempotency_key_reused",
            )
        if held.response_status is not None:
            headers = held.response_headers
            if isinstance(headers, str):
                headers = json.loads(headers)
            return StoredAnswer(held.response_status, headers, bytes(held.response_body))
        if time.monotonic() >= deadline:
            raise Conflict(
                "a request with this Idempotency-Key is still running; retry later",
                code="idempotency_key_in_use",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(0.05)


async def finish(engine: AsyncEngine, caller: str, key: str, answer: StoredAnswer) -> None:
    """Store the answer of the request that holds the key."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET response_status = :status, "
                "response_headers = CAST(:headers AS jsonb), response_body = :body "
                "WHERE caller = :caller AND key = :key"
            ),
            {
                "status": answer.status,
                "headers": json.dumps(answer.headers),
                "body": answer.body,
                "caller": caller,
                "key": key,
            },
        )


async def release(engine: AsyncEngine, caller: str, key: str) -> None:
    """Give up a claim whose request did not succeed, so a retry runs again."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM idempotency_keys WHERE caller = :caller AND key = :key "
                "AND response_status IS NULL"
            ),
            {"caller": caller, "key": key},
        )
