"""Read replicas: which streaming replica may answer a read, and when none may.

A replica answers a read only when all three hold:

- it is **healthy**: a background check (every ``CHECK_INTERVAL_S``) reaches it and finds it
  in recovery, receiving WAL, and no more than ``CITYHEX_REPLICA_MAX_LAG_S`` behind: the lag
  is 0 when it has replayed all the WAL it received, else the age of the last transaction
  it replayed (``now() - pg_last_xact_replay_timestamp()``), so an idle primary does not
  count as lag. A replica that fails a check is skipped and taken back by a later check
  that passes.
- the process **hears change notices** (its LISTEN connection on the primary is up): while it
  is down, a write could go unheard, so every read goes to the primary.
- it has **replayed every notice** the process has heard for what the read touches. Each
  notice is stamped with the primary's WAL insert position read *after* the notice arrived
  (``stamp``): PostgreSQL sends a notice only once its transaction has committed, so that
  position lies at or past the end of the commit record, and a replica whose
  ``pg_last_wal_replay_lsn()`` has reached it shows the write. Until a notice is stamped, the
  layers it names are read from the primary.

The insert position, not ``pg_current_wal_lsn()`` (the *write* position): with
``synchronous_commit = off`` a commit returns before its record is written out, so the write
position can still lie before it. And not a position taken inside the writing transaction
(a trigger's ``pg_current_wal_insert_lsn()`` in the NOTIFY payload): that lies before the
commit record, and a replica that has replayed up to it may not show the commit yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from layers.db.engine import create_async_engine, create_pool, plain_url

log = logging.getLogger("cityhex.replicas")

CHECK_INTERVAL_S = 1.0
"""How often each replica's health and replay position are checked."""
CHECK_TIMEOUT_S = 2.0
"""How long a check (or a request's look at a replica's position) waits for an answer."""
LSN = "(pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
"""The primary's WAL insert position, in bytes."""
REPLAY = "(pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
"""A replica's replayed WAL position, in bytes."""
HEALTH = f"""SELECT pg_is_in_recovery() AS standby, {REPLAY} AS replayed,
    (SELECT count(*) = 1 FROM pg_stat_wal_receiver) AS receiving,
    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag"""
"""What a check reads on a replica: whether it is one, its replayed position, whether its
WAL receiver runs, and its lag in seconds (NULL: behind, with no transaction replayed yet)."""
EVERYTHING = "*"
"""The name under which a notice of any layer also counts (for reads that name no layer)."""

Opener = Callable[[str], Awaitable[asyncpg.Pool]]


async def _open_probe(url: str) -> asyncpg.Pool:
    """A pool of two connections for looking at a replica's position."""
    return await create_pool(
        url,
        checked=False,
        min_size=0,
        max_size=2,
        command_timeout=CHECK_TIMEOUT_S,
        server_settings={"application_name": "cityhex-replica-check"},
    )


def replica_name(url: str) -> str:
    """A replica's URL without user and password: host:port/database."""
    u = make_url(url)
    return f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"


@dataclass
class Replica:
    """One replica: its URL, its engine and pools, and what the last check found."""

    url: str
    name: str
    engine: AsyncEngine
    pools: dict[str, asyncpg.Pool] = field(default_factory=dict)
    healthy: bool = False
    replayed: int = 0
    lag_s: float | None = None
    state: str = "unknown"
    """up, lagging, down (not reachable or not in recovery), or unknown (not checked yet)."""


class ReplicaSet:
    """The replicas of one server process, their health check, and the WAL positions of the
    change notices the process has heard."""

    def __init__(
        self,
        urls: Iterable[str],
        max_lag_s: float,
        on_check: Callable[[list[Replica]], None] | None = None,
    ) -> None:
        self.max_lag_s = max_lag_s
        self.replicas = [
            Replica(plain_url(u), replica_name(u), create_async_engine(u)) for u in urls
        ]
        self.listening = False
        """Whether the process hears change notices now (set by the notice listener)."""
        self.on_check = on_check
        self._floor = 0
        self._required: dict[str, int] = {}
        self._unstamped: dict[str, int] = {}
        self._heard = 0
        self.wake = asyncio.Event()
        """Set when a notice waits for its stamp."""
        self._turn = itertools.count()
        self._task: asyncio.Task | None = None
        self._pool_lock = asyncio.Lock()

    # -- notices ---------------------------------------------------------------------------

    def heard(self, layer: str) -> None:
        """A change notice of ``layer`` arrived: until it is stamped, read it from the
        primary."""
        self._heard += 1
        self._unstamped[layer] = self._unstamped[EVERYTHING] = self._heard
        self.wake.set()

    def hearing(self, position: int | None) -> None:
        """The process hears notices again from now on, the primary being at ``position``
        when the listening began (None: it hears none now). Notices may have been missed
        while it did not, so every read needs a replica that has replayed ``position``."""
        if position is None:
            self.listening = False
            return
        self._floor = max(self._floor, position)
        for layer in self._required:
            self._required[layer] = max(self._required[layer], position)
        self.listening = True

    def stamp_mark(self) -> int:
        """The count of notices heard so far, taken just before the primary's position is
        asked for."""
        self.wake.clear()
        return self._heard

    def stamp(self, mark: int, position: int) -> None:
        """Stamp every notice heard up to ``mark`` with the primary's insert ``position``,
        read after they arrived."""
        for layer, heard in list(self._unstamped.items()):
            if heard <= mark:
                self._required[layer] = max(self._required.get(layer, self._floor), position)
                del self._unstamped[layer]

    def required(self, layers: Iterable[str] | None) -> int | None:
        """The WAL position a replica must have replayed to answer a read of ``layers``
        (None: of anything); None when only the primary may answer (a notice not stamped
        yet, or the process not hearing notices)."""
        if not self.listening:
            return None
        names = [EVERYTHING] if layers is None else list(layers)
        if any(n in self._unstamped for n in names):
            return None
        return max((self._required.get(n, self._floor) for n in names), default=self._floor)

    # -- choosing a replica ----------------------------------------------------------------

    async def choose(self, layers: Iterable[str] | None = None) -> Replica | None:
        """A healthy replica that has replayed every notice touching ``layers`` (None: any
        layer), taken in turn; None when the primary must answer."""
        need = self.required(layers)
        if need is None:
            return None
        healthy = [r for r in self.replicas if r.healthy]
        if not healthy:
            return None
        start = next(self._turn)
        ordered = [healthy[(start + i) % len(healthy)] for i in range(len(healthy))]
        for replica in ordered:
            if replica.replayed >= need:
                return replica
        for replica in ordered:  # the last check may be old: ask the replica itself
            try:
                await self._look(replica)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.failed(replica)
                continue
            need = self.required(layers)  # notices may have come while it answered
            if need is None:
                return None
            if replica.replayed >= need:
                return replica
        return None

    def failed(self, replica: Replica) -> None:
        """A read on ``replica`` could not reach it: skip it until a check passes."""
        replica.healthy = False
        replica.state = "down"

    async def pool(self, replica: Replica, name: str, opener: Opener) -> asyncpg.Pool:
        """The replica's asyncpg pool called ``name``, opened by ``opener(url)`` on first
        use."""
        found = replica.pools.get(name)
        if found is not None:
            return found
        async with self._pool_lock:
            if name not in replica.pools:
                replica.pools[name] = await opener(replica.url)
            return replica.pools[name]

    # -- the health check ------------------------------------------------------------------

    async def _look(self, replica: Replica) -> asyncpg.Record:
        """Read ``replica``'s health (on its small probe pool) and note its replayed
        position."""
        probe = await self.pool(replica, "probe", _open_probe)
        row = await probe.fetchrow(HEALTH, timeout=CHECK_TIMEOUT_S)
        if row["standby"] and row["replayed"] is not None:
            replica.replayed = max(replica.replayed, int(row["replayed"]))
        return row

    async def check(self) -> None:
        """Check every replica once."""
        for replica in self.replicas:
            try:
                row = await self._look(replica)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                replica.healthy, replica.state, replica.lag_s = False, "down", None
                log.debug("replica %s: %s", replica.name, exc)
                continue
            if not (row["standby"] and row["receiving"]):
                replica.healthy, replica.state, replica.lag_s = False, "down", None
                continue
            replica.lag_s = row["lag"]
            replica.healthy = replica.lag_s is not None and replica.lag_s <= self.max_lag_s
            replica.state = "up" if replica.healthy else "lagging"
        if self.on_check:
            self.on_check(self.replicas)

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_INTERVAL_S)

    def start(self) -> None:
        """Begin checking the replicas in the background."""
        if self.replicas:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop checking; close every replica's engine and pools."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            for pool in replica.pools.values():
                await pool.close()
            await replica.engine.dispose()

    def status(self) -> list[dict[str, Any]]:
        """Each replica's name, state, lag (seconds) and replayed position (bytes)."""
        return [
            {"replica": r.name, "state": r.state, "lag_s": r.lag_s, "replayed": r.replayed}
            for r in self.replicas
        ]
