"""Inspectors' GPS fixes: validated, idempotent batch ingest into day partitions; retention.

A batch belongs to one inspector. It is checked row by row (a bad row is reported with its
reason, the good rows are stored), copied into a per-connection staging table and moved with
``INSERT … ON CONFLICT DO NOTHING`` on the key (inspector, ts), so a batch sent again after a
lost answer is stored once and counted as duplicates. In the same transaction, the grid
cells the new fixes and their segments touch get their last-patrolled time (for the
``patrol_staleness`` tiles), and an open off-post episode of the inspector is checked so
that ``inspector.back`` leaves as soon as they return. Fixes live in UTC-day partitions,
which ``prune_fixes`` drops whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gis.errors import BadRequest, PayloadTooLarge, Unprocessable
from gis.hexgrid import latlng_cells
from gis.jsontext import parse_json
from layers.catalog.changes import publish_change
from layers.db.batches import (
    Rejection,
    check_rows,
    checked_number,
    checked_time,
    copy_to_stage,
    drop_partitions,
    make_partitions,
)
from layers.patrol.off_post import check_inspectors
from layers.patrol.settings import patrol_settings

MAX_BATCH = 10_000
COLUMNS = ("inspector_id", "ts", "lon", "lat", "accuracy_m", "speed_mps", "h3")
Row = tuple[int, datetime, float, float, float | None, float | None]
"""A checked fix: inspector, ts, lon, lat, accuracy, speed (its cell is added on insert)."""
STALENESS_LAYER = "patrol_staleness"

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS patrol_stage (inspector_id integer, ts timestamptz, "
    "lon double precision, lat double precision, accuracy_m real, speed_mps real, h3 bigint, "
    "fresh boolean NOT NULL DEFAULT false) ON COMMIT DELETE ROWS"
)
# Key order: concurrent batches of one inspector wait for each other in the same order. The
# staged rows that were new are marked fresh (their segments are written next).
MOVE = """
WITH ins AS (
    INSERT INTO patrol_fixes (inspector_id, ts, lon, lat, accuracy_m, speed_mps, h3)
    SELECT inspector_id, ts, lon, lat, accuracy_m, speed_mps, h3 FROM patrol_stage
    ORDER BY inspector_id, ts ON CONFLICT DO NOTHING RETURNING inspector_id, ts
), mark AS (
    UPDATE patrol_stage s SET fresh = true FROM ins
    WHERE s.inspector_id = ins.inspector_id AND s.ts = ins.ts
)
SELECT count(*) FROM ins
"""


def near(staged: str) -> str:
    """SQL of CTEs ``span`` and ``near``: the counted stored fixes of each inspector of the
    CTE ``staged`` within the gap of its fixes, each flagged ``new`` when it is one of them."""
    return f"""span AS (
    SELECT inspector_id, min(ts) - CAST(:gap AS interval) AS lo,
           max(ts) + CAST(:gap AS interval) AS hi
    FROM {staged} GROUP BY inspector_id
), near AS (
    SELECT f.inspector_id, f.ts, f.lon, f.lat, f.h3,
           EXISTS (SELECT 1 FROM {staged} n WHERE n.inspector_id = f.inspector_id AND n.ts = f.ts)
               AS new
    FROM span s JOIN patrol_fixes f
      ON f.inspector_id = s.inspector_id AND f.ts >= s.lo AND f.ts <= s.hi
    WHERE f.accuracy_m IS NULL OR f.accuracy_m <= :acc
)"""


# The segments the fresh counted fixes make or break: a stored segment that a fresh fix falls
# inside is deleted, and every segment with a fresh end is written, one row per grid cell it
# meets with the fraction of its length inside that cell (a segment whose two fixes share a
# cell: that cell, 1; a segment of zero length: each cell that covers it, 1).
PIECES = (
    """
WITH fresh AS (
    SELECT DISTINCT inspector_id, ts FROM patrol_stage
    WHERE fresh AND (accuracy_m IS NULL OR accuracy_m <= :acc)
), broken AS (
    DELETE FROM patrol_pieces p USING fresh f
    WHERE p.inspector_id = f.inspector_id AND p.t0 < f.ts AND p.t1 > f.ts
      AND p.t0 >= f.ts - CAST(:gap AS interval)
), """
    + near("fresh")
    + """, pairs AS (
    SELECT inspector_id, ts AS t1, lon AS x1, lat AS y1, h3 AS h1, new,
           lag(ts) OVER w AS t0, lag(lon) OVER w AS x0, lag(lat) OVER w AS y0,
           lag(h3) OVER w AS h0, lag(new) OVER w AS new0
    FROM near WINDOW w AS (PARTITION BY inspector_id ORDER BY ts)
), seg AS (
    SELECT *, CASE WHEN h0 = h1 THEN NULL ELSE ST_SetSRID(
               ST_MakeLine(ST_MakePoint(x0, y0), ST_MakePoint(x1, y1)), 4326) END AS g
    FROM pairs WHERE (new OR new0) AND t1 - t0 <= CAST(:gap AS interval)
)
INSERT INTO patrol_pieces (inspector_id, t0, t1, h3, frac)
SELECT inspector_id, t0, t1, h0, 1.0 FROM seg WHERE g IS NULL
UNION ALL
SELECT s.inspector_id, s.t0, s.t1, c.h3,
       CASE WHEN ST_Length(s.g) = 0 THEN 1.0
            ELSE ST_Length(ST_Intersection(c.geom, s.g)) / ST_Length(s.g) END
FROM seg s JOIN grid_cells c ON ST_Intersects(c.geom, s.g) WHERE s.g IS NOT NULL
"""
)
# The cells that the staged fixes lie in and that their segments (with the fix before and
# the fix after, within the gap) cross, with the latest time each was patrolled; upserted
# into patrol_cells. A segment whose fixes share a cell is in that cell; only the others are
# cut against the cell polygons. Returns the bounding boxes of the cells whose staleness
# fell to 0 days.
TOUCHED = (
    """
WITH good AS (
    SELECT DISTINCT inspector_id, ts, h3 FROM patrol_stage
    WHERE accuracy_m IS NULL OR accuracy_m <= :acc
), """
    + near("good")
    + """, pairs AS (
    SELECT ts, lon, lat, h3, new, lag(ts) OVER w AS t0, lag(lon) OVER w AS x0,
           lag(lat) OVER w AS y0, lag(h3) OVER w AS h0, lag(new) OVER w AS new0
    FROM near WINDOW w AS (PARTITION BY inspector_id ORDER BY ts)
), crossing AS (
    SELECT ts, ST_SetSRID(ST_MakeLine(ST_MakePoint(x0, y0), ST_MakePoint(lon, lat)), 4326) AS geom
    FROM pairs
    WHERE (new OR new0) AND ts - t0 <= CAST(:gap AS interval) AND h0 <> h3
), touched AS (
    SELECT h3, ts FROM good
    UNION ALL
    SELECT c.h3, s.ts FROM crossing s JOIN grid_cells c ON ST_Intersects(c.geom, s.geom)
), cells AS (
    SELECT t.h3, max(t.ts) AS last_at FROM touched t
    WHERE EXISTS (SELECT 1 FROM grid_cells c WHERE c.h3 = t.h3) GROUP BY t.h3
), old AS (
    SELECT c.h3, p.last_at FROM cells c LEFT JOIN patrol_cells p ON p.h3 = c.h3
), up AS (
    INSERT INTO patrol_cells AS p (h3, last_at) SELECT h3, last_at FROM cells ORDER BY h3
    ON CONFLICT (h3) DO UPDATE SET last_at = greatest(p.last_at, EXCLUDED.last_at)
)
SELECT ST_XMin(g.geom), ST_YMin(g.geom), ST_XMax(g.geom), ST_YMax(g.geom)
FROM old o JOIN cells c USING (h3) JOIN grid_cells g ON g.h3 = o.h3
WHERE (o.last_at IS NULL OR o.last_at < now() - interval '1 day')
  AND c.last_at >= now() - interval '1 day'
"""
)


@dataclass
class FixReport:
    """What became of a batch: stored, already there, refused (with reasons)."""

    inspector_id: int
    received: int
    accepted: int = 0
    duplicate: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The answer to the client."""
        return {
            "inspector_id": self.inspector_id,
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": len(self.rejected),
            "rejections": [r.to_dict() for r in self.rejected],
        }


@dataclass(frozen=True)
class Batch:
    """A parsed request body: the fixes and the inspector it names (None: the caller's)."""

    fixes: list[Any]
    inspector_id: int | None


def parse_batch(body: bytes) -> Batch:
    """The fixes of a JSON body ``{"fixes": [...], "inspector_id"?}`` (or a bare array).

    Non-finite numbers are let through so that their rows can be refused one by one.
    """
    data = parse_json(body, allow_non_finite=True)
    inspector: Any = None
    if isinstance(data, dict):
        inspector = data.get("inspector_id")
        data = data.get("fixes")
    if not isinstance(data, list):
        raise BadRequest(
            "the body must be an object with a 'fixes' array (or a JSON array of fixes)",
            code="invalid_batch",
        )
    if len(data) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(data)} fixes in one batch; at most {MAX_BATCH}")
    if inspector is not None and (
        not isinstance(inspector, int) or isinstance(inspector, bool) or not 0 < inspector < 2**31
    ):
        raise BadRequest("inspector_id must be a positive integer", code="invalid_inspector")
    return Batch(data, inspector)


def _number(row: dict[str, Any], name: str, low: float, high: float) -> float | str | None:
    """The number ``name`` of a row (None when an optional one is absent), or why it is
    refused."""
    value = row.get(name)
    if value is None and name in ("accuracy_m", "speed_mps"):
        return None
    return checked_number(value, name, low, high)


def check_row(row: Any, inspector_id: int, now: datetime) -> Row | str:
    """The row as ``(inspector_id, ts, lon, lat, accuracy_m, speed_mps)``, or why it is
    refused as ``"code: reason"``."""
    if not isinstance(row, dict):
        return "malformed: a fix must be an object {ts, lon, lat, accuracy_m?, speed_mps?}"
    ts = checked_time(row.get("ts"), now)
    if isinstance(ts, str):
        return ts
    values: list[float | None] = []
    for name, low, high in (
        ("lon", -180.0, 180.0),
        ("lat", -90.0, 90.0),
        ("accuracy_m", 0.0, 1e6),
        ("speed_mps", 0.0, 1e4),
    ):
        checked = _number(row, name, low, high)
        if isinstance(checked, str):
            return checked
        values.append(checked)
    lon, lat, accuracy, speed = values
    assert lon is not None and lat is not None  # required: _number refused None
    return (inspector_id, ts.astimezone(UTC), lon, lat, accuracy, speed)


def validate_rows(
    rows: Sequence[Any], inspector_id: int, now: datetime
) -> tuple[list[Row], list[Rejection]]:
    """The valid rows and the rejections (with their batch positions)."""
    return check_rows(rows, lambda row: check_row(row, inspector_id, now))


async def check_inspector(conn: AsyncConnection, inspector_id: int) -> None:
    """422 unless ``inspector_id`` is a user."""
    found = await conn.scalar(text("SELECT 1 FROM users WHERE id = :i"), {"i": inspector_id})
    if found is None:
        raise Unprocessable(f"no user with id {inspector_id}", code="unknown_inspector")


async def ensure_partitions(conn: AsyncConnection, times: Sequence[datetime]) -> None:
    """Make the UTC-day partitions that fixes at ``times`` need and that do not exist."""
    days = sorted({t.astimezone(UTC).date() for t in times})
    missing = (
        await conn.scalars(
            text(
                "SELECT d FROM unnest(CAST(:days AS date[])) AS d "
                "WHERE to_regclass('patrol_fixes_' || to_char(d, 'YYYYMMDD')) IS NULL"
            ),
            {"days": days},
        )
    ).all()
    await make_partitions(conn, "patrol_fixes", missing)


async def insert_fixes(conn: AsyncConnection, rows: list[Row]) -> int:
    """Store ``rows`` in the open transaction of ``conn`` and mark the cells they patrol;
    how many rows were new."""
    settings = patrol_settings()
    lon = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    lat = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
    cells = latlng_cells(lon, lat).tolist()
    records = [(*row, cell) for row, cell in zip(rows, cells, strict=True)]
    await copy_to_stage(conn, STAGE, "patrol_stage", records, COLUMNS)
    accepted = (await conn.execute(text(MOVE))).scalar_one()
    if not accepted:  # a batch sent again: its segments and cells were done the first time
        return 0
    params = {"acc": settings.patrol_max_accuracy_m, "gap": settings.max_gap}
    await conn.execute(text(PIECES), params)
    boxes = (await conn.execute(text(TOUCHED), params)).all()
    if boxes:
        await publish_change(conn, STALENESS_LAYER, [tuple(b) for b in boxes])
    return accepted


async def ingest(
    engine: AsyncEngine, inspector_id: int, rows: Sequence[Any], now: datetime | None = None
) -> FixReport:
    """Validate and store one inspector's batch of ``{ts, lon, lat, accuracy_m?,
    speed_mps?}`` fixes, all of it or nothing; then close the inspector's open off-post
    episode if the new fixes bring them back."""
    if len(rows) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(rows)} fixes in one batch; at most {MAX_BATCH}")
    now = now or datetime.now(UTC)
    report = FixReport(inspector_id=inspector_id, received=len(rows))
    async with engine.connect() as conn:
        await check_inspector(conn, inspector_id)
        good, report.rejected = validate_rows(rows, inspector_id, now)
        if not good:
            return report
        await ensure_partitions(conn, [r[1] for r in good])
        await conn.commit()
        report.accepted = await insert_fixes(conn, good)
        await conn.commit()
        report.duplicate = len(good) - report.accepted
        await check_inspectors(conn, now, [inspector_id], only_open=True)
        await conn.commit()
    return report


async def prune_fixes(
    conn: AsyncConnection, older_than: timedelta, now: datetime | None = None, dry_run: bool = False
) -> list[str]:
    """Drop every day partition whose fixes are all older than ``older_than``; the names of
    the partitions dropped (or that would be, with ``dry_run``)."""
    cutoff = (now or datetime.now(UTC)) - older_than
    names = await drop_partitions(conn, "patrol_fixes", cutoff, dry_run)
    if names and not dry_run:
        upper = await conn.scalar(
            text("SELECT coalesce(min(lower), :cutoff) FROM patrol_fixes_partitions()"),
            {"cutoff": cutoff},
        )
        await conn.execute(text("DELETE FROM patrol_pieces WHERE t1 <= :u"), {"u": upper})
    return names
