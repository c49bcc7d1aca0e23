"""Serving tiles: build them in PostGIS through a dedicated asyncpg pool, cache them, and
keep the cache true through change notices.

With read replicas, a tile is built on a replica that has replayed every notice of its
layers (``layers.db.replicas``), else on the primary; a replica that cannot be reached is
skipped and the tile built on the primary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from gis.errors import BadRequest, ServiceUnavailable
from gis.tilemath import check_tile
from layers.db.engine import create_pool, plain_url
from layers.db.outage import UNAVAILABLE, outage
from layers.db.replicas import ReplicaSet
from tiles.cache import CachedTile, Key, TileCache, strong_etag
from tiles.filters import TileFilters
from tiles.invalidation import ChangeListener
from tiles.settings import TileSettings, tile_settings
from tiles.sources import Source
from tiles.statement import tile_statement

log = logging.getLogger("cityhex")

EMPTY_ETAG = strong_etag(b"")
SESSION_SETTINGS = {
    "application_name": "cityhex-tiles",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "plan_cache_mode": "force_generic_plan",
    "enable_sort": "off",
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
}
"""Session settings of tile connections: short queries side by side (no JIT, no parallel
workers), one plan per statement (no re-planning per tile, and the same row order, so the
same bytes, for the same data), groups hashed rather than sorted (tile statements never
order rows; clusters and cells are a few hundred groups of up to a million rows), and
times written in UTC as ISO text."""


class TileConnection(asyncpg.Connection):
    """A pooled tile connection: it only ever runs single SELECTs with its startup settings,
    so the pool hands it back without a reset round trip."""

    def get_reset_query(self) -> str:
        """No reset query: there is no session state to undo."""
        return ""


class Fetcher(Protocol):
    """What runs a tile statement: an asyncpg connection or pool."""

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None: ...


@dataclass(frozen=True)
class Tile:
    """A tile's bytes, its strong ETag, whether it came from the cache, and its cache key."""

    body: bytes
    etag: str
    hit: bool
    key: Key


async def build_tile(
    db: Fetcher, sources: list[Source], z: int, x: int, y: int, filters: TileFilters
) -> tuple[bytes, datetime | None]:
    """The MVT bytes of tile ``z/x/y`` of ``sources`` (one round trip), and when a
    clock-derived attribute in it next changes (None: only a write changes it)."""
    check_tile(z, x, y)
    statement = tile_statement(sources, z, x, y, filters)
    if statement is None:
        return b"", None
    sql, args = statement
    try:
        row = await db.fetchrow(sql, *args)
    except asyncpg.DataError as exc:
        raise BadRequest(f"the filter does not fit the data: {exc}", code="invalid_filter") from exc
    except Exception as exc:
        failure = outage(exc)
        if failure is None:
            raise
        log.warning("tile %s/%s/%s: %s: %s", z, x, y, failure.code, exc)
        raise failure from exc
    values = list(row) if row else []
    body = b"".join(v for v in values[0::2] if v)
    nexts = [v for v in values[1::2] if v is not None]
    return body, min(nexts) if nexts else None


def cache_key(sources: list[Source], z: int, x: int, y: int, filters: TileFilters) -> Key:
    """The cache key of a tile request (the sources as the caller sees them)."""
    names = ",".join(s.cache_name for s in sources)
    return (names, z, x, y, filters.key() + "#" + filters.visible.key())


async def open_tile_pool(url: str, settings: TileSettings) -> asyncpg.Pool:
    """A pool of tile connections to ``url`` (the primary or a replica)."""
    return await create_pool(
        url,
        settings.statement_timeout_ms,
        min_size=0,
        max_size=settings.pool_size,
        connection_class=TileConnection,
        server_settings=SESSION_SETTINGS,
    )


class TileService:
    """The tiles of one server process: a connection pool, a cache and its listener."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: TileCache,
        listener: ChangeListener | None,
        replicas: ReplicaSet | None = None,
        settings: TileSettings | None = None,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.listener = listener
        self.replicas = replicas
        self.settings = settings or tile_settings()

    @classmethod
    async def open(
        cls, url: str, settings: TileSettings | None = None, replicas: ReplicaSet | None = None
    ) -> TileService:
        """Connect to the database at ``url`` and start listening for changes (which, with
        ``replicas`` that have replicas, also tells which replica may build a tile)."""
        settings = settings or tile_settings()
        pool = await open_tile_pool(url, settings)
        cache = TileCache(int(settings.cache_mb * 1024 * 1024))
        replicas = replicas if replicas and replicas.replicas else None
        listener = (
            ChangeListener(plain_url(url), cache, replicas=replicas)
            if cache.max_bytes > 0 or replicas
            else None
        )
        if listener:
            listener.start()
        return cls(pool, cache, listener, replicas, settings)

    async def close(self) -> None:
        """Stop listening and close the pool."""
        if self.listener:
            await self.listener.stop()
        await self.pool.close()

    @property
    def caching(self) -> bool:
        """Whether the cache may be used now (it is on and hears every change)."""
        return self.cache.max_bytes > 0 and self.listener is not None and self.listener.live

    async def _build(
        self, sources: list[Source], z: int, x: int, y: int, filters: TileFilters
    ) -> tuple[bytes, datetime | None]:
        """Build a tile on a replica that may answer for its layers, else on the primary."""
        if self.replicas:
            layers = {s.layer.id for s in sources}
            replica = await self.replicas.choose(layers)
            if replica is not None:
                try:
                    pool = await self.replicas.pool(
                        replica, "tiles", lambda u: open_tile_pool(u, self.settings)
                    )
                    return await build_tile(pool, sources, z, x, y, filters)
                except (ServiceUnavailable, OSError, asyncpg.PostgresConnectionError) as exc:
                    if getattr(exc, "code", UNAVAILABLE) != UNAVAILABLE:
                        raise
                    self.replicas.failed(replica)
        return await build_tile(self.pool, sources, z, x, y, filters)

    def cached(self, key: Key) -> Tile | None:
        """The cached tile under ``key``, if the cache may be used and holds it."""
        if not self.caching:
            return None
        entry = self.cache.get(key)
        return Tile(entry.body, entry.etag, True, key) if entry else None

    def variant(self, tile: Tile, coding: str, compress: Callable[[bytes], bytes]) -> bytes:
        """``tile``'s bytes in content coding ``coding``, compressed by ``compress`` once
        while the tile is cached (now, every time, when it is not)."""
        entry = self.cache.get(tile.key) if self.caching else None
        if entry is None or entry.etag != tile.etag:
            return compress(tile.body)
        return self.cache.variant(entry, coding, compress)

    async def tile(
        self, sources: list[Source], z: int, x: int, y: int, filters: TileFilters
    ) -> Tile:
        """Tile ``z/x/y`` of ``sources``, from the cache or built (and then cached)."""
        key = cache_key(sources, z, x, y, filters)
        hit = self.cached(key)
        if hit:
            return hit
        regions = tuple((s.layer.id, s.hex) for s in sources)
        stamp = self.cache.generation([layer for layer, _ in regions])
        body, next_change = await self._build(sources, z, x, y, filters)
        etag = strong_etag(body) if body else EMPTY_ETAG
        if self.caching:
            expires = next_change.timestamp() if next_change else None
            self.cache.put(CachedTile(key, body, etag, regions, expires), stamp)
        return Tile(body, etag, False, key)
