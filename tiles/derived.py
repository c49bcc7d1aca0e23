"""Attributes that tiles compute rather than read: incidents carry ``overdue``.

A derived attribute depends on the clock as well as on the row, so each also says when its
value next changes for a row; a cached tile holding it expires at the earliest such time.
"""

from __future__ import annotations

from dataclasses import dataclass

from layers.catalog.registry import Layer
from layers.incidents.workflow import CLOCK_STOPPED, OPEN, STATES

ENDED = frozenset(STATES) - OPEN
"""The states a case never leaves (closed, cancelled): no deadline can make it overdue. The
index ``ix_incidents_open_geom`` (migration 0028) holds the other cases, by this same
condition (``Derived.live``)."""


@dataclass(frozen=True)
class Derived:
    """A boolean attribute computed in SQL over a row aliased ``f``."""

    name: str
    sql: str
    changes_at: str
    """SQL: when the value next changes for the row (NULL: not by the clock alone)."""
    columns: tuple[str, ...]
    """The row's columns it reads."""
    live: str
    """SQL: a condition every row meets whose value is true or will change by the clock (the
    predicate of an index of those rows, which a count of the value can then read alone)."""


def _open(alias: str) -> str:
    closed = ", ".join(f"'{s}'" for s in sorted(CLOCK_STOPPED))
    return f'{alias}."status" NOT IN ({closed})'


def overdue(alias: str = "f") -> Derived:
    """An open incident past its deadline."""
    deadline = f'{alias}."deadline"'
    return Derived(
        name="overdue",
        sql=f"coalesce({deadline} < now() AND {_open(alias)}, false)",
        changes_at=f"CASE WHEN {deadline} >= now() AND {_open(alias)} THEN {deadline} END",
        columns=("deadline", "status"),
        live=f"{alias}.\"status\"::text <> ALL ('{{{','.join(sorted(ENDED))}}}'::text[])",
    )


def derived_attributes(layer: Layer, alias: str = "f") -> list[Derived]:
    """The computed attributes of ``layer``'s features (incidents: ``overdue``)."""
    if {"deadline", "status"} <= layer.properties.keys():
        return [overdue(alias)]
    return []
