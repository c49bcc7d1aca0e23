"""Alarm levels on plain values: the hysteresis rules, and a walk through readings records
each change of level once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from layers.sensors.alarms import Levels, next_level, walk

T0 = datetime(2026, 11, 1, tzinfo=UTC)


LEVELS = Levels(warning=2.0, alarm=3.0, hysteresis=0.2)


def reference_level(current: str, value: float) -> str:
    """The level rules of LEVELS written out case by case."""
    if value >= 3.0:
        return "alarm"
    if current == "alarm" and value >= 2.8:
        return "alarm"
    if value >= 2.0:
        return "warning"
    if current in ("warning", "alarm") and value >= 1.8:
        return "warning"
    return "normal"


@given(st.lists(st.floats(0, 5, allow_nan=False), max_size=60))
def test_levels_follow_the_hysteresis_rules(values: list[float]) -> None:
    level = "normal"
    for value in values:
        expected = reference_level(level, value)
        assert next_level(level, value, LEVELS) == expected
        level = expected


def test_walk_records_each_change_once() -> None:
    points = [
        (T0 + timedelta(minutes=i), v)
        for i, v in enumerate([1, 2.1, 3, 2.9, 2.85, 3.1, 2.7, 1.9, 1.7])
    ]
    level, changes = walk("level_m", "normal", points, LEVELS)
    assert level == "normal"
    assert [(c.from_level, c.to_level, c.value) for c in changes] == [
        ("normal", "warning", 2.1),
        ("warning", "alarm", 3),
        ("alarm", "warning", 2.7),
        ("warning", "normal", 1.7),
    ]
    assert next_level("alarm", 10, None) == "normal"
