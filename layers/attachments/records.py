"""Attachments of cases and features: who may add one at which stage, storing it (file and
row together or neither), and reading them under the case's read rules.

Who may upload to a case, by stage (admin always may); the case must be one the caller may
see (``layers.incidents.scope``: districts, departments, an inspector's own cases), one it
may act on (``layers.incidents.transitions.check_scope``: a key speaking for department
staff, its department's cases) and in one of the stage's states:

- ``report``: the case's reporter (the key that reported it), dispatcher; while the case
  is reported or registered;
- ``before`` (处置前): editor (department staff), inspector, dispatcher; registered,
  dispatched or in_progress;
- ``after`` (处置后): editor, inspector, dispatcher; in_progress or resolved;
- ``verification`` (核查): inspector, dispatcher; resolved or verified.

Anonymous callers never upload nor read: nothing ties an anonymous caller to the case it
reported (case ids are sequential), so a public upload would let anyone put pictures on
any fresh case. A citizen's photos arrive through an app key (the reporter of its cases) or
as photo URLs in the report. The position read from a photo's EXIF and the uploader's name
are shown to staff (inspector, editor, dispatcher, admin), never to app keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gis.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from layers.attachments.media import Prepared, prepare
from layers.attachments.store import attachment_settings, file_path, lock_hash, write_file
from layers.catalog.registry import Layer
from layers.features.repository import get_feature
from layers.features.scope import check_departments, owners
from layers.incidents.cases import Actor, Incident
from layers.incidents.scope import visible_incident
from layers.incidents.transitions import check_scope
from layers.incidents.working_time import working_time_settings

log = logging.getLogger("cityhex.attachments")

STAGES = ("report", "before", "after", "verification")
STAFF = frozenset({"inspector", "editor", "dispatcher", "admin"})
"""The roles that see where a photo was taken and who uploaded it."""


@dataclass(frozen=True)
class StageRule:
    """Who may add an attachment at a stage, and in which states of the case."""

    roles: frozenset[str]
    states: frozenset[str]
    reporter: bool = False
    """Whether the case's reporter may, whatever its role."""


RULES = {
    "report": StageRule(frozenset({"dispatcher"}), frozenset({"reported", "registered"}), True),
    "before": StageRule(
        frozenset({"editor", "inspector", "dispatcher"}),
        frozenset({"registered", "dispatched", "in_progress"}),
    ),
    "after": StageRule(
        frozenset({"editor", "inspector", "dispatcher"}), frozenset({"in_progress", "resolved"})
    ),
    "verification": StageRule(
        frozenset({"inspector", "dispatcher"}), frozenset({"resolved", "verified"})
    ),
}


@dataclass(frozen=True)
class Attachment:
    """One stored attachment."""

    id: int
    incident_id: int | None
    layer: str | None
    feature_id: str | None
    stage: str | None
    transition_id: int | None
    sha256: str
    media_type: str
    bytes: int
    width: int | None
    height: int | None
    has_thumbnail: bool
    taken_at: datetime | None
    lon: float | None
    lat: float | None
    uploaded_by: str
    uploaded_at: datetime

    def as_dict(self, role: str) -> dict[str, Any]:
        """JSON-ready data as ``role`` may see it (position and uploader for staff only)."""
        data: dict[str, Any] = {
            "id": self.id,
            "sha256": self.sha256,
            "stage": self.stage,
            "media_type": self.media_type,
            "bytes": self.bytes,
            "width": self.width,
            "height": self.height,
            "uploaded_at": self.uploaded_at.isoformat(),
        }
        if self.taken_at is not None:
            data["taken_at"] = self.taken_at.isoformat()
        if self.transition_id is not None:
            data["transition_id"] = self.transition_id
        if role in STAFF:
            data["uploaded_by"] = self.uploaded_by
            if self.lon is not None and self.lat is not None:
                data["location"] = {"type": "Point", "coordinates": [self.lon, self.lat]}
        return data


COLUMNS = (
    "a.id, a.incident_id, a.layer, a.feature_id, a.stage, a.transition_id, a.sha256, "
    "a.media_type, a.bytes, a.width, a.height, a.has_thumbnail, a.taken_at, ST_X(a.geom), "
    "ST_Y(a.geom), a.uploaded_by, a.uploaded_at"
)
INSERT = f"""
INSERT INTO attachments AS a (incident_id, layer, feature_id, stage, transition_id, sha256,
    media_type, bytes, width, height, has_thumbnail, taken_at, geom, uploaded_by)
VALUES (:incident_id, :layer, :feature_id, :stage, :transition_id, :sha256, :media_type,
    :bytes, :width, :height, :has_thumbnail, :taken_at,
    CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
         ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, :uploaded_by)
RETURNING {COLUMNS}
"""


def parse_stage(value: str | None) -> str:
    """The stage a client names; BadRequest when it is not one of ``STAGES``."""
    if value not in STAGES:
        raise BadRequest(
            f"stage must be one of {', '.join(STAGES)} (处置前 before, 处置后 after, 核查 "
            f"verification), not {value!r}",
            code="invalid_stage",
        )
    return value


def check_stage(incident: Incident, stage: str, actor: Actor) -> None:
    """Forbidden when ``actor`` may not add a ``stage`` attachment to the case, Conflict when
    the case is not in one of the stage's states."""
    rule = RULES[stage]
    reporter = rule.reporter and incident.reporter == actor.name
    if actor.role != "admin" and actor.role not in rule.roles and not reporter:
        who = ", ".join([*sorted({"admin", *rule.roles}), *(["the reporter"] * rule.reporter)])
        raise Forbidden(
            f"a {stage} attachment is added by {who}, not by role {actor.role!r} / "
            "你的角色不能在此环节上传附件",
            code="stage_not_allowed",
        )
    if incident.status not in rule.states:
        raise Conflict(
            f"incident {incident.id} is {incident.status}; {stage} attachments are added while "
            f"it is {', '.join(sorted(rule.states))} / 案件当前状态不能上传此环节的附件",
            code="stage_closed",
            details={"allowed_states": sorted(rule.states)},
        )


async def _check_case(
    conn: AsyncConnection,
    incident_id: int,
    stage: str,
    transition_id: int | None,
    actor: Actor,
    *,
    lock: bool,
) -> None:
    """Every rule of an upload to a case (visibility, stage, the named transition)."""
    incident = await visible_incident(conn, incident_id, actor, lock=lock)
    check_stage(incident, stage, actor)
    if not (stage == "report" and incident.reporter == actor.name):  # the reporter's photos
        await check_scope(conn, incident, actor)
    if transition_id is not None:
        found = await conn.execute(
            text("SELECT 1 FROM incident_transitions WHERE id = :t AND incident_id = :i"),
            {"t": transition_id, "i": incident_id},
        )
        if found.first() is None:
            raise Unprocessable(
                f"incident {incident_id} has no transition {transition_id}",
                code="unknown_transition",
            )


async def _prepare(data: bytes) -> Prepared:
    """The upload made ready to store, in a worker thread (decoding is CPU work)."""
    settings = attachment_settings()
    tz = ZoneInfo(working_time_settings().timezone)
    return await asyncio.to_thread(prepare, data, settings.thumbnail_px, tz)


async def _store(
    engine: AsyncEngine,
    owner: dict[str, Any],
    prepared: Prepared,
    actor: Actor,
    check: Callable[[AsyncConnection], Awaitable[None]],
) -> Attachment:
    """Check again in the transaction, write the files under the hash's lock, insert the
    row; the files this call wrote are removed, still under the lock, when the insert fails
    or the call is cancelled (a failed commit leaves at most a file no row names, which the
    sweep removes)."""
    async with engine.begin() as conn:
        await check(conn)
        await lock_hash(conn, prepared.sha256)
        created: list[Path] = []
        try:
            for thumbnail, data in ((False, prepared.data), (True, prepared.thumbnail)):
                path = file_path(prepared.sha256, thumbnail)
                if data is not None and await asyncio.to_thread(write_file, path, data):
                    created.append(path)
            lon, lat = prepared.lonlat or (None, None)
            params = {
                "incident_id": None,
                "layer": None,
                "feature_id": None,
                "stage": None,
                "transition_id": None,
                **owner,
                "sha256": prepared.sha256,
                "media_type": prepared.media_type,
                "bytes": len(prepared.data),
                "width": prepared.width,
                "height": prepared.height,
                "has_thumbnail": prepared.thumbnail is not None,
                "taken_at": prepared.taken_at,
                "lon": lon,
                "lat": lat,
                "uploaded_by": actor.name,
            }
            row = (await conn.execute(text(INSERT), params)).one()
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
    return Attachment(*row)


async def add_case_attachment(
    engine: AsyncEngine,
    incident_id: int,
    data: bytes,
    stage: str,
    transition_id: int | None,
    actor: Actor,
) -> Attachment:
    """Store ``data`` as a ``stage`` attachment of case ``incident_id`` (of its step
    ``transition_id``, if given). The rules are checked before the file is decoded and
    again, with the case locked, in the transaction that writes it."""
    async with engine.connect() as conn:
        await _check_case(conn, incident_id, stage, transition_id, actor, lock=False)
    prepared = await _prepare(data)

    async def check(conn: AsyncConnection) -> None:
        await _check_case(conn, incident_id, stage, transition_id, actor, lock=True)

    owner = {"incident_id": incident_id, "stage": stage, "transition_id": transition_id}
    return await _store(engine, owner, prepared, actor, check)


async def add_feature_attachment(
    engine: AsyncEngine, layer: Layer, feature_id: Any, data: bytes, actor: Actor
) -> Attachment:
    """Store ``data`` as an attachment of feature ``feature_id`` of ``layer`` (the caller
    has been checked as one who may edit the layer); NotFound when there is no such
    feature, Forbidden when the feature belongs to a department outside the actor's scope
    (as for an edit of the feature)."""
    feature = await get_feature(engine, layer, feature_id)
    touched = owners(layer, feature.geojson, None)
    async with engine.connect() as conn:
        await check_departments(conn, layer, actor.scope, touched)
    prepared = await _prepare(data)

    async def check(conn: AsyncConnection) -> None:
        await check_departments(conn, layer, actor.scope, touched)

    owner = {"layer": layer.id, "feature_id": str(feature_id)}
    return await _store(engine, owner, prepared, actor, check)


async def case_attachments(
    conn: AsyncConnection, incident_id: int, actor: Actor
) -> list[Attachment]:
    """The attachments of a case the actor may see, oldest first."""
    await visible_incident(conn, incident_id, actor)
    rows = await conn.execute(
        text(f"SELECT {COLUMNS} FROM attachments a WHERE a.incident_id = :i ORDER BY a.id"),
        {"i": incident_id},
    )
    return [Attachment(*r) for r in rows]


async def case_attachment(
    conn: AsyncConnection, incident_id: int, attachment_id: int, actor: Actor
) -> Attachment:
    """One attachment of a case the actor may see; NotFound when there is no such case or it
    has no such attachment."""
    await visible_incident(conn, incident_id, actor)
    row = (
        await conn.execute(
            text(f"SELECT {COLUMNS} FROM attachments a WHERE a.id = :a AND a.incident_id = :i"),
            {"a": attachment_id, "i": incident_id},
        )
    ).first()
    if row is None:
        raise NotFound(
            f"incident {incident_id} has no attachment {attachment_id}", code="unknown_attachment"
        )
    return Attachment(*row)


async def feature_attachments(
    engine: AsyncEngine, layer: Layer, feature_id: Any
) -> list[Attachment]:
    """The attachments of a feature, oldest first; NotFound when there is no such feature."""
    await get_feature(engine, layer, feature_id)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {COLUMNS} FROM attachments a WHERE a.layer = :l AND a.feature_id = :f "
                "ORDER BY a.id"
            ),
            {"l": layer.id, "f": str(feature_id)},
        )
        return [Attachment(*r) for r in rows]


async def feature_attachment(
    engine: AsyncEngine, layer: Layer, feature_id: Any, attachment_id: int
) -> Attachment:
    """One attachment of a feature; NotFound when the feature has none such."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM attachments a WHERE a.id = :a AND a.layer = :l "
                    "AND a.feature_id = :f"
                ),
                {"a": attachment_id, "l": layer.id, "f": str(feature_id)},
            )
        ).first()
    if row is None:
        raise NotFound(
            f"feature {feature_id} of {layer.id} has no attachment {attachment_id}",
            code="unknown_attachment",
        )
    return Attachment(*row)


def stored_file(attachment: Attachment, thumbnail: bool = False) -> Path:
    """The file of an attachment (or its thumbnail); NotFound when it has no thumbnail, or
    when the file is not on disk (storage lost or restored apart from the database: logged
    as an error)."""
    if thumbnail and not attachment.has_thumbnail:
        raise NotFound(
            f"attachment {attachment.id} ({attachment.media_type}) has no thumbnail",
            code="no_thumbnail",
        )
    path = file_path(attachment.sha256, thumbnail)
    if not path.is_file():
        log.error("attachment %s: its file %s is missing", attachment.id, path)
        raise NotFound(
            f"the file of attachment {attachment.id} is missing from storage",
            code="attachment_file_missing",
        )
    return path


async def report_photos(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, int]:
    """The first report-stage image attachment of each case that has one: case → attachment."""
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (incident_id) incident_id, id FROM attachments "
            "WHERE incident_id = ANY(:ids) AND stage = 'report' AND media_type LIKE 'image/%' "
            "ORDER BY incident_id, id"
        ),
        {"ids": incident_ids},
    )
    return {r[0]: r[1] for r in rows}
