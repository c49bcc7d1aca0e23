"""The feature repository of any catalog layer: query, get, create, replace, patch, delete.

Reads render GeoJSON in PostGIS. Every write runs in one transaction that checks the
geometry and properties, computes the H3 cell, verifies the caller's version *inside* the
UPDATE/DELETE (``WHERE version = :expected``, so two writers holding the same ETag can never
both succeed), records the change in ``feature_history`` and announces the touched boxes
with :func:`layers.catalog.changes.publish_change` so tile caches drop them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import shapely
import shapely.geometry
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gis.crs import CRS, CRS84
from gis.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
)
from gis.hexgrid import parse_cell
from gis.validation import Repair
from layers.catalog.changes import BBox, publish_change
from layers.catalog.identifiers import column, quote
from layers.catalog.registry import Layer
from layers.db.scope import UNLIMITED, Scope
from layers.features.filters import (
    ItemQuery,
    check_property_names,
    visible_conditions,
    where_sql,
)
from layers.features.input import PreparedWrite, prepare_write
from layers.features.scope import check_departments, check_layer, owners
from layers.features.sql import Params, feature_sql

MAX_LIMIT = 10_000


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Page:
    """A page of features as GeoJSON texts, with how many matched in all (None: not counted)."""

    features: list[str]
    number_matched: int | None
    limit: int
    offset: int

    @property
    def number_returned(self) -> int:
        """How many features this page holds."""
        return len(self.features)


@dataclass(frozen=True)
class StoredFeature:
    """One feature as stored now: its id, GeoJSON text in CRS84 and in the asked CRS, ETag."""

    id: Any
    geojson: str
    etag: str
    version: int | None
    output: str


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the feature after it (None after a delete), its ETag, any repair."""

    id: Any
    output: str | None
    etag: str | None
    version: int
    repaired: Repair | None = None
    created: bool = False


# --------------------------------------------------------------------------- ids and etags


def parse_feature_id(layer: Layer, value: str) -> Any:
    """A feature id from a URL as the id column's type; 404 when it cannot be one."""
    if layer.id_type == "integer":
        try:
            number = int(value)
        except ValueError:
            raise NotFound(
                f"no feature {value!r} in {layer.id}", code="feature_not_found"
            ) from None
        if abs(number) >= 2**63:
            raise NotFound(f"no feature {value!r} in {layer.id}", code="feature_not_found")
        return number
    if layer.id_type == "h3":
        try:
            return parse_cell(value)
        except BadRequest:
            raise NotFound(
                f"no feature {value!r} in {layer.id}", code="feature_not_found"
            ) from None
    return value


def make_etag(layer: Layer, feature_id: Any, version: int | None, geojson: str) -> str:
    """The strong ETag of a feature: from layer, id and version (content hash when unversioned)."""
    stamp = f"v{version}" if version is not None else hashlib.md5(geojson.encode()).hexdigest()
    digest = hashlib.sha1(f"{layer.id}\x00{feature_id}\x00{stamp}".encode()).hexdigest()
    return f'"{digest[:24]}"'


def require_if_match(if_match: str | None) -> str:
    """The If-Match header; 428 when the request has none."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            "this change needs an If-Match header with the feature's current ETag "
            "(GET the feature to read it)",
            code="if_match_required",
        )
    return if_match


def if_match_allows(if_match: str, etag: str) -> bool:
    """Whether an If-Match header matches ``etag`` (strong comparison; ``*`` matches)."""
    tags = [t.strip() for t in if_match.split(",")]
    return "*" in tags or etag in tags


# --------------------------------------------------------------------------- reading


async def query_features(engine: AsyncEngine, layer: Layer, query: ItemQuery) -> Page:
    """A page of the layer's features matching ``query``, ordered by id."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="invalid_parameter")
    if query.offset < 0:
        raise BadRequest("offset must be 0 or more", code="invalid_parameter")
    if query.properties is not None:
        check_property_names(layer, query.properties)
    params = Params()
    where = where_sql(layer, query, params)
    feature = feature_sql(layer, query.crs, names=query.properties, params=params)
    table = f"{quote(layer.table)} AS t"
    limit, offset = params.add(query.limit, "bigint"), params.add(query.offset, "bigint")
    order = column(layer, layer.id_column)
    # the page's rows first, then their GeoJSON: rows skipped by OFFSET are never serialised
    page = f"SELECT * FROM {table} WHERE {where} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    sql = f"SELECT {feature} FROM ({page}) AS t ORDER BY {order}"
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), params.values)).scalars().all()
        matched: int | None
        if len(rows) < query.limit and (rows or query.offset == 0):
            matched = query.offset + len(rows)
        else:
            count_sql = f"SELECT count(*) FROM {table} WHERE {where}"
            matched = (await conn.execute(text(count_sql), params.values)).scalar_one()
    return Page(list(rows), matched, query.limit, query.offset)


def _version_sql(layer: Layer) -> str:
    return column(layer, layer.version_column) if layer.version_column else "NULL::integer"


async def _read(
    conn: AsyncConnection, layer: Layer, feature_id: Any, crs: CRS = CRS84
) -> StoredFeature | None:
    params = Params()
    where = f"{column(layer, layer.id_column)} = {params.add(feature_id, _id_sql_type(layer))}"
    for condition in visible_conditions(layer, params):
        where += f" AND {condition}"
    sql = (
        f"SELECT {feature_sql(layer, CRS84)}, {_version_sql(layer)}, "
        f"{feature_sql(layer, crs)} FROM {quote(layer.table)} AS t WHERE {where}"
    )
    row = (await conn.execute(text(sql), params.values)).first()
    if row is None:
        return None
    geojson, version, output = row
    return StoredFeature(
        feature_id, geojson, make_etag(layer, feature_id, version, geojson), version, output
    )


def _id_sql_type(layer: Layer) -> str:
    return {"integer": "bigint", "h3": "bigint", "string": "text"}[layer.id_type]


async def get_feature(
    engine: AsyncEngine, layer: Layer, feature_id: Any, crs: CRS = CRS84
) -> StoredFeature:
    """The feature ``feature_id`` as stored now; 404 when there is none, or when it lies
    outside the rows this view of the layer shows (its existence is not told)."""
    async with engine.connect() as conn:
        found = await _read(conn, layer, feature_id, crs)
    if found is None:
        raise NotFound(f"no feature {feature_id} in {layer.id}", code="feature_not_found")
    return found


# --------------------------------------------------------------------------- writing


def _feature_bounds(geojson: str) -> BBox | None:
    geometry = orjson.loads(geojson).get("geometry")
    if not geometry:
        return None
    return tuple(shapely.geometry.shape(geometry).bounds)  # type: ignore[return-value]


def _assignments(
    layer: Layer, prep: PreparedWrite, params: Params, actor: str, replace: bool
) -> dict[str, str]:
    """Column → SQL value of a write (columns the body left out get their DEFAULT on replace)."""
    values: dict[str, str] = {}
    types = {
        "string": "text",
        "integer": "bigint",
        "number": "double precision",
        "boolean": "boolean",
        "datetime": "timestamptz",
        "object": "jsonb",
    }
    for name, kind in layer.writable_properties.items():
        if name in prep.columns:
            values[name] = params.add(prep.columns[name], types[kind])
        elif replace:
            values[name] = "DEFAULT"
    if layer.extra_properties_column:
        values[layer.extra_properties_column] = params.add(
            orjson.dumps(prep.extras).decode(), "jsonb"
        )
    if prep.wkb is not None:
        values[layer.geometry_column] = (
            f"ST_GeomFromWKB({params.add(prep.wkb, 'bytea')}, {int(layer.srid)})"
        )
        for column, cell in prep.cells.items():
            values[column] = params.add(cell, "bigint")
    if layer.updated_at_column:
        values[layer.updated_at_column] = "now()"
    if layer.updated_by_column:
        values[layer.updated_by_column] = params.add(actor, "text")
    return values


def _returning(layer: Layer, crs: CRS) -> str:
    return (
        f"{column(layer, layer.id_column)}, {_version_sql(layer)}, "
        f"{feature_sql(layer, CRS84)}, {feature_sql(layer, crs)}"
    )


async def next_history_version(conn: AsyncConnection, layer: Layer, feature_id: Any) -> int:
    """The version number the feature's next history row takes."""
    sql = (
        "SELECT COALESCE(max(version), 0) + 1 FROM feature_history "
        "WHERE layer = :layer AND feature_id = :fid"
    )
    return (await conn.execute(text(sql), {"layer": layer.id, "fid": str(feature_id)})).scalar_one()


async def record_history(
    conn: AsyncConnection,
    layer: Layer,
    feature_id: Any,
    version: int,
    op: str,
    before: str | None,
    after: str | None,
    actor: str,
) -> None:
    """One feature_history row, in the caller's transaction."""
    sql = (
        "INSERT INTO feature_history (layer, feature_id, version, op, before, after, actor) "
        "VALUES (:layer, :fid, :version, :op, CAST(:before AS jsonb), CAST(:after AS jsonb), "
        ":actor)"
    )
    await conn.execute(
        text(sql),
        {
            "layer": layer.id,
            "fid": str(feature_id),
            "version": version,
            "op": op,
            "before": before,
            "after": after,
            "actor": actor,
        },
    )


def database_error(exc: DBAPIError, layer: Layer) -> Exception:
    """A refused write as the 4xx that says why (unique → 409, others → 422)."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or ""
    cause = getattr(orig, "__cause__", None)
    detail = getattr(cause, "detail", None) or str(cause or orig).splitlines()[0]
    if state == "23505":
        return Conflict(
            f"a feature of {layer.id} already has this value: {detail}", code="duplicate"
        )
    if state.startswith("23") or state.startswith("22"):
        return Unprocessable(
            f"the database refused the feature: {detail}", code="constraint_violation"
        )
    return exc


def _insert_sql(layer: Layer, values: dict[str, str], crs: CRS) -> str:
    """The INSERT of one feature, ``values`` mapping its columns to SQL, returning the row
    as every write returns it."""
    cols = ", ".join(quote(c) for c in values)
    return (
        f"INSERT INTO {quote(layer.table)} AS t ({cols}) VALUES ({', '.join(values.values())})"
        f" RETURNING {_returning(layer, crs)}"
    )


async def _execute_write(conn: AsyncConnection, layer: Layer, sql: str, params: Params) -> Any:
    try:
        return (await conn.execute(text(sql), params.values)).first()
    except DBAPIError as exc:
        raise database_error(exc, layer) from None


async def create_feature(
    engine: AsyncEngine,
    layer: Layer,
    body: Any,
    actor: str,
    *,
    content_crs: CRS = CRS84,
    crs: CRS = CRS84,
    repair: bool = False,
    scope: Scope = UNLIMITED,
) -> WriteResult:
    """Insert a new feature (its id chosen by the database); history op 'create'. Forbidden
    when the feature lies outside ``scope`` (its layer, its department)."""
    check_layer(layer, scope)
    prep = prepare_write(layer, body, content_crs, repair)
    params = Params()
    values = _assignments(layer, prep, params, actor, replace=False)
    if layer.version_column:
        values[layer.version_column] = "1"
    if layer.id_type == "string":
        if not isinstance(body.get("id"), str) or not body["id"]:
            raise Unprocessable("features of this layer need a string id", code="invalid_id")
        values[layer.id_column] = params.add(body["id"], "text")
    sql = _insert_sql(layer, values, crs)
    async with engine.begin() as conn:
        await check_departments(conn, layer, scope, owners(layer, None, prep.columns))
        feature_id, version, after, output = await _execute_write(conn, layer, sql, params)
        history_version = version or await next_history_version(conn, layer, feature_id)
        await record_history(conn, layer, feature_id, history_version, "create", None, after, actor)
        await publish_change(conn, layer.id, [prep.bounds])
    return WriteResult(
        feature_id,
        output,
        make_etag(layer, feature_id, version, after),
        history_version,
        prep.repaired,
        created=True,
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch of ``patch`` onto ``target``."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def update_feature(
    engine: AsyncEngine,
    layer: Layer,
    feature_id: Any,
    body: Any,
    if_match: str | None,
    actor: str,
    *,
    patch: bool = False,
    content_crs: CRS = CRS84,
    crs: CRS = CRS84,
    repair: bool = False,
    op: str | None = None,
    scope: Scope = UNLIMITED,
) -> WriteResult:
    """Replace (PUT) or merge-patch (PATCH) a feature if ``if_match`` is its current ETag.

    The expected version is part of the UPDATE's WHERE clause: of several writers holding
    the same ETag exactly one succeeds; the others get 412. History records ``op``
    (default 'update' for a patch, 'replace' otherwise). Forbidden when the feature, before
    or after, lies outside ``scope``.
    """
    check_layer(layer, scope)
    if_match = require_if_match(if_match)
    async with engine.begin() as conn:
        current = await _current_if_match(conn, layer, feature_id, if_match)
        keep_geometry = False
        if patch:
            body, keep_geometry = _patched(current, body)
        prep = prepare_write(layer, body, content_crs, repair, keep_geometry)
        touched = owners(layer, current.geojson, prep.columns)
        await check_departments(conn, layer, scope, touched)
        params = Params()
        values = _assignments(layer, prep, params, actor, replace=True)
        if layer.version_column:
            values[layer.version_column] = f"t.{quote(layer.version_column)} + 1"
        where = _unchanged_since_read(layer, feature_id, current, params)
        sets = ", ".join(f"{quote(c)} = {v}" for c, v in values.items())
        sql = (
            f"UPDATE {quote(layer.table)} AS t SET {sets} WHERE {where} "
            f"RETURNING {_returning(layer, crs)}"
        )
        row = await _execute_write(conn, layer, sql, params)
        if row is None:
            raise _stale(current)
        _, version, after, output = row
        history_version = version or await next_history_version(conn, layer, feature_id)
        op = op or ("update" if patch else "replace")
        await record_history(
            conn, layer, feature_id, history_version, op, current.geojson, after, actor
        )
        await publish_change(conn, layer.id, _boxes(current.geojson, prep.bounds))
    return WriteResult(
        feature_id,
        output,
        make_etag(layer, feature_id, version, after),
        history_version,
        prep.repaired,
    )


def _patched(current: StoredFeature, patch: Any) -> tuple[dict[str, Any], bool]:
    """The feature after a merge patch, and whether its geometry stays as stored."""
    if not isinstance(patch, dict):
        raise BadRequest("a merge patch must be a JSON object", code="invalid_patch")
    if "geometry" in patch and patch["geometry"] is None:
        raise Unprocessable("a feature of this layer needs a geometry", code="invalid_geometry")
    stored = orjson.loads(current.geojson)
    properties = merge_patch(stored.get("properties") or {}, patch.get("properties") or {})
    body = {"type": "Feature", "geometry": patch.get("geometry"), "properties": properties}
    return body, patch.get("geometry") is None


def _md5(current: StoredFeature) -> str:
    return hashlib.md5(current.geojson.encode()).hexdigest()


def _boxes(before: str | None, after: BBox | None) -> list[BBox]:
    boxes = [b for b in (_feature_bounds(before) if before else None, after) if b]
    return boxes


async def _current_if_match(
    conn: AsyncConnection, layer: Layer, feature_id: Any, if_match: str
) -> StoredFeature:
    """The stored feature a conditional write applies to: 404 when there is none, 412 when
    ``if_match`` is not its current ETag."""
    current = await _read(conn, layer, feature_id)
    if current is None:
        raise NotFound(f"no feature {feature_id} in {layer.id}", code="feature_not_found")
    if not if_match_allows(if_match, current.etag):
        raise _stale(current)
    return current


def _unchanged_since_read(
    layer: Layer, feature_id: Any, current: StoredFeature, params: Params
) -> str:
    """The WHERE clause of a conditional write: the feature, still at the version (or, for a
    layer without a version column, with the content) it had when read as ``current``."""
    where = f"{column(layer, layer.id_column)} = {params.add(feature_id, _id_sql_type(layer))}"
    if layer.version_column:
        where += f" AND t.{quote(layer.version_column)} = {params.add(current.version, 'integer')}"
    else:
        where += f" AND md5({feature_sql(layer, CRS84)}) = {params.add(_md5(current), 'text')}"
    return where


def _stale(current: StoredFeature) -> PreconditionFailed:
    return PreconditionFailed(
        "the feature changed since you read it: If-Match does not match its current ETag "
        f"{current.etag}; GET it again and reapply your change",
        code="stale_etag",
        headers={"ETag": current.etag},
    )


async def delete_feature(
    engine: AsyncEngine,
    layer: Layer,
    feature_id: Any,
    if_match: str | None,
    actor: str,
    scope: Scope = UNLIMITED,
) -> WriteResult:
    """Delete a feature if ``if_match`` is its current ETag; history op 'delete'. Forbidden
    when the feature lies outside ``scope``."""
    check_layer(layer, scope)
    if_match = require_if_match(if_match)
    async with engine.begin() as conn:
        current = await _current_if_match(conn, layer, feature_id, if_match)
        await check_departments(conn, layer, scope, owners(layer, current.geojson, None))
        params = Params()
        where = _unchanged_since_read(layer, feature_id, current, params)
        sql = f"DELETE FROM {quote(layer.table)} AS t WHERE {where} RETURNING 1"
        if await _execute_write(conn, layer, sql, params) is None:
            raise _stale(current)
        history_version = await next_history_version(conn, layer, feature_id)
        if current.version is not None:
            history_version = max(history_version, current.version + 1)
        await record_history(
            conn, layer, feature_id, history_version, "delete", current.geojson, None, actor
        )
        await publish_change(conn, layer.id, _boxes(current.geojson, None))
    return WriteResult(feature_id, None, None, history_version)


async def insert_with_id(
    conn: AsyncConnection,
    layer: Layer,
    feature_id: Any,
    prep: PreparedWrite,
    version: int,
    actor: str,
    crs: CRS = CRS84,
) -> tuple[str, str]:
    """Re-insert a feature under its old id at ``version`` (restore); (CRS84, output) JSON."""
    params = Params()
    values = _assignments(layer, prep, params, actor, replace=False)
    values[layer.id_column] = params.add(feature_id, _id_sql_type(layer))
    if layer.version_column:
        values[layer.version_column] = params.add(version, "integer")
    _, _, after, output = await _execute_write(conn, layer, _insert_sql(layer, values, crs), params)
    return after, output


async def read_feature(
    conn: AsyncConnection, layer: Layer, feature_id: Any, crs: CRS = CRS84
) -> StoredFeature | None:
    """The feature as stored now within the caller's transaction (None: there is none)."""
    return await _read(conn, layer, feature_id, crs)
