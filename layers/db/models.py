"""The CityHex tables as SQLAlchemy 2 / GeoAlchemy2 models.

Geometries are EPSG:4326; tile-hot tables carry ``geom_3857``, a stored generated column
with its own GiST index, so a tile query never transforms rows. H3 cells are ``bigint``.
The migrations under layers/migrations create exactly these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ASSET_STATES = ("intact", "damaged", "lost", "removed")
ROLES = ("app", "inspector", "editor", "dispatcher", "admin")


def geometry(kind: str = "GEOMETRY", srid: int = 4326) -> Geometry:
    """A geometry column type without GeoAlchemy2's implicit index (migrations make them)."""
    return Geometry(kind, srid=srid, spatial_index=False)


def geom_3857(kind: str = "GEOMETRY") -> Any:
    """The stored generated EPSG:3857 copy of ``geom``."""
    return mapped_column(geometry(kind, 3857), Computed("ST_Transform(geom, 3857)", persisted=True))


class Base(DeclarativeBase):
    """Declarative base of the CityHex tables."""

    type_annotation_map = {dict[str, Any]: JSONB}


class CellLevels:
    """The cell containing the row's point at resolutions 5–9 and 11 (``h3`` holds res 10),
    computed on write (migration 0015)."""

    h3_5: Mapped[int | None] = mapped_column(BigInteger)
    h3_6: Mapped[int | None] = mapped_column(BigInteger)
    h3_7: Mapped[int | None] = mapped_column(BigInteger)
    h3_8: Mapped[int | None] = mapped_column(BigInteger)
    h3_9: Mapped[int | None] = mapped_column(BigInteger)
    h3_11: Mapped[int | None] = mapped_column(BigInteger)


class Department(Base):
    """A municipal department that owns assets or handles incident categories."""

    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)


class District(Base):
    """An administrative district: its 6-digit division code and boundary."""

    __tablename__ = "districts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(geometry("MULTIPOLYGON"), nullable=False)
    geom_3857 = geom_3857("MULTIPOLYGON")


class User(Base):
    """A person who works the system: inspector (网格员), supervisor, staff, dispatcher."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="inspector")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    phone: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")


class Asset(CellLevels, Base):
    """A municipal component (部件): 16-character code, class, state, owner, location."""

    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint(f"state IN {ASSET_STATES}", name="assets_state_check"),
        CheckConstraint("code ~ '^[0-9]{16}$'", name="assets_code_check"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    class_code: Mapped[str] = mapped_column(String(4), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), server_default="intact")
    owner_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    properties: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(Text)
    h3: Mapped[int | None] = mapped_column(BigInteger, index=True)
    geom = mapped_column(geometry(), nullable=False)
    geom_3857 = geom_3857()


class IncidentCategory(Base):
    """An incident class (事件): 4-digit code, handling time limit, responsible department."""

    __tablename__ = "incident_categories"
    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    major: Mapped[str] = mapped_column(String(2))
    minor: Mapped[str] = mapped_column(String(2))
    major_name: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    time_limit_hours: Mapped[float] = mapped_column(Numeric(6, 2))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))


class Incident(CellLevels, Base):
    """A reported case and where it stands in the workflow."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("incident_categories.code"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), server_default="inspector")
    reporter: Mapped[str | None] = mapped_column(Text)
    asset_code: Mapped[str | None] = mapped_column(String(16))
    sensor_id: Mapped[int | None] = mapped_column(Integer)
    photos: Mapped[dict[str, Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    h3: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # the case's resolve and rework transitions summed up (triggers, migration 0025)
    resolve_first_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolve_last_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolve_n: Mapped[int] = mapped_column(Integer, server_default="0")
    rework_first_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rework_last_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rework_n: Mapped[int] = mapped_column(Integer, server_default="0")
    properties: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    geom = mapped_column(geometry("POINT"), nullable=False)
    geom_3857 = geom_3857("POINT")


class IncidentTransition(Base):
    """One step of a case's lifecycle: who moved it from which state to which, when, why."""

    __tablename__ = "incident_transitions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)


class GridCell(Base):
    """A unit grid cell (H3), its district, area and responsible inspector."""

    __tablename__ = "grid_cells"
    h3: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    res: Mapped[int] = mapped_column(SmallInteger)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), index=True)
    area_m2: Mapped[float] = mapped_column(Double)
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    supervisor: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    geom = mapped_column(geometry("POLYGON"), nullable=False)
    geom_3857 = geom_3857("POLYGON")


class GridAssignment(Base):
    """The history of a cell's responsible inspector: every change, who made it and when."""

    __tablename__ = "grid_assignments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    from_inspector_id: Mapped[int | None] = mapped_column(Integer)
    to_inspector_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)


class Sensor(CellLevels, Base):
    """A sensor: what it measures, where, its thresholds and latest values."""

    __tablename__ = "sensors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    measures: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    thresholds: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    asset_code: Mapped[str | None] = mapped_column(String(16))
    latest: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    alarm_state: Mapped[str] = mapped_column(String(16), server_default="normal")
    h3: Mapped[int | None] = mapped_column(BigInteger, index=True)
    geom = mapped_column(geometry("POINT"), nullable=False)
    geom_3857 = geom_3857("POINT")


class Reading(Base):
    """One measured value; the table is partitioned by month of ``ts``."""

    __tablename__ = "readings"
    __table_args__ = {"postgresql_partition_by": "RANGE (ts)"}
    sensor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    property: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[float] = mapped_column(Double)


class FeatureHistory(Base):
    """Every edit of a feature: its version, the operation, the before and after states."""

    __tablename__ = "feature_history"
    __table_args__ = (Index("ix_feature_history_feature", "layer", "feature_id", "version"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    layer: Mapped[str] = mapped_column(String(64))
    feature_id: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()
    actor: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """An API key: only its SHA-256 digest is stored, with its role and scope (the district
    codes, department codes and layer ids it is limited to; NULL: no limit)."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="api_keys_role_check"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    districts: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    departments: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    layers: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
