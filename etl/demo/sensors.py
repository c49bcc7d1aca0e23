"""The demo city's sensing network and a month (October 2026) of its hourly readings.

Air-quality and noise sensors hang on lamp posts or stand by the road, water-level gauges
sit by the streets, tilt sensors sit in manhole covers. Readings follow a daily rhythm with
city-wide pollution episodes and rain storms; ``latest`` and ``alarm_state`` are derived
from the series, alarms latching with hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy.signal import lfilter
from shapely.geometry import Polygon

from etl.copytext.ewkb import ewkb_hex_points
from etl.copytext.fields import json_texts, timestamp_texts
from etl.demo.assets import Assets
from etl.demo.city import CITY_TZ
from etl.demo.streets import Streets, street_points
from gis.hexgrid import latlng_cells, level_cells

SENSOR_COUNT = 500
READINGS_START = datetime(2026, 10, 1, tzinfo=CITY_TZ)
HOURS = 31 * 24
STATES = ("normal", "warning", "alarm")


@dataclass(frozen=True)
class SensorKind:
    """A kind of sensor: its code prefix, name, share of the network, what it is mounted on
    (an asset kind, for ``mount_share`` of them), and what it measures."""

    kind: str
    prefix: str
    name: str
    share: float
    mount: str | None
    mount_share: float
    measures: dict[str, dict[str, Any]]
    thresholds: dict[str, dict[str, float]]


SENSOR_KINDS = (
    SensorKind(
        "air_quality", "AQ", "空气质量监测", 0.3, "lamp", 0.6,
        {"pm25": {"unit": "µg/m³", "min": 0, "max": 1000},
         "pm10": {"unit": "µg/m³", "min": 0, "max": 1000}},
        {"pm25": {"warning": 75, "alarm": 115, "hysteresis": 5},
         "pm10": {"warning": 150, "alarm": 250, "hysteresis": 10}},
    ),
    SensorKind(
        "noise", "NS", "噪声监测", 0.3, "lamp", 0.6,
        {"laeq": {"unit": "dB(A)", "min": 20, "max": 140}},
        {"laeq": {"warning": 70, "alarm": 80, "hysteresis": 2}},
    ),
    SensorKind(
        "water_level", "WL", "道路积水监测", 0.15, None, 0.0,
        {"level_m": {"unit": "m", "min": 0, "max": 10}},
        {"level_m": {"warning": 1.2, "alarm": 1.6, "hysteresis": 0.05}},
    ),
    SensorKind(
        "manhole_cover", "MC", "井盖倾斜监测", 0.25, "manhole", 1.0,
        {"tilt_deg": {"unit": "deg", "min": 0, "max": 90}},
        {"tilt_deg": {"warning": 5, "alarm": 15, "hysteresis": 1}},
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Sensors:
    """The ``sensors`` rows, their ``readings`` rows, and each sensor's kind and location."""

    rows: dict[str, Any]
    readings: dict[str, Any]
    kind: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the time axis."""
    white = rng.normal(0.0, np.sqrt(1 - phi**2), shape)
    return lfilter([1.0], [1.0, -phi], white, axis=1)


def _bumps(rng: np.random.Generator, count: int, width_h: tuple[float, float]) -> np.ndarray:
    """A city-wide signal of ``count`` smooth episodes over the month (peak 1 each)."""
    t = np.arange(HOURS)
    centre = rng.uniform(0, HOURS, count)
    width = rng.uniform(*width_h, count)
    return np.exp(-(((t[None, :] - centre[:, None]) / width[:, None]) ** 2)).sum(axis=0)


def _storms(rng: np.random.Generator, count: int) -> np.ndarray:
    """A city-wide runoff signal: sudden rises after rain that drain away over hours."""
    t = np.arange(HOURS)
    start = rng.uniform(0, HOURS, count)
    peak = rng.uniform(0.4, 1.0, count)
    decay = rng.uniform(4.0, 16.0, count)
    lag = t[None, :] - start[:, None]
    return (peak[:, None] * np.where(lag >= 0, np.exp(-lag / decay[:, None]), 0.0)).sum(axis=0)


def series(rng: np.random.Generator, kind: str, n: int) -> dict[str, np.ndarray]:
    """Hourly values (``n`` sensors x ``HOURS``) of every property ``kind`` measures."""
    hour = np.arange(HOURS) % 24
    if kind == "air_quality":
        daily = 1 + 0.25 * np.cos(2 * np.pi * (hour - 8) / 24)
        base = rng.uniform(15, 35, (n, 1)) * daily
        pm25 = base + 85 * _bumps(rng, 3, (12, 36)) * rng.uniform(0.7, 1.3, (n, 1))
        pm25 = np.maximum(2.0, pm25 + 6 * _ar1(rng, (n, HOURS), 0.9))
        pm10 = pm25 * rng.uniform(1.4, 1.9, (n, 1)) + 4 * _ar1(rng, (n, HOURS), 0.8)
        return {"pm25": np.round(pm25, 1), "pm10": np.round(np.maximum(pm10, pm25), 1)}
    if kind == "noise":
        daytime = ((hour >= 7) & (hour < 22)).astype(float)
        laeq = rng.uniform(52, 64, (n, 1)) + 7 * daytime + 2 * _ar1(rng, (n, HOURS), 0.7)
        works = rng.random((n, HOURS)) < 0.01 * daytime
        laeq = laeq + works * rng.uniform(10, 18, (n, HOURS))
        return {"laeq": np.round(np.clip(laeq, 35, 110), 1)}
    if kind == "water_level":
        level = rng.uniform(0.2, 0.6, (n, 1)) + _storms(rng, 5) * rng.uniform(0.5, 1.5, (n, 1))
        return {"level_m": np.round(np.maximum(0.0, level + 0.03 * _ar1(rng, (n, HOURS), 0.8)), 3)}
    tilt = np.abs(0.4 * _ar1(rng, (n, HOURS), 0.6))
    tipped = rng.random(n) < 0.04
    since = rng.integers(0, HOURS, n)
    tilt += np.where(tipped[:, None] & (np.arange(HOURS) >= since[:, None]),
                     rng.uniform(8, 30, (n, 1)), 0.0)  # fmt: skip
    return {"tilt_deg": np.round(np.clip(tilt, 0, 90), 1)}


def latched(values: np.ndarray, level: float, hysteresis: float) -> np.ndarray:
    """Whether each series ends latched: it reached ``level`` and has not fallen below
    ``level - hysteresis`` since."""
    below = values < level - hysteresis
    last = values.shape[1] - 1 - np.argmax(below[:, ::-1], axis=1)
    last = np.where(below.any(axis=1), last, -1)
    after = np.arange(values.shape[1])[None, :] > last[:, None]
    return ((values >= level) & after).any(axis=1)


def alarm_levels(values: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """0 normal, 1 warning, 2 alarm: where each series ends, with hysteresis."""
    hyst = thresholds["hysteresis"]
    alarm = latched(values, thresholds["alarm"], hyst)
    warning = latched(values, thresholds["warning"], hyst)
    return np.where(alarm, 2, np.where(warning, 1, 0))


def _counts(scale: float) -> list[int]:
    """Sensors of each kind: about ``SENSOR_COUNT * scale`` in all, at least two per kind."""
    total = SENSOR_COUNT * scale
    return [max(2, round(total * k.share)) for k in SENSOR_KINDS]


def _places(
    rng: np.random.Generator,
    kind: SensorKind,
    n: int,
    assets: Assets,
    streets: Streets,
    land_shape: Polygon,
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Where ``n`` sensors of ``kind`` stand: on assets of their mount kind, else by a street."""
    lon, lat = street_points(streets, rng, land_shape, n, (3.0, 8.0))
    codes: list[str | None] = [None] * n
    hosts = np.flatnonzero(assets.kind == kind.mount) if kind.mount else np.empty(0, np.int64)
    mounted = np.flatnonzero(rng.random(n) < kind.mount_share) if len(hosts) else hosts
    pick = rng.choice(hosts, len(mounted), replace=len(mounted) > len(hosts))
    lon[mounted], lat[mounted] = assets.lon[pick], assets.lat[pick]
    for i, a in zip(mounted.tolist(), pick.tolist(), strict=True):
        codes[i] = str(assets.code[a])
    return lon, lat, codes


def build_sensors(
    rng: np.random.Generator,
    assets: Assets,
    streets: Streets,
    land_shape: Polygon,
    first_id: int,
    scale: float,
) -> Sensors:
    """About ``SENSOR_COUNT * scale`` sensors with hourly readings over October 2026."""
    start = int(READINGS_START.timestamp())
    ts_text = timestamp_texts(start + 3600 * np.arange(HOURS, dtype=np.int64))
    last_ts = datetime.fromtimestamp(start + 3600 * (HOURS - 1), CITY_TZ).isoformat()
    sensors: dict[str, list[Any]] = {k: [] for k in ("id", "code", "kind", "name", "measures",
                                                      "thresholds", "asset_code", "latest",
                                                      "alarm_state")}  # fmt: skip
    readings: dict[str, list[Any]] = {"sensor_id": [], "property": [], "ts": [], "value": []}
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    next_id = first_id
    for kind, n in zip(SENSOR_KINDS, _counts(scale), strict=True):
        ids = np.arange(next_id, next_id + n, dtype=np.int64)
        next_id += n
        lon, lat, asset_codes = _places(rng, kind, n, assets, streets, land_shape)
        values = series(rng, kind.kind, n)
        levels = {p: alarm_levels(v, kind.thresholds[p]) for p, v in values.items()}
        level = np.max(list(levels.values()), axis=0)
        sensors["id"].append(ids)
        sensors["code"] += [f"{kind.prefix}-{i + 1:05d}" for i in range(n)]
        sensors["kind"] += [kind.kind] * n
        sensors["name"] += [f"{kind.name}-{i + 1:04d}" for i in range(n)]
        sensors["measures"] += [kind.measures] * n
        sensors["thresholds"] += [kind.thresholds] * n
        sensors["asset_code"] += asset_codes
        sensors["latest"] += [
            {
                p: {"value": float(v[i, -1]), "ts": last_ts, "level": STATES[levels[p][i]]}
                for p, v in values.items()
            }
            for i in range(n)
        ]
        sensors["alarm_state"] += [STATES[s] for s in level.tolist()]
        for prop, v in values.items():
            readings["sensor_id"].append(np.repeat(ids, HOURS))
            readings["property"] += [prop] * v.size
            readings["ts"] += ts_text * n
            readings["value"].append(v.ravel())
        lons.append(lon)
        lats.append(lat)
    lon, lat = np.concatenate(lons), np.concatenate(lats)
    rows = {
        **sensors,
        "id": np.concatenate(sensors["id"]),
        "measures": json_texts(sensors["measures"]),
        "thresholds": json_texts(sensors["thresholds"]),
        "latest": json_texts(sensors["latest"]),
        "h3": latlng_cells(lon, lat),
        **level_cells(lon, lat),
        "geom": ewkb_hex_points(lon, lat),
    }
    readings["sensor_id"] = np.concatenate(readings["sensor_id"])
    readings["value"] = np.concatenate(readings["value"])
    return Sensors(rows, readings, np.array(rows["kind"]), lon, lat)
