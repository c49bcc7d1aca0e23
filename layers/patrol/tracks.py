"""Tracks (GeoJSON lines of the counted fixes, split where the gap between two fixes is over
``CITYHEX_PATROL_MAX_GAP_S``) and live positions (each inspector's last counted fix)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.hexgrid import to_hex
from layers.patrol.coverage import check_period
from layers.patrol.settings import patrol_settings
from layers.patrol.shifts import scheduled_inspectors, shift_windows

MAX_FIXES = 200_000
LIVE_WITHIN = timedelta(hours=12)
"""How far back /patrol/live looks for a last fix."""

TRACK = text("""
WITH fx AS (
    SELECT ts, lon, lat,
           CASE WHEN ts - lag(ts) OVER (ORDER BY ts) <= CAST(:gap AS interval) THEN 0 ELSE 1 END
               AS starts
    FROM patrol_fixes
    WHERE inspector_id = :i AND ts >= :start AND ts < :end
      AND (accuracy_m IS NULL OR accuracy_m <= :acc)
    ORDER BY ts LIMIT :limit
), parts AS (
    SELECT *, sum(starts) OVER (ORDER BY ts) AS part FROM fx
)
SELECT part, min(ts), max(ts), count(*),
       ST_AsGeoJSON(ST_MakeLine(ST_MakePoint(lon, lat) ORDER BY ts), 7)
FROM parts GROUP BY part ORDER BY part
""")

LIVE = text("""
SELECT DISTINCT ON (f.inspector_id) f.inspector_id, u.name, f.ts, f.lon, f.lat, f.accuracy_m,
       f.speed_mps, g.h3
FROM patrol_fixes f
JOIN users u ON u.id = f.inspector_id
LEFT JOIN LATERAL (
    SELECT c.h3 FROM grid_cells c
    WHERE ST_Intersects(c.geom, ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326)) LIMIT 1
) g ON true
WHERE f.inspector_id = ANY(:ids) AND f.ts >= :since AND f.ts <= :now
  AND (f.accuracy_m IS NULL OR f.accuracy_m <= :acc)
ORDER BY f.inspector_id, f.ts DESC
""")


async def track(
    conn: AsyncConnection, inspector_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """The inspector's track in [start, end) as a GeoJSON FeatureCollection: one feature per
    run of fixes without a gap over the limit (a LineString, or a Point for a lone fix)."""
    check_period(start, end)
    settings = patrol_settings()
    rows = await conn.execute(
        TRACK,
        {
            "i": inspector_id,
            "start": start,
            "end": end,
            "gap": settings.max_gap,
            "acc": settings.patrol_max_accuracy_m,
            "limit": MAX_FIXES + 1,
        },
    )
    features = []
    fixes = 0
    for part, first, last, count, geometry in rows:
        fixes += count
        geom = orjson.loads(geometry)
        if count == 1:
            geom = {"type": "Point", "coordinates": geom["coordinates"][0]}
        features.append(
            {
                "type": "Feature",
                "id": int(part),
                "geometry": geom,
                "properties": {
                    "inspector_id": inspector_id,
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "fixes": count,
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "truncated": fixes > MAX_FIXES,
    }


async def live(
    conn: AsyncConnection, now: datetime, inspector_ids: Sequence[int] | None = None
) -> dict[str, Any]:
    """The last counted fix of each inspector on shift now (of ``inspector_ids`` when given,
    else of every inspector with a schedule), as GeoJSON points with their age and cell."""
    ids = list(inspector_ids) if inspector_ids is not None else await scheduled_inspectors(conn)
    shifts = await shift_windows(conn, ids, now - timedelta(seconds=1), now)
    on_shift = [i for i in ids if shifts.get(i)]
    settings = patrol_settings()
    rows = await conn.execute(
        LIVE,
        {
            "ids": on_shift,
            "since": now - LIVE_WITHIN,
            "now": now,
            "acc": settings.patrol_max_accuracy_m,
        },
    )
    features = [
        {
            "type": "Feature",
            "id": r.inspector_id,
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {
                "inspector_id": r.inspector_id,
                "name": r.name,
                "ts": r.ts.isoformat(),
                "age_s": (now - r.ts).total_seconds(),
                "accuracy_m": r.accuracy_m,
                "speed_mps": r.speed_mps,
                "cell": None if r.h3 is None else to_hex(r.h3),
            },
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features, "on_shift": len(on_shift)}
