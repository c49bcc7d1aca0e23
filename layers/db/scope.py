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

from collections.abc import Iterable
from dataclasses import dataclass
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
