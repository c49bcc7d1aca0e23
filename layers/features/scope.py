"""Which features a scoped caller may write: the layers it is limited to, and on a layer with
a ``department_column`` (assets), the features its departments own, before and after the
write. Anything else is Forbidden (``out_of_scope``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden
from layers.catalog.registry import Layer
from layers.db.scope import Scope, department_ids


def check_layer(layer: Layer, scope: Scope) -> None:
    """Forbidden when ``scope`` does not allow writing features of ``layer``."""
    if not scope.allows_layer(layer.id):
        yours = ", ".join(sorted(scope.layers or ())) or "none"
        raise Forbidden(
            f"you may not write features of {layer.id}; your layers: {yours}", code="out_of_scope"
        )


def owners(layer: Layer, stored: str | None, written: dict[str, Any] | None) -> list[Any]:
    """The departments a write touches: the one the stored feature (its GeoJSON) names and
    the one the written columns name (None for a missing value); none on a layer without a
    department column."""
    column = layer.department_column
    if column is None:
        return []
    found = []
    if stored is not None:
        found.append((orjson.loads(stored).get("properties") or {}).get(column))
    if written is not None:
        found.append(written.get(column))
    return found


async def check_departments(
    conn: AsyncConnection, layer: Layer, scope: Scope, owners: Iterable[Any]
) -> None:
    """Forbidden unless each of ``owners`` (see ``owners``) is one of the scope's
    departments; nothing to check for a caller not limited to departments."""
    owners = list(owners)
    if scope.departments is None or not owners:
        return
    allowed = await department_ids(conn, scope.departments)
    for owner in owners:
        if owner not in allowed:
            yours = ", ".join(sorted(scope.departments)) or "none"
            raise Forbidden(
                f"the feature's {layer.department_column} is {owner}, not a department of "
                f"yours ({yours})",
                code="out_of_scope",
            )
