"""A feature's history: every version with its operation, who, when, before and after; and
restoring a version (a deleted feature comes back under its old id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.crs import CRS, CRS84
from gis.errors import Conflict, NotFound
from layers.catalog.changes import publish_change
from layers.catalog.registry import Layer
from layers.db.scope import UNLIMITED, Scope
from layers.features.input import prepare_write
from layers.features.repository import (
    WriteResult,
    insert_with_id,
    make_etag,
    next_history_version,
    read_feature,
    record_history,
    update_feature,
)
from layers.features.scope import check_departments, check_layer, owners

MAX_VERSIONS = 1_000


@dataclass(frozen=True)
class Version:
    """One recorded change of a feature."""

    version: int
    op: str
    actor: str | None
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        """The version as the API lists it."""
        return {
            "version": self.version,
            "op": self.op,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "before": self.before,
            "after": self.after,
        }


async def _history_rows(
    engine: AsyncEngine, layer: Layer, feature_id: Any, sql: str, **params: Any
) -> Sequence[Row[Any]]:
    """The rows ``sql`` selects from the history of one feature (``:layer``, ``:fid``)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(sql), {"layer": layer.id, "fid": str(feature_id), **params}
        )
        return result.all()


async def list_history(engine: AsyncEngine, layer: Layer, feature_id: Any) -> list[Version]:
    """Every recorded version of a feature, oldest first, as this view of the layer shows
    it (without its withheld properties, nor who wrote when that is withheld); 404 when it
    has none."""
    sql = (
        "SELECT version, op, actor, at, before::text, after::text FROM feature_history "
        "WHERE layer = :layer AND feature_id = :fid ORDER BY version LIMIT :n"
    )
    rows = await _history_rows(engine, layer, feature_id, sql, n=MAX_VERSIONS)
    if not rows:
        raise NotFound(
            f"feature {feature_id} of {layer.id} has no history", code="feature_not_found"
        )
    hidden = layer.withheld
    writer_hidden = layer.updated_by_column in hidden
    return [
        Version(
            v,
            op,
            None if writer_hidden else actor,
            at,
            _shown(before, layer),
            _shown(after, layer),
        )
        for v, op, actor, at, before, after in rows
    ]


def _json(value: str | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)


def _shown(value: str | None, layer: Layer) -> dict[str, Any] | None:
    """A recorded state as this view of the layer shows it: without its withheld declared
    properties, and with the free-form ones its ``extras_view`` shows."""
    state = _json(value)
    if not state or not isinstance(state.get("properties"), dict):
        return state
    hidden = layer.withheld
    if hidden or layer.extras_view != "all":
        props = state["properties"]
        state["properties"] = {
            k: v
            for k, v in props.items()
            if k not in hidden and (k in layer.properties or k == "h3" or layer.shows_extra(k, v))
        }
    return state


async def _state_of(
    engine: AsyncEngine, layer: Layer, feature_id: Any, version: int
) -> dict[str, Any]:
    """The feature as it was at ``version`` (for a deletion: as it was just before)."""
    sql = (
        "SELECT op, before::text, after::text FROM feature_history "
        "WHERE layer = :layer AND feature_id = :fid AND version = :version"
    )
    rows = await _history_rows(engine, layer, feature_id, sql, version=version)
    if not rows:
        raise NotFound(
            f"feature {feature_id} of {layer.id} has no version {version}", code="version_not_found"
        )
    op, before, after = rows[0]
    state = _json(after if op != "delete" else before)
    if state is None:
        raise NotFound(
            f"version {version} of feature {feature_id} holds no state", code="version_not_found"
        )
    return state


async def restore_version(
    engine: AsyncEngine,
    layer: Layer,
    feature_id: Any,
    version: int,
    if_match: str | None,
    actor: str,
    crs: CRS = CRS84,
    scope: Scope = UNLIMITED,
) -> WriteResult:
    """Bring back the feature as it was at ``version``.

    A deleted feature is re-created under its old id (history op 'restore'); an existing
    one is replaced by that state, which needs If-Match like any replace. Forbidden when
    the feature, now or as restored, lies outside ``scope``.
    """
    check_layer(layer, scope)
    state = await _state_of(engine, layer, feature_id, version)
    body = {
        "type": "Feature",
        "geometry": state.get("geometry"),
        "properties": state.get("properties") or {},
    }
    async with engine.connect() as conn:
        exists = await read_feature(conn, layer, feature_id) is not None
    if exists:
        return await update_feature(
            engine, layer, feature_id, body, if_match, actor, crs=crs, op="restore", scope=scope
        )
    prep = prepare_write(layer, body, CRS84, repair=False)
    async with engine.begin() as conn:
        await check_departments(conn, layer, scope, owners(layer, None, prep.columns))
        new_version = await next_history_version(conn, layer, feature_id)
        try:
            after, output = await insert_with_id(
                conn, layer, feature_id, prep, new_version, actor, crs
            )
        except Conflict as exc:
            raise Conflict(
                f"feature {feature_id} was re-created meanwhile: {exc.message}",
                code="feature_exists",
            ) from None
        await record_history(conn, layer, feature_id, new_version, "restore", None, after, actor)
        await publish_change(conn, layer.id, [prep.bounds] if prep.bounds else None)
    etag_version = new_version if layer.version_column else None
    return WriteResult(
        feature_id,
        output,
        make_etag(layer, feature_id, etag_version, after),
        new_version,
        created=True,
    )
