"""History rows for what an import changes in existing features: an upsert's updates
(before and after) and a replace's deletions, written by the same statements, as the
Features API records its own edits (layers.features.sql's GeoJSON of a feature).

New features an import adds get no row each: their history starts at their first edit.
"""

from __future__ import annotations

import psycopg

from layers.catalog.registry import Layer
from layers.features.sql import feature_sql

NEXT_VERSION = (
    "(SELECT COALESCE(max(h.version), 0) + 1 FROM feature_history h "
    "WHERE h.layer = %(layer)s::text AND h.feature_id = {fid}::text)"
)


def update_recording_history(
    conn: psycopg.Connection, layer: Layer, stage: str, assignments: str, match: str, actor: str
) -> int:
    """UPDATE the layer's rows that match staged rows, with a history row (op 'update') for
    each; the number of rows updated."""
    table, doc = layer.table, f"({feature_sql(layer)})::jsonb"
    fid = f"t.{layer.id_column}"
    version = f"t.{layer.version_column}" if layer.version_column else "NULL::integer"
    first_free = NEXT_VERSION.format(fid="c.fid")
    sql = (
        f"WITH before AS (SELECT {fid} AS fid, {doc} AS doc FROM {table} t "
        f"JOIN {stage} s ON {match}), "
        f"changed AS (UPDATE {table} t SET {assignments} FROM {stage} s WHERE {match} "
        f"RETURNING {fid} AS fid, {version} AS version, {doc} AS doc) "
        "INSERT INTO feature_history (layer, feature_id, version, op, before, after, actor) "
        f"SELECT %(layer)s::text, c.fid::text, COALESCE(c.version, {first_free}), 'update', "
        "b.doc, c.doc, %(actor)s FROM changed c JOIN before b USING (fid)"
    )
    return conn.execute(sql, {"layer": layer.id, "actor": actor}).rowcount


def record_deletions(conn: psycopg.Connection, layer: Layer, actor: str) -> None:
    """A history row (op 'delete', the feature as it was) for every row of the layer, before
    a replace deletes them all."""
    fid = f"t.{layer.id_column}"
    version = f"t.{layer.version_column} + 1" if layer.version_column else "1"
    first_free = NEXT_VERSION.format(fid=fid)
    sql = (
        "INSERT INTO feature_history (layer, feature_id, version, op, before, after, actor) "
        f"SELECT %(layer)s::text, {fid}::text, GREATEST({version}, {first_free}), "
        f"'delete', ({feature_sql(layer)})::jsonb, NULL, %(actor)s FROM {layer.table} t"
    )
    conn.execute(sql, {"layer": layer.id, "actor": actor})
