"""Rate limits shared by every process on the database: token buckets in ``rate_buckets``.

A bucket holds at most ``capacity`` tokens and refills at ``per_minute / 60`` tokens a
second; a request spends one. With the row's ``tokens`` at time ``at``, the tokens at time
``t`` are ``min(capacity, tokens + (t − at) × rate)``: a take succeeds when that is at least
1 and stores it minus 1 with ``at = t``. The read, the check and the write are one UPSERT,
so concurrent takes from any process meet on the row lock and count exactly; the time is
the database's clock (``clock_timestamp()``), the one every server shares. A refused take
writes nothing. A bucket full again is the same as no row: each take deletes a few such
rows of its limit, so the table holds only the clients seen within one refill time.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PRUNE_BATCH = 10
"""How many refilled rows each take deletes (more than the one row a take can add)."""

NOW_TOKENS = "least(:capacity, b.tokens + extract(epoch FROM clock_timestamp() - b.at) * :rate)"
TAKE = text(
    "INSERT INTO rate_buckets AS b (name, client, tokens, at) "
    "VALUES (:name, :client, :capacity - 1, clock_timestamp()) "
    "ON CONFLICT (name, client) DO UPDATE "
    f"SET tokens = {NOW_TOKENS} - 1, at = clock_timestamp() "
    f"WHERE {NOW_TOKENS} >= 1 RETURNING tokens"
)
LEFT = text(f"SELECT {NOW_TOKENS} FROM rate_buckets b WHERE name = :name AND client = :client")
PRUNE = text(
    "DELETE FROM rate_buckets WHERE ctid IN (SELECT ctid FROM rate_buckets "
    "WHERE name = :name AND at < clock_timestamp() - make_interval(secs => :full) LIMIT :n)"
)


def capacity_of(per_minute: float) -> float:
    """The bucket size of a limit: a minute's worth, at least one."""
    return max(per_minute, 1.0)


async def take(engine: AsyncEngine, name: str, client: str, per_minute: float) -> int | None:
    """Spend one token of ``client``'s bucket of the limit ``name``: None when it was
    spent, else the seconds until one will be there (the request is refused)."""
    rate = per_minute / 60.0
    capacity = capacity_of(per_minute)
    params = {"name": name, "client": client, "capacity": capacity, "rate": rate}
    async with engine.begin() as conn:
        if rate > 0:
            await conn.execute(PRUNE, {"name": name, "full": capacity / rate, "n": PRUNE_BATCH})
        if (await conn.execute(TAKE, params)).first() is not None:
            return None
        tokens = (await conn.execute(LEFT, params)).scalar_one()
    return math.ceil((1.0 - tokens) / rate) if rate > 0 else 3600
