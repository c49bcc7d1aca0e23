"""Change notices: every write to a layer announces where it happened.

A writer calls ``publish_change`` inside its own transaction; PostgreSQL delivers the
NOTIFY on commit (and never on rollback) to every listening process, so tile caches in
every worker drop exactly the tiles the change touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CHANNEL = "cityhex_changes"
MAX_BOXES = 64
BBox = tuple[float, float, float, float]


def change_payload(layer: str, bboxes: Sequence[BBox] | None) -> str:
    """The NOTIFY payload: the layer and the lon/lat boxes it changed (None: everywhere)."""
    boxes = [list(map(float, b)) for b in bboxes] if bboxes is not None else None
    if boxes is not None and len(boxes) > MAX_BOXES:
        boxes = [
            [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
        ]
    return orjson.dumps({"layer": layer, "bboxes": boxes}).decode()


def parse_payload(payload: str) -> tuple[str, list[BBox] | None]:
    """The layer and boxes of a notice."""
    data = orjson.loads(payload)
    boxes = data.get("bboxes")
    return data["layer"], None if boxes is None else [tuple(b) for b in boxes]


async def publish_change(conn: AsyncConnection, layer: str, bboxes: Sequence[BBox] | None) -> None:
    """Announce, on commit of ``conn``'s transaction, that ``layer`` changed in ``bboxes``."""
    await conn.execute(
        text("SELECT pg_notify(:ch, :payload)"),
        {"ch": CHANNEL, "payload": change_payload(layer, bboxes)},
    )


def publish_change_sync(
    conn: psycopg.Connection, layer: str, bboxes: Sequence[BBox] | None
) -> None:
    """``publish_change`` over a psycopg connection (importers, command-line tools)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, change_payload(layer, bboxes)))
