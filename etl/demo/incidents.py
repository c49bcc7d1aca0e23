"""The demo city's incidents (事件): a year of cases ending on 31 October 2026.

Most cases cluster around hotspots (a market's street vendors, a building site's dust and
noise), each with its favourite kind of trouble; the rest are spread along the streets.
Reports follow the rhythms of ``demo_calendar``; broken lamps, covers and hydrants are
reported where those assets stand, sensor alarms where their sensors are.
Every case is routed by its cell: the cell's inspector, the cell's district, and the
category's department.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from etl.copytext.ewkb import ewkb_hex_points
from etl.copytext.fields import timestamp_texts
from etl.demo.assets import Assets
from etl.demo.calendar import report_times
from etl.demo.city import END_S, on_land, to_lonlat, to_metres
from etl.demo.grid import Grid
from etl.demo.people import People
from etl.demo.sensors import Sensors
from etl.demo.streets import Streets, street_points
from etl.demo.workflow import (
    ACTIONS,
    ACTOR_OF_ACTION,
    NOTES,
    TO_STATUS,
    Lifecycles,
    case_summary,
    lifecycles,
    step_summary,
    transition_steps,
)
from gis.hexgrid import latlng_cells, level_cells
from layers.incidents.working_time import default_calendar

INCIDENT_COUNT = 65_000
HOTSPOTS = 60
HOTSPOT_SHARE = 0.65
HOTSPOT_FAVOURITE = 0.7
MAJOR_SHARES = {"01": 0.30, "02": 0.15, "03": 0.10, "04": 0.06, "05": 0.30, "06": 0.09}
HEAVY_CATEGORIES = {"0102": 3.0, "0104": 2.0, "0201": 3.0, "0501": 3.0, "0504": 3.0, "0502": 2.0}
ASSET_CATEGORIES = {"0601": "lamp", "0602": "manhole", "0603": "hydrant", "0406": "manhole"}
SENSOR_CATEGORIES = {"0606": "air_quality", "0607": "noise", "0608": "water_level"}
SOURCES = (("inspector", 0.74), ("hotline", 0.17), ("public", 0.09))


@dataclass(frozen=True)
class Categories:
    """The incident categories as read from the database: code, department, time limit."""

    code: np.ndarray
    department_id: np.ndarray
    limit_h: np.ndarray
    name: list[str]


@dataclass(frozen=True)
class Incidents:
    """The ``incidents`` and ``incident_transitions`` rows."""

    rows: dict[str, Any]
    transitions: dict[str, Any]


def _category_weights(cats: Categories) -> np.ndarray:
    """How often each category is reported, relative to the others."""
    major = np.array([c[:2] for c in cats.code.tolist()])
    heavy = np.array([HEAVY_CATEGORIES.get(c, 1.0) for c in cats.code.tolist()])
    weights = np.zeros(len(cats.code))
    for m, share in MAJOR_SHARES.items():
        inside = major == m
        weights[inside] = share * heavy[inside] / heavy[inside].sum()
    return weights / weights.sum()


def _categories(rng: np.random.Generator, cats: Categories, hotspot: np.ndarray) -> np.ndarray:
    """A category (index) for every case: a hotspot's case mostly from its favourite class."""
    weights = _category_weights(cats)
    major = np.array([c[:2] for c in cats.code.tolist()])
    majors = sorted(MAJOR_SHARES)
    favourite = rng.choice(len(majors), HOTSPOTS, p=[MAJOR_SHARES[m] for m in majors])
    out = rng.choice(len(weights), len(hotspot), p=weights)
    loyal = np.flatnonzero((hotspot >= 0) & (rng.random(len(hotspot)) < HOTSPOT_FAVOURITE))
    for f in range(len(majors)):
        idx = loyal[favourite[hotspot[loyal]] == f]
        local = np.where(major == majors[f], weights, 0.0)
        out[idx] = rng.choice(len(weights), len(idx), p=local / local.sum())
    return out


def _spots(
    rng: np.random.Generator, streets: Streets, land_shape: Polygon
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The hotspots: centre (metres), spread (metres) and weight (heavy-tailed)."""
    lon, lat = street_points(streets, rng, land_shape, HOTSPOTS, (0.0, 10.0))
    x, y = to_metres(lon, lat)
    return x, y, rng.uniform(60.0, 400.0, HOTSPOTS), rng.pareto(1.5, HOTSPOTS) + 1.0


def _scattered(
    rng: np.random.Generator,
    hotspot: np.ndarray,
    spots: tuple[np.ndarray, ...],
    streets: Streets,
    land_shape: Polygon,
    grid: Grid,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each case is: around its hotspot, or along a street (-1), always on land."""
    hx, hy, spread, _ = spots
    lon, lat = np.empty(len(hotspot)), np.empty(len(hotspot))
    todo = np.arange(len(hotspot))
    while len(todo):
        h = hotspot[todo]
        around = to_lonlat(hx[h] + rng.normal(0, 1, len(h)) * spread[h],
                           hy[h] + rng.normal(0, 1, len(h)) * spread[h])  # fmt: skip
        along = street_points(streets, rng, land_shape, len(h), (0.0, 15.0))
        x = np.where(h >= 0, around[0], along[0])
        y = np.where(h >= 0, around[1], along[1])
        ok = on_land(land_shape, x, y) & (grid.locate(latlng_cells(x, y)) >= 0)
        lon[todo[ok]], lat[todo[ok]] = x[ok], y[ok]
        todo = todo[~ok]
    return lon, lat


def _linked(
    rng: np.random.Generator, wanted: str, kinds: np.ndarray, count: int
) -> np.ndarray | None:
    """``count`` random members (indexes) of ``kinds`` equal to ``wanted``; None if none."""
    pool = np.flatnonzero(kinds == wanted)
    return rng.choice(pool, count) if len(pool) else None


def _place_linked(
    rng: np.random.Generator,
    cats: Categories,
    category: np.ndarray,
    where: tuple[np.ndarray, np.ndarray],
    assets: Assets,
    sensors: Sensors,
) -> tuple[list[str | None], list[int | None]]:
    """Move asset and sensor cases onto their asset or sensor; their asset codes and sensors."""
    lon, lat = where
    asset_code: list[str | None] = [None] * len(category)
    sensor_id: list[int | None] = [None] * len(category)
    for code, kind in {**ASSET_CATEGORIES, **SENSOR_CATEGORIES}.items():
        idx = np.flatnonzero(cats.code[category] == code)
        is_sensor = code in SENSOR_CATEGORIES
        pick = _linked(rng, kind, sensors.kind if is_sensor else assets.kind, len(idx))
        if pick is None:
            continue
        owner = sensors if is_sensor else assets
        lon[idx], lat[idx] = owner.lon[pick], owner.lat[pick]
        for i, p in zip(idx.tolist(), pick.tolist(), strict=True):
            if is_sensor:
                sensor_id[i] = int(sensors.rows["id"][p])
            else:
                asset_code[i] = str(assets.code[p])
    return asset_code, sensor_id


def _sources(rng: np.random.Generator, sensor_id: list[int | None]) -> np.ndarray:
    """Who reported each case: sensors report their own alarms, people the rest."""
    names = np.array([s for s, _ in SOURCES], dtype=object)
    shares = np.array([p for _, p in SOURCES])
    source = names[rng.choice(len(names), len(sensor_id), p=shares / shares.sum())]
    source[[i for i, s in enumerate(sensor_id) if s is not None]] = "sensor"
    return source


def _actors(
    rng: np.random.Generator,
    source: np.ndarray,
    sensor_id: list[int | None],
    inspector: np.ndarray,
    dispatcher: np.ndarray,
    department: np.ndarray,
    people: People,
) -> np.ndarray:
    """Each case's four actors as history names: reporter, dispatcher, staff, inspector."""
    staff = np.empty(len(source), dtype=np.int64)
    for dept, members in people.staff.items():
        idx = np.flatnonzero(department == dept)
        staff[idx] = members[rng.integers(0, len(members), len(idx))]
    reporter = [
        f"inspector:{i}" if s == "inspector" else f"sensor:{sid}" if s == "sensor"
        else "hotline:12345" if s == "hotline" else "public:app"
        for s, i, sid in zip(source.tolist(), inspector.tolist(), sensor_id, strict=True)
    ]  # fmt: skip
    actors = np.empty((len(source), 4), dtype=object)
    actors[:, 0] = reporter
    actors[:, 1] = [f"dispatcher:{d}" for d in dispatcher.tolist()]
    actors[:, 2] = [f"staff:{s}" for s in staff.tolist()]
    actors[:, 3] = [f"inspector:{i}" for i in inspector.tolist()]
    return actors


def build_incidents(
    rng: np.random.Generator,
    cats: Categories,
    streets: Streets,
    land_shape: Polygon,
    grid: Grid,
    people: People,
    district_ids: np.ndarray,
    assets: Assets,
    sensors: Sensors,
    first_ids: tuple[int, int],
    scale: float,
) -> Incidents:
    """About ``INCIDENT_COUNT * scale`` routed cases with their full transition histories.

    ``first_ids`` are the first free ids of incidents and of transitions.
    """
    n = max(1, round(INCIDENT_COUNT * scale))
    spots = _spots(rng, streets, land_shape)
    weight = spots[3]
    hot = rng.random(n) < HOTSPOT_SHARE
    hotspot = np.where(hot, rng.choice(HOTSPOTS, n, p=weight / weight.sum()), -1)
    category = _categories(rng, cats, hotspot)
    reported_at = report_times(rng, np.array([cats.code[c][:2] for c in category.tolist()]))
    order = np.argsort(reported_at, kind="stable")
    hotspot, category, reported_at = hotspot[order], category[order], reported_at[order]
    lon, lat = _scattered(rng, hotspot, spots, streets, land_shape, grid)
    asset_code, sensor_id = _place_linked(rng, cats, category, (lon, lat), assets, sensors)
    cells = latlng_cells(lon, lat)
    at_cell = grid.locate(cells)
    inspector = people.inspector[grid.block[at_cell]]
    district = grid.district[at_cell]
    department = cats.department_id[category]
    source = _sources(rng, sensor_id)
    actors = _actors(rng, source, sensor_id, inspector, people.dispatcher[district], department,
                     people)  # fmt: skip
    limit_h = cats.limit_h[category]
    lc = lifecycles(rng, reported_at, limit_h, END_S)
    summary = case_summary(lc)
    registered = summary["registered_at"]
    deadline = working_deadlines(reported_at, limit_h)
    ids = np.arange(first_ids[0], first_ids[0] + n, dtype=np.int64)
    rows = {
        "id": ids,
        "category_code": cats.code[category],
        "status": summary["status"],
        "description": [cats.name[c] for c in category.tolist()],
        "source": source,
        "reporter": actors[:, 0],
        "asset_code": asset_code,
        "sensor_id": sensor_id,
        "inspector_id": inspector,
        "department_id": department,
        "district_id": district_ids[district],
        "h3": cells,
        **level_cells(lon, lat),
        "reported_at": timestamp_texts(reported_at),
        "registered_at": timestamp_texts(registered),
        "dispatched_at": timestamp_texts(summary["dispatched_at"]),
        "resolved_at": timestamp_texts(summary["resolved_at"]),
        "closed_at": timestamp_texts(summary["closed_at"]),
        "deadline": timestamp_texts(deadline),
        "rework_count": summary["rework_count"],
        **{k: timestamp_texts(v) if k.endswith("_at") else v for k, v in step_summary(lc).items()},
        "version": lc.length,
        "updated_at": timestamp_texts(summary["updated_at"]),
        "geom": ewkb_hex_points(lon, lat),
    }
    return Incidents(rows, _transitions(lc, actors, ids, first_ids[1]))


def _transitions(
    lc: Lifecycles, actors: np.ndarray, ids: np.ndarray, first_id: int
) -> dict[str, Any]:
    """The ``incident_transitions`` rows of every step that happened."""
    steps = transition_steps(lc)
    action, previous = steps["action"], steps["previous"]
    status = np.array((*TO_STATUS, None), dtype=object)
    return {
        "id": np.arange(first_id, first_id + len(action), dtype=np.int64),
        "incident_id": ids[steps["case"]],
        "action": np.array(ACTIONS, dtype=object)[action],
        "from_status": status[np.where(previous < 0, len(TO_STATUS), previous)],
        "to_status": status[action],
        "actor": actors[steps["case"], ACTOR_OF_ACTION[action]],
        "at": timestamp_texts(steps["at"]),
        "note": np.array(NOTES, dtype=object)[action],
    }


def working_deadlines(reported_s: np.ndarray, limit_h: np.ndarray) -> np.ndarray:
    """Each case's deadline (Unix seconds): its category's limit in working hours from its
    report, on the working-day calendar incidents reported through the API use."""
    add = default_calendar().add_working_hours
    return np.fromiter(
        (
            int(add(datetime.fromtimestamp(s, UTC), h).timestamp())
            for s, h in zip(reported_s.tolist(), limit_h.tolist(), strict=True)
        ),
        dtype=np.int64,
        count=len(reported_s),
    )
