"""The patrol definitions computed independently, with shapely on the test's own cell
polygons (made with h3), for the tests to compare with what CityHex computes in PostGIS.

- counted fixes: accuracy at most the limit;
- segments: consecutive counted fixes at most ``gap`` apart, straight in lon/lat, constant
  speed (so a time fraction is a length fraction);
- a segment cut to a window [lo, hi) by time;
- patrolled cells: cut segments that intersect a cell, and fixes of the window inside one;
- time in cells: duration × (length inside the cells ÷ length);
- inside intervals and away stretches, for off-post episodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import shapely
from shapely.geometry import LineString, Point

Window = tuple[datetime, datetime]


class FixLike(Protocol):
    """What the computation needs of a fix."""

    ts: datetime
    lon: float
    lat: float
    accuracy_m: float


def counted(track: Sequence[FixLike], max_accuracy: float) -> list[FixLike]:
    """The fixes that count."""
    return [f for f in track if f.accuracy_m <= max_accuracy]


def pieces(
    fixes: Sequence[FixLike], gap: timedelta, window: Window
) -> list[tuple[LineString, datetime, datetime]]:
    """Each segment cut to ``window``: its line, start and end time."""
    lo, hi = window
    out = []
    for a, b in itertools.pairwise(fixes):
        if b.ts - a.ts > gap or b.ts <= lo or a.ts >= hi:
            continue
        dur = (b.ts - a.ts).total_seconds()
        f0 = max(0.0, (lo - a.ts).total_seconds() / dur)
        f1 = min(1.0, (hi - a.ts).total_seconds() / dur)
        p0 = (
            (a.lon, a.lat)
            if f0 == 0
            else (a.lon + f0 * (b.lon - a.lon), a.lat + f0 * (b.lat - a.lat))
        )
        p1 = (
            (b.lon, b.lat)
            if f1 == 1
            else (a.lon + f1 * (b.lon - a.lon), a.lat + f1 * (b.lat - a.lat))
        )
        out.append(
            (
                LineString([p0, p1]),
                a.ts + timedelta(seconds=f0 * dur),
                a.ts + timedelta(seconds=f1 * dur),
            )
        )
    return out


def _hits(polygons: np.ndarray, geom: shapely.Geometry) -> np.ndarray:
    return np.nonzero(shapely.intersects(polygons, geom))[0]


def patrolled(
    fixes: Sequence[FixLike], gap: timedelta, window: Window, cells: dict[int, shapely.Polygon]
) -> set[int]:
    """The cells of ``cells`` patrolled in ``window``."""
    keys = list(cells)
    polygons = np.array([cells[k] for k in keys])
    found: set[int] = set()
    for line, _, _ in pieces(fixes, gap, window):
        found.update(keys[i] for i in _hits(polygons, line))
    for f in fixes:
        if window[0] <= f.ts < window[1]:
            found.update(keys[i] for i in _hits(polygons, Point(f.lon, f.lat)))
    return found


def seconds_inside(
    fixes: Sequence[FixLike], gap: timedelta, window: Window, cells: dict[int, shapely.Polygon]
) -> float:
    """Time along the segments of ``window`` spent inside ``cells``."""
    polygons = np.array(list(cells.values()))
    total = 0.0
    for line, t0, t1 in pieces(fixes, gap, window):
        dur = (t1 - t0).total_seconds()
        hits = _hits(polygons, line)
        if line.length == 0:
            total += dur if len(hits) else 0.0
            continue
        inside = sum(line.intersection(polygons[i]).length for i in hits)
        total += dur * min(1.0, inside / line.length)
    return total


def inside_intervals(
    fixes: Sequence[FixLike], gap: timedelta, window: Window, cells: dict[int, shapely.Polygon]
) -> list[Window]:
    """When the track is inside ``cells`` during ``window``, merged."""
    polygons = np.array(list(cells.values()))
    spans = []
    for line, t0, t1 in pieces(fixes, gap, window):
        dur = t1 - t0
        for i in _hits(polygons, line):
            part = line.intersection(polygons[i])
            for p in getattr(part, "geoms", [part]):
                if p.geom_type != "LineString" or line.length == 0:
                    continue
                a = line.project(Point(p.coords[0]), normalized=True)
                b = line.project(Point(p.coords[-1]), normalized=True)
                spans.append((t0 + dur * min(a, b), t0 + dur * max(a, b)))
    merged: list[list[datetime]] = []
    for lo, hi in sorted(spans):
        if merged and (lo - merged[-1][1]).total_seconds() <= 0.001:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(a, b) for a, b in merged]


def away(shift: Window, inside: Iterable[Window], limit: timedelta) -> list[Window]:
    """The stretches of ``shift`` outside every inside interval that last over ``limit``."""
    cursor, out = shift[0], []
    for a, b in inside:
        if a > cursor:
            out.append((cursor, min(a, shift[1])))
        cursor = max(cursor, b)
    if cursor < shift[1]:
        out.append((cursor, shift[1]))
    return [(a, b) for a, b in out if b - a > limit]
