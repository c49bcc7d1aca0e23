"""Cache invalidation: every worker LISTENs for change notices and drops the tiles they touch.

A notice names a layer and the lon/lat boxes a write touched (old and new geometry). A
cached tile showing the layer's rows is dropped when its envelope widened by the MVT buffer
intersects one of the boxes, at every zoom. A tile showing the layer's H3 aggregate counts
whole cells, so for it each box first grows by the reach of a cell of that zoom.

While the listening connection is down, notices may be lost: the cache is then emptied and
bypassed until the connection is back.

With read replicas, this listener is also what tells them apart (``layers.db.replicas``):
each notice marks its layer as read from the primary until the primary's WAL position,
read on this connection after the notice arrived, stamps it; only a replica that has
replayed that position then answers for the layer. One connection does both, so no tile
is built from a replica between the drop of a stale tile and its notice's stamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence

import asyncpg
import h3

from gis.tilemath import BBox, buffer_margin, hex_resolution, mercator_bbox, tile_range
from layers.catalog.changes import CHANNEL, parse_payload
from layers.db.replicas import LSN, ReplicaSet
from tiles.cache import Key, Region, TileCache

log = logging.getLogger("cityhex.tiles")
CELL_REACH = 3.0
"""How many cell edges from one of its points a cell's polygon can extend."""
PROBE_SECONDS = 10.0


def hex_reach(box: BBox, z: int) -> BBox:
    """``box`` (EPSG:3857) grown by the reach of an aggregate cell of zoom ``z``."""
    edge = h3.average_hexagon_edge_length(hex_resolution(z), unit="m")
    # a ground distance spans 1/cos(lat) Mercator metres; take the box's widest latitude
    lat = max(abs(box[1]), abs(box[3])) / 6378137.0
    stretch = math.cosh(lat)  # 1 / cos(latitude) for a Mercator y
    pad = CELL_REACH * edge * stretch
    return (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)


def touched(cache: TileCache, region: Region, z: int, boxes: Sequence[BBox]) -> set[Key]:
    """The cached tiles of ``region`` at zoom ``z`` whose buffered envelope meets a box
    (EPSG:3857)."""
    _, aggregate = region
    at = cache.positions(region, z)
    keys: set[Key] = set()
    for box in boxes:
        xmin, ymin, xmax, ymax = tile_range(
            hex_reach(box, z) if aggregate else box, z, buffer_margin()
        )
        if (xmax - xmin + 1) * (ymax - ymin + 1) <= len(at):
            for x in range(xmin, xmax + 1):
                for y in range(ymin, ymax + 1):
                    keys |= at.get((x, y), set())
        else:
            for (x, y), found in at.items():
                if xmin <= x <= xmax and ymin <= y <= ymax:
                    keys |= found
    return keys


def invalidate(cache: TileCache, layer: str, bboxes: Sequence[BBox] | None) -> int:
    """Drop the cached tiles a change of ``layer`` in the lon/lat ``bboxes`` can alter (all
    of the layer's tiles when ``bboxes`` is None); how many were dropped."""
    cache.changed(layer)
    keys: set[Key] = set()
    for aggregate in (False, True):
        region = (layer, aggregate)
        for z in cache.zooms(region):
            if bboxes is None:
                keys |= {k for found in cache.positions(region, z).values() for k in found}
            else:
                keys |= touched(cache, region, z, [mercator_bbox(b) for b in bboxes])
    return cache.drop(keys)


class ChangeListener:
    """Keeps a connection LISTENing on the change channel and applies each notice to a
    cache; empties the cache whenever it (re)connects, since notices may have been missed."""

    def __init__(
        self,
        url: str,
        cache: TileCache,
        connect: Callable[..., asyncpg.Connection] = asyncpg.connect,
        replicas: ReplicaSet | None = None,
    ) -> None:
        self.url = url
        self.cache = cache
        self.replicas = replicas
        self.connected = asyncio.Event()
        self._connect = connect
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Begin listening in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop listening."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def live(self) -> bool:
        """Whether notices are being received (the cache may be used)."""
        return self.connected.is_set()

    def _notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            layer, boxes = parse_payload(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed change notice: %r", payload[:200])
            return
        if self.replicas:
            self.replicas.heard(layer)
        invalidate(self.cache, layer, boxes)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._listen()
                delay = 0.2
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("tile cache listener: %s; retrying in %.1f s", exc, delay)
            self.connected.clear()
            self.cache.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen(self) -> None:
        conn = await self._connect(self.url, timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._notice)
            self.cache.clear()
            if self.replicas:
                self.replicas.hearing(await conn.fetchval(f"SELECT {LSN}", timeout=PROBE_SECONDS))
            self.connected.set()
            while not lost.is_set():
                await self._pause(lost)
                if lost.is_set():
                    break
                if self.replicas:  # the probe doubles as the stamp of the notices heard
                    mark = self.replicas.stamp_mark()
                    position = await conn.fetchval(f"SELECT {LSN}", timeout=PROBE_SECONDS)
                    self.replicas.stamp(mark, position)
                else:
                    await conn.fetchval("SELECT 1", timeout=PROBE_SECONDS)
        finally:
            self.connected.clear()
            if self.replicas:
                self.replicas.hearing(None)
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _pause(self, lost: asyncio.Event) -> None:
        """Wait until the connection is lost, a notice waits for its stamp, or it is time
        to probe the connection."""
        events = [lost] + ([self.replicas.wake] if self.replicas else [])
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=PROBE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
