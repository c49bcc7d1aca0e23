"""What a key or token is limited to: districts, departments, layers (least privilege).

A scope narrows what the caller's role allows and never widens it. Each field is a set of
names, or None for no limit on that dimension; an empty set allows nothing. Districts and
departments are named by their codes (the 6-digit division code, the department code), as
``cityhex keys create`` and the city's identity provider name them:

- districts: the cases (and grid cells) of those districts only;
- departments: the cases handled by those departments, and the features (assets) they own;
- layers: the layers whose features the caller may write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def _names(values: Iterable[Any] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(str(v) for v in values)


@dataclass(frozen=True)
class Scope:
    """The districts, departments and layers a caller is limited to (None: no limit)."""

    districts: frozenset[str] | None = None
    departments: frozenset[str] | None = None
    layers: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        districts: Iterable[Any] | None = None,
        departments: Iterable[Any] | None = None,
        layers: Iterable[Any] | None = None,
    ) -> Scope:
        """A scope from lists of names (None: no limit on that dimension)."""
        return cls(_names(districts), _names(departments), _names(layers))

    @property
    def limited(self) -> bool:
        """Whether any dimension is limited."""
        return any(v is not None for v in (self.districts, self.departments, self.layers))

    def allows_district(self, code: str) -> bool:
        """Whether the district with this code is within the scope."""
        return self.districts is None or code in self.districts

    def allows_layer(self, layer_id: str) -> bool:
        """Whether features of ``layer_id`` may be written."""
        return self.layers is None or layer_id in self.layers

    def as_dict(self) -> dict[str, list[str]]:
        """The limited dimensions, each as a sorted list."""
        fields = (
            ("districts", self.districts),
            ("departments", self.departments),
            ("layers", self.layers),
        )
        return {name: sorted(v) for name, v in fields if v is not None}


UNLIMITED = Scope()
"""The scope of a caller limited by its role only."""


async def department_ids(conn: AsyncConnection, codes: Iterable[str]) -> set[int]:
    """The ids of the departments with these codes (unknown codes are left out)."""
    rows = await conn.execute(
        text("SELECT id FROM departments WHERE code = ANY(:codes)"), {"codes": list(codes)}
    )
    return {r[0] for r in rows}


READ_DIMENSIONS = ("districts", "departments", "inspector")
"""The dimensions by which a layer's rows can be narrowed for reading (the ``read_scope``
of a catalog layer names the column of each: a district id, a department id, a user id)."""


@dataclass(frozen=True)
class Visibility:
    """Which rows of a layer with a read scope a caller reads: those of its districts and
    departments (by code; None: no limit), and for an inspector speaking for a user, that
    user's rows only. The same rule as ``layers.incidents.scope`` applies to /incidents."""

    districts: frozenset[str] | None = None
    departments: frozenset[str] | None = None
    inspector_id: int | None = None

    @classmethod
    def of(cls, role: str, user_id: int | None, scope: Scope) -> Visibility:
        """What a caller with this role, user and scope sees."""
        inspector = user_id if role == "inspector" else None
        return cls(scope.districts, scope.departments, inspector)

    @property
    def limited(self) -> bool:
        """Whether any row may be left out."""
        return any(v is not None for v in (self.districts, self.departments, self.inspector_id))

    def without(self, dimensions: Iterable[str]) -> Visibility:
        """The same limits but none on ``dimensions`` (names of ``READ_DIMENSIONS``)."""
        fields = {
            "districts": "districts",
            "departments": "departments",
            "inspector": "inspector_id",
        }
        return replace(self, **{fields[d]: None for d in dimensions})

    def key(self) -> str:
        """A canonical text of the limits (for cache keys; empty when unlimited)."""
        parts = []
        if self.districts is not None:
            parts.append("d=" + ",".join(sorted(self.districts)))
        if self.departments is not None:
            parts.append("p=" + ",".join(sorted(self.departments)))
        if self.inspector_id is not None:
            parts.append(f"i={self.inspector_id}")
        return ";".join(parts)

    def conditions(
        self, columns: dict[str, str], alias: str, param: Callable[[Any, str], str]
    ) -> list[str]:
        """SQL conditions on the rows of ``alias`` whose columns for each dimension are
        ``columns`` (quoted by the caller as plain identifiers); ``param(value, sql_type)``
        makes a placeholder. A dimension the layer has no column for leaves nothing out,
        but a limited dimension without a column leaves everything out."""
        conds = []
        for dimension, codes, table in (
            ("districts", self.districts, "districts"),
            ("departments", self.departments, "departments"),
        ):
            if codes is None:
                continue
            column = columns.get(dimension)
            if column is None:
                conds.append("false")
                continue
            values = param(sorted(codes), "text[]")
            ids = f"SELECT id FROM {table} WHERE code = ANY({values})"
            conds.append(f'{alias}."{column}" IN ({ids})')
        if self.inspector_id is not None:
            column = columns.get("inspector")
            user = param(self.inspector_id, "integer")
            conds.append(f'{alias}."{column}" = {user}' if column else "false")
        return conds


EVERYONE = Visibility()
"""The visibility of a caller no row is withheld from."""
