"""Patrolled cells, coverage and on-duty time, computed exactly in PostGIS.

Definitions (docs/patrol.md gives them with formulas):

- a fix counts unless its ``accuracy_m`` is over ``CITYHEX_PATROL_MAX_ACCURACY_M``;
- two consecutive counted fixes of an inspector at most ``CITYHEX_PATROL_MAX_GAP_S`` apart
  form a segment: the straight line between them in lon/lat, travelled at constant speed;
- a segment is cut to a time window [ws, we) by its time fractions
  a = max(0, (ws − t0)/(t1 − t0)) and b = min(1, (we − t0)/(t1 − t0)), which are also its
  fractions of length (constant speed on a straight line);
- a fix lies in its H3 cell (``patrol_fixes.h3``, computed on ingest with the h3 package at
  the grid's resolution); a cell (a grid cell: the stored polygon) is patrolled in a period
  when a segment cut to the period intersects it or a fix of the period lies in it;
- a whole segment whose two fixes lie in the same cell lies in that cell (cells are convex)
  and is not cut; every other piece is cut exactly against the cell polygons;
- the time a segment piece of duration d spends in the inspector's assigned cells is
  d · min(1, Σ length(piece ∩ cell) / length(piece)) over the assigned cells it meets
  (PostGIS ST_Intersection, planar in lon/lat: the same plane the segment is straight in);
  a piece of zero length (the inspector stood still) counts whole when it lies in an
  assigned cell;
- on-duty time = Σ of that over the pieces in the period (and, for 在岗率, over the pieces in
  the shifts of the period).

Cells are assigned as they are now (``grid_cells.inspector_id``).

How: a segment that lies wholly inside a window is read from ``patrol_pieces`` (each grid
cell it meets and its length fraction there, written when its fixes arrived, see
``layers.patrol.fixes``), so a period costs a sum over stored rows joined to the inspector's
cells; only the segments across a window's edge are cut when asked, from the fixes within
the gap of that edge. (A stored segment is not capped at 1 over its cells: the sum of its
fractions exceeds 1 only for a segment running along a shared cell edge.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from gis.hexgrid import to_hex
from layers.incidents.working_time import working_time_settings
from layers.patrol.settings import patrol_settings
from layers.patrol.shifts import Interval, shift_windows, total_seconds

PERIOD, SHIFT = 0, 1
"""Kinds of time window: the asked period, and a shift within it."""
MAX_PERIOD_DAYS = 92

SEGMENTS = """
win AS (
    SELECT * FROM unnest(CAST(:wi AS integer[]), CAST(:wk AS integer[]),
                         CAST(:ws AS timestamptz[]), CAST(:we AS timestamptz[]))
        AS w(inspector_id, kind, ws, we)
), fx AS (
    SELECT f.inspector_id, f.ts, f.lon, f.lat, f.h3 FROM patrol_fixes f
    WHERE f.inspector_id = ANY(CAST(:inspectors AS integer[]))
      AND f.ts >= CAST(:lo AS timestamptz) AND f.ts <= CAST(:hi AS timestamptz)
      AND (f.accuracy_m IS NULL OR f.accuracy_m <= :acc)
), pairs AS (
    SELECT inspector_id, lag(ts) OVER w AS t0, ts AS t1, lag(lon) OVER w AS x0,
           lag(lat) OVER w AS y0, lon AS x1, lat AS y1, lag(h3) OVER w AS h0, h3 AS h1
    FROM fx WINDOW w AS (PARTITION BY inspector_id ORDER BY ts)
), seg AS (
    SELECT *, date_part('epoch', t1 - t0) AS dur FROM pairs
    WHERE t0 IS NOT NULL AND t1 - t0 <= CAST(:gap AS interval)
), piece AS (
    SELECT s.*, w.kind, w.ws, w.we,
           greatest(0.0, date_part('epoch', w.ws - s.t0) / s.dur) AS a,
           least(1.0, date_part('epoch', w.we - s.t0) / s.dur) AS b
    FROM seg s JOIN win w ON w.inspector_id = s.inspector_id AND s.t0 < w.we AND s.t1 > w.ws
), geo AS (
    SELECT inspector_id, kind, t0, dur, a, b, (b - a) * dur AS secs, h0,
           CASE WHEN h0 = h1 AND a = 0 AND b = 1 THEN NULL ELSE ST_SetSRID(ST_MakeLine(
               CASE WHEN a = 0 THEN ST_MakePoint(x0, y0)
                    ELSE ST_MakePoint(x0 + a * (x1 - x0), y0 + a * (y1 - y0)) END,
               CASE WHEN b = 1 THEN ST_MakePoint(x1, y1)
                    ELSE ST_MakePoint(x0 + b * (x1 - x0), y0 + b * (y1 - y0)) END), 4326)
           END AS g
    FROM piece
)
"""

MINE = """
mine AS (
    SELECT h3, inspector_id FROM grid_cells
    WHERE inspector_id = ANY(CAST(:inspectors AS integer[]))
)
"""

CUT = """
SELECT CASE WHEN ST_Length(g.g) = 0 THEN (CASE WHEN count(c.h3) > 0 THEN 1.0 ELSE 0.0 END)
            ELSE least(1.0, coalesce(sum(ST_Length(ST_Intersection(c.geom, g.g))), 0)
                            / ST_Length(g.g)) END AS frac,
       array_agg(c.h3) FILTER (WHERE c.h3 IS NOT NULL) AS cells
FROM grid_cells c WHERE c.inspector_id = g.inspector_id AND ST_Intersects(c.geom, g.g)
"""
"""The fraction of a cut piece ``g.g`` inside the inspector's cells, and the cells it meets."""

EDGE_SEGMENTS = SEGMENTS.replace(
    """    SELECT f.inspector_id, f.ts, f.lon, f.lat, f.h3 FROM patrol_fixes f
    WHERE f.inspector_id = ANY(CAST(:inspectors AS integer[]))
      AND f.ts >= CAST(:lo AS timestamptz) AND f.ts <= CAST(:hi AS timestamptz)
      AND (f.accuracy_m IS NULL OR f.accuracy_m <= :acc)""",
    """    SELECT DISTINCT f.inspector_id, f.ts, f.lon, f.lat, f.h3
    FROM win w CROSS JOIN LATERAL (VALUES (w.ws), (w.we)) AS e(at)
    JOIN patrol_fixes f ON f.inspector_id = w.inspector_id
         AND f.ts >= e.at - CAST(:gap AS interval) AND f.ts <= e.at + CAST(:gap AS interval)
    WHERE f.accuracy_m IS NULL OR f.accuracy_m <= :acc""",
).replace(
    "JOIN win w ON w.inspector_id = s.inspector_id AND s.t0 < w.we AND s.t1 > w.ws",
    "JOIN win w ON w.inspector_id = s.inspector_id AND s.t0 < w.we AND s.t1 > w.ws\n"
    "                     AND (s.t0 < w.ws OR s.t1 > w.we)",
)
"""SEGMENTS for the segments that straddle an edge of a window only: the fixes within the
gap of each edge (a straddling segment's two fixes and every fix between them are there)."""
assert EDGE_SEGMENTS.count("e(at)") == 1 and EDGE_SEGMENTS.count("s.t1 > w.we") == 1

COVERAGE = text(f"""
WITH {EDGE_SEGMENTS}, {MINE}, in_windows AS MATERIALIZED (
    SELECT w.inspector_id, w.kind, p.h3, date_part('epoch', p.t1 - p.t0) * p.frac AS secs
    FROM win w JOIN patrol_pieces p ON p.inspector_id = w.inspector_id
                                   AND p.t0 >= w.ws AND p.t1 <= w.we
), inner_pieces AS (
    SELECT i.* FROM in_windows i JOIN mine m ON m.h3 = i.h3 AND m.inspector_id = i.inspector_id
), spots AS MATERIALIZED (
    SELECT f.inspector_id, f.h3 FROM win w
    JOIN patrol_fixes f ON f.inspector_id = w.inspector_id AND f.ts >= w.ws AND f.ts < w.we
    WHERE w.kind = {PERIOD} AND (f.accuracy_m IS NULL OR f.accuracy_m <= :acc)
), whole AS (
    SELECT g.inspector_id, g.kind, g.secs, g.h0 AS h3
    FROM geo g JOIN mine m ON m.h3 = g.h0 AND m.inspector_id = g.inspector_id
    WHERE g.g IS NULL
), cut AS (
    SELECT g.inspector_id, g.kind, g.secs * x.frac AS secs, x.cells
    FROM geo g CROSS JOIN LATERAL ({CUT}) x
    WHERE g.g IS NOT NULL
), seconds AS (
    SELECT inspector_id, kind, sum(secs) AS secs FROM (
        SELECT inspector_id, kind, secs FROM inner_pieces
        UNION ALL SELECT inspector_id, kind, secs FROM whole
        UNION ALL SELECT inspector_id, kind, secs FROM cut
    ) t GROUP BY inspector_id, kind
), patrolled AS (
    SELECT inspector_id, h3 FROM inner_pieces WHERE kind = {PERIOD}
    UNION
    SELECT inspector_id, h3 FROM whole WHERE kind = {PERIOD}
    UNION
    SELECT inspector_id, unnest(cells) FROM cut WHERE kind = {PERIOD}
    UNION
    SELECT s.inspector_id, s.h3 FROM spots s
    JOIN mine m ON m.h3 = s.h3 AND m.inspector_id = s.inspector_id
), cells AS (
    SELECT inspector_id, array_agg(h3 ORDER BY h3) AS cells FROM patrolled GROUP BY inspector_id
), assigned AS (
    SELECT inspector_id, count(*) AS n FROM mine GROUP BY inspector_id
)
SELECT i.id, coalesce(a.n, 0), coalesce(p.secs, 0), coalesce(s.secs, 0),
       coalesce(c.cells, '{{}}')
FROM unnest(CAST(:inspectors AS integer[])) AS i(id)
LEFT JOIN assigned a ON a.inspector_id = i.id
LEFT JOIN seconds p ON p.inspector_id = i.id AND p.kind = {PERIOD}
LEFT JOIN seconds s ON s.inspector_id = i.id AND s.kind = {SHIFT}
LEFT JOIN cells c ON c.inspector_id = i.id
ORDER BY i.id
""")

INSIDE_TIMES = text(f"""
WITH {SEGMENTS}, {MINE}, part AS (
    SELECT g.t0, g.dur, g.a, g.b, g.g, (ST_Dump(ST_Intersection(c.geom, g.g))).geom AS p
    FROM geo g JOIN grid_cells c ON c.inspector_id = g.inspector_id
                                AND ST_Intersects(c.geom, g.g)
    WHERE g.g IS NOT NULL
)
SELECT t0 + make_interval(secs => (a + (b - a) * ST_LineLocatePoint(g, ST_StartPoint(p))) * dur),
       t0 + make_interval(secs => (a + (b - a) * ST_LineLocatePoint(g, ST_EndPoint(p))) * dur)
FROM part WHERE GeometryType(p) = 'LINESTRING' AND ST_Length(g) > 0
UNION ALL
SELECT DISTINCT t0 + make_interval(secs => a * dur), t0 + make_interval(secs => b * dur)
FROM part WHERE ST_Length(g) = 0
UNION ALL
SELECT g.t0, g.t0 + make_interval(secs => g.dur)
FROM geo g JOIN mine m ON m.h3 = g.h0 AND m.inspector_id = g.inspector_id WHERE g.g IS NULL
ORDER BY 1
""")


@dataclass
class InspectorCoverage:
    """One inspector's patrol figures over a period."""

    inspector_id: int
    assigned_cells: int
    patrolled_cells: list[int]
    on_duty_seconds: float
    shift_on_duty_seconds: float
    shifts: list[Interval] = field(default_factory=list)
    off_post: list[dict[str, Any]] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        """Patrolled assigned cells ÷ assigned cells (None without assigned cells)."""
        if not self.assigned_cells:
            return None
        return len(self.patrolled_cells) / self.assigned_cells

    @property
    def shift_seconds(self) -> float:
        """The length of the inspector's shifts in the period."""
        return total_seconds(self.shifts)

    @property
    def on_duty_rate(self) -> float | None:
        """在岗率: on-duty time within the shifts ÷ the shifts' length (None without shifts)."""
        return self.shift_on_duty_seconds / self.shift_seconds if self.shift_seconds else None

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data (cells as hex strings, times in minutes)."""
        return {
            "inspector_id": self.inspector_id,
            "assigned_cells": self.assigned_cells,
            "patrolled_cells": [to_hex(c) for c in self.patrolled_cells],
            "coverage": self.coverage,
            "on_duty_minutes": self.on_duty_seconds / 60,
            "shift_on_duty_minutes": self.shift_on_duty_seconds / 60,
            "shift_minutes": self.shift_seconds / 60,
            "on_duty_rate": self.on_duty_rate,
            "off_post": self.off_post,
        }


def check_period(start: datetime, end: datetime) -> None:
    """400 unless [start, end) is a non-empty period of at most MAX_PERIOD_DAYS days."""
    if start >= end:
        raise BadRequest("from must be before to", code="invalid_time")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise BadRequest(f"a period is at most {MAX_PERIOD_DAYS} days", code="period_too_long")


def _windows(period: Interval, shifts: Mapping[int, Sequence[Interval]]) -> dict[str, list[Any]]:
    """The window arrays of the SQL: each inspector's period, then their shifts."""
    rows = [(i, PERIOD, *period) for i in shifts]
    rows += [(i, SHIFT, lo, hi) for i, spans in shifts.items() for lo, hi in spans]
    return {key: [r[n] for r in rows] for n, key in enumerate(("wi", "wk", "ws", "we"))}


async def coverage_of(
    conn: AsyncConnection, inspector_ids: Sequence[int], start: datetime, end: datetime
) -> list[InspectorCoverage]:
    """Each inspector's assigned and patrolled cells, on-duty time and shifts in [start, end)."""
    check_period(start, end)
    settings = patrol_settings()
    shifts = await shift_windows(conn, inspector_ids, start, end)
    rows = await conn.execute(
        COVERAGE,
        _windows((start, end), shifts)
        | {
            "inspectors": list(inspector_ids),
            "lo": start - settings.max_gap,
            "hi": end + settings.max_gap,
            "gap": settings.max_gap,
            "acc": settings.patrol_max_accuracy_m,
        },
    )
    return [
        InspectorCoverage(i, n, list(cells), float(secs), float(shift_secs), shifts[i])
        for i, n, secs, shift_secs, cells in rows
    ]


async def inside_intervals(
    conn: AsyncConnection, inspector_id: int, start: datetime, end: datetime
) -> list[Interval]:
    """The times in [start, end) when the inspector was inside their assigned cells (by the
    segments of their track), merged and in order."""
    settings = patrol_settings()
    rows = await conn.execute(
        INSIDE_TIMES,
        _windows((start, end), {inspector_id: []})
        | {
            "inspectors": [inspector_id],
            "lo": start - settings.max_gap,
            "hi": end + settings.max_gap,
            "gap": settings.max_gap,
            "acc": settings.patrol_max_accuracy_m,
        },
    )
    merged: list[list[datetime]] = []
    for lo, hi in sorted((min(a, b), max(a, b)) for a, b in rows):
        if merged and (lo - merged[-1][1]).total_seconds() <= 0.001:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


async def inspectors_of(conn: AsyncConnection, district_code: str | None) -> list[int]:
    """The inspectors with assigned cells (in one district, given its code)."""
    rows = await conn.scalars(
        text(
            "SELECT DISTINCT g.inspector_id FROM grid_cells g "
            "LEFT JOIN districts d ON d.id = g.district_id "
            "WHERE g.inspector_id IS NOT NULL "
            "AND (CAST(:code AS text) IS NULL OR d.code = :code) ORDER BY 1"
        ),
        {"code": district_code},
    )
    return list(rows)


HOME_DISTRICTS = text("""
SELECT DISTINCT ON (g.inspector_id) g.inspector_id, d.code
FROM grid_cells g JOIN districts d ON d.id = g.district_id
WHERE g.inspector_id = ANY(:ids) AND (CAST(:within AS text[]) IS NULL OR d.code = ANY(:within))
GROUP BY g.inspector_id, d.code
ORDER BY g.inspector_id, count(*) DESC, d.code
""")


async def home_districts(
    conn: AsyncConnection, ids: Sequence[int], within: Collection[str] | None
) -> dict[int, str]:
    """The district each inspector is counted under in a centre's tables: the one holding
    most of their assigned cells (the lowest code on a tie), among ``within`` when given (the
    district asked for, or those the reader may read); inspectors with no such cell are
    left out."""
    rows = await conn.execute(
        HOME_DISTRICTS,
        {"ids": list(ids), "within": None if within is None else sorted(within)},
    )
    return dict(rows.all())


async def coverage_by_district(
    conn: AsyncConnection,
    inspector_ids: Sequence[int],
    start: datetime,
    end: datetime,
    within: Collection[str] | None = None,
) -> dict[str, Any]:
    """A centre's table: each inspector's figures (without the cell list) and, per district
    (each inspector under their ``home_districts`` among ``within``), the sums and the rates
    of the sums."""
    rows = await coverage_of(conn, inspector_ids, start, end)
    district_of = await home_districts(conn, inspector_ids, within)
    totals: dict[str | None, dict[str, float]] = {}
    inspectors = []
    for cov in rows:
        code = district_of.get(cov.inspector_id)
        figures = cov.as_dict()
        figures["patrolled_cells"] = len(cov.patrolled_cells)
        del figures["off_post"]
        inspectors.append({"district": code} | figures)
        total = totals.setdefault(code, dict.fromkeys(SUMMED, 0.0) | {"inspectors": 0})
        for key in SUMMED:
            total[key] += figures[key]
        total["inspectors"] += 1
    districts = [
        {"district": code}
        | total
        | {
            "coverage": total["patrolled_cells"] / total["assigned_cells"]
            if total["assigned_cells"]
            else None,
            "on_duty_rate": total["shift_on_duty_minutes"] / total["shift_minutes"]
            if total["shift_minutes"]
            else None,
        }
        for code, total in sorted(totals.items(), key=lambda kv: kv[0] or "")
    ]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "districts": districts,
        "inspectors": inspectors,
    }


SUMMED = (
    "assigned_cells",
    "patrolled_cells",
    "on_duty_minutes",
    "shift_on_duty_minutes",
    "shift_minutes",
)


def parse_period(start: str | None, end: str | None, now: datetime) -> Interval:
    """A query's [from, to): ISO 8601 times (UTC when they carry no offset); by default
    from the start of today in CITYHEX_TIMEZONE to ``now``."""

    def parse(raw: str, name: str) -> datetime:
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRequest(
                f"{name}: {raw!r} is not an ISO 8601 time", code="invalid_time"
            ) from None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    hi = parse(end, "to") if end else now
    if start:
        lo = parse(start, "from")
    else:
        zone = ZoneInfo(working_time_settings().timezone)
        lo = datetime.combine(hi.astimezone(zone).date(), time(0), zone)
    check_period(lo, hi)
    return lo, hi
