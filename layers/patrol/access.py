"""Who may read whose patrol data: positions are personal data.

An inspector reads their own (their key or token names them); admin reads everyone; a
dispatcher without a district scope reads every inspector, and one limited to districts
reads the inspectors with an assigned cell in one of those districts — where they patrol,
not the district of their user record. The same rule decides which patrol events on
``/events`` (off post, back) reach such a dispatcher (``works_in``), and it is read at each
request, so a reassignment counts at once. Every other caller is refused before these
checks (401/403 by role).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden, NotFound
from layers.patrol.coverage import inspectors_of


@dataclass(frozen=True)
class Reader:
    """A caller of the patrol reads: role, the inspector it is (if any), district scope."""

    role: str
    inspector_id: int | None
    districts: frozenset[str] | None

    def own(self) -> int:
        """The caller's own inspector id; 403 for a key that names none."""
        if self.inspector_id is None:
            raise Forbidden(
                "this inspector key names no inspector: ask for a key with an inspector id",
                code="no_inspector",
            )
        return self.inspector_id


async def cell_districts(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The codes of the districts of the cells assigned to each of the users ``ids`` (an
    empty set for a user with none; users that do not exist are left out)."""
    rows = await conn.execute(
        text(
            "SELECT u.id, array_remove(array_agg(DISTINCT d.code), NULL) FROM users u "
            "LEFT JOIN grid_cells g ON g.inspector_id = u.id "
            "LEFT JOIN districts d ON d.id = g.district_id "
            "WHERE u.id = ANY(:ids) GROUP BY u.id"
        ),
        {"ids": list(ids)},
    )
    return {user: frozenset(codes) for user, codes in rows.all()}


async def inspector_for(conn: AsyncConnection, reader: Reader, asked: int | None) -> int:
    """The inspector a read is about (an inspector's own by default); 403 when the reader
    may not read them, 404 when there is no such user."""
    if reader.role == "inspector":
        own = reader.own()
        if asked is not None and asked != own:
            raise Forbidden("an inspector reads only their own patrol data", code="not_yours")
        return own
    if asked is None:
        if reader.inspector_id is not None:
            return reader.inspector_id
        raise Forbidden("name the inspector: inspector=ID", code="inspector_required")
    codes = await cell_districts(conn, [asked])
    if asked not in codes:
        raise NotFound(f"no user with id {asked}", code="unknown_inspector")
    if reader.districts is not None and not codes[asked] & reader.districts:
        raise Forbidden(
            f"inspector {asked} has no cells in the districts this key may read",
            code="out_of_scope",
        )
    return asked


def check_district(reader: Reader, code: str | None) -> None:
    """403 when a district is named that the reader's scope does not allow."""
    if code is not None and reader.districts is not None and code not in reader.districts:
        raise Forbidden(f"district {code} is out of this key's scope", code="out_of_scope")


async def inspectors_for(
    conn: AsyncConnection, reader: Reader, district_code: str | None
) -> list[int]:
    """The inspectors (with assigned cells) a list read covers: the reader alone for an
    inspector; for others those of ``district_code`` (or all) within their scope."""
    if reader.role == "inspector":
        return [reader.own()]
    check_district(reader, district_code)
    ids = await inspectors_of(conn, district_code)
    if reader.districts is None:
        return ids
    codes = await cell_districts(conn, ids)
    return [i for i in ids if codes.get(i, frozenset()) & reader.districts]


async def works_in(conn: AsyncConnection, inspector_id: int, district_ids: Iterable[int]) -> bool:
    """Whether any cell assigned to the inspector lies in one of the districts (by id)."""
    found = await conn.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM grid_cells WHERE inspector_id = :i "
            "AND district_id = ANY(:d))"
        ),
        {"i": inspector_id, "d": sorted(district_ids)},
    )
    return bool(found)


def counted_in(reader: Reader, district_code: str | None) -> frozenset[str] | None:
    """The districts a centre's table counts inspectors under: the one asked for, else
    those the reader may read (None: any)."""
    return frozenset({district_code}) if district_code is not None else reader.districts
