"""foundation schema: every CityHex table, spatial indexes, h3_parent, monthly readings

Revision ID: 0001
Revises:
Create Date: 2026-11-24 09:15:53.887471
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None


SPATIAL_TABLES = {
    "districts": True,
    "assets": True,
    "incidents": True,
    "grid_cells": True,
    "sensors": True,
}

# H3 index layout: bits 52-55 hold the resolution, then 15 digits of 3 bits each, digit r at
# bits 3*(15-r) .. 3*(15-r)+2; digits finer than the resolution are all ones (7). The parent at
# resolution p sets the resolution field to p and digits p+1..15 to 7.
H3_FUNCTIONS = """
CREATE FUNCTION h3_resolution(cell bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ((cell >> 52) & 15)::integer;

CREATE FUNCTION h3_parent(cell bigint, res integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE
    WHEN res < 0 OR res > ((cell >> 52) & 15) THEN NULL
    ELSE (cell & ~(15::bigint << 52)) | (res::bigint << 52)
         | ((1::bigint << (3 * (15 - res))) - 1)
END;
"""

READINGS_PARTITION_FUNCTION = """
CREATE FUNCTION readings_ensure_partition(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo date := date_trunc('month', month)::date;
    name text := 'readings_' || to_char(lo, 'YYYY_MM');
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
        name, lo, (lo + interval '1 month')::date);
    RETURN name;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "districts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "feature_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("layer", sa.String(length=64), nullable=False),
        sa.Column("feature_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_feature_history_feature",
        "feature_history",
        ["layer", "feature_id", "version"],
        unique=False,
    )
    op.create_table(
        "grid_assignments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("h3", sa.BigInteger(), nullable=False),
        sa.Column("from_inspector_id", sa.Integer(), nullable=True),
        sa.Column("to_inspector_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_grid_assignments_h3"), "grid_assignments", ["h3"], unique=False)
    op.create_table(
        "readings",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("property", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "property", "ts"),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_table(
        "sensors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "measures",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "thresholds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("asset_code", sa.String(length=16), nullable=True),
        sa.Column(
            "latest",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("alarm_state", sa.String(length=16), server_default="normal", nullable=False),
        sa.Column("h3", sa.BigInteger(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index(op.f("ix_sensors_h3"), "sensors", ["h3"], unique=False)
    op.create_index(op.f("ix_sensors_kind"), "sensors", ["kind"], unique=False)
    op.create_table(
        "assets",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("class_code", sa.String(length=4), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="intact", nullable=False),
        sa.Column("owner_department_id", sa.Integer(), nullable=True),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("h3", sa.BigInteger(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            geoalchemy2.types.Geometry(
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{16}$'", name="assets_code_check"),
        sa.CheckConstraint(
            "state IN ('intact', 'damaged', 'lost', 'removed')", name="assets_state_check"
        ),
        sa.ForeignKeyConstraint(
            ["owner_department_id"],
            ["departments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index(op.f("ix_assets_class_code"), "assets", ["class_code"], unique=False)
    op.create_index(op.f("ix_assets_h3"), "assets", ["h3"], unique=False)
    op.create_index(op.f("ix_assets_kind"), "assets", ["kind"], unique=False)
    op.create_table(
        "incident_categories",
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("major", sa.String(length=2), nullable=False),
        sa.Column("minor", sa.String(length=2), nullable=False),
        sa.Column("major_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("time_limit_hours", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="inspector", nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('app', 'inspector', 'editor', 'dispatcher', 'admin')",
            name="api_keys_role_check",
        ),
        sa.ForeignKeyConstraint(
            ["inspector_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "grid_cells",
        sa.Column("h3", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=True),
        sa.Column("supervisor", sa.Text(), nullable=True),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            geoalchemy2.types.Geometry(
                geometry_type="POLYGON",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["inspector_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("h3"),
    )
    op.create_index(op.f("ix_grid_cells_district_id"), "grid_cells", ["district_id"], unique=False)
    op.create_index(
        op.f("ix_grid_cells_inspector_id"), "grid_cells", ["inspector_id"], unique=False
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("category_code", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), server_default="inspector", nullable=False),
        sa.Column("reporter", sa.Text(), nullable=True),
        sa.Column("asset_code", sa.String(length=16), nullable=True),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column(
            "photos",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("inspector_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("h3", sa.BigInteger(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["incident_categories.code"],
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["inspector_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_incidents_category_code"), "incidents", ["category_code"], unique=False
    )
    op.create_index(
        op.f("ix_incidents_department_id"), "incidents", ["department_id"], unique=False
    )
    op.create_index(op.f("ix_incidents_h3"), "incidents", ["h3"], unique=False)
    op.create_index(op.f("ix_incidents_inspector_id"), "incidents", ["inspector_id"], unique=False)
    op.create_index(op.f("ix_incidents_reported_at"), "incidents", ["reported_at"], unique=False)
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"], unique=False)
    op.create_table(
        "incident_transitions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_incident_transitions_incident_id"),
        "incident_transitions",
        ["incident_id"],
        unique=False,
    )

    for table, has_3857 in SPATIAL_TABLES.items():
        op.execute(f"CREATE INDEX ix_{table}_geom ON {table} USING gist (geom)")
        if has_3857:
            op.execute(f"CREATE INDEX ix_{table}_geom_3857 ON {table} USING gist (geom_3857)")
    op.execute(H3_FUNCTIONS)
    op.execute(READINGS_PARTITION_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION readings_ensure_partition(date)")
    op.execute("DROP FUNCTION h3_parent(bigint, integer)")
    op.execute("DROP FUNCTION h3_resolution(bigint)")
    op.drop_index(op.f("ix_incident_transitions_incident_id"), table_name="incident_transitions")
    op.drop_table("incident_transitions")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_reported_at"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_inspector_id"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_h3"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_department_id"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_category_code"), table_name="incidents")
    op.drop_table("incidents")
    op.drop_index(op.f("ix_grid_cells_inspector_id"), table_name="grid_cells")
    op.drop_index(op.f("ix_grid_cells_district_id"), table_name="grid_cells")
    op.drop_table("grid_cells")
    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("incident_categories")
    op.drop_index(op.f("ix_assets_kind"), table_name="assets")
    op.drop_index(op.f("ix_assets_h3"), table_name="assets")
    op.drop_index(op.f("ix_assets_class_code"), table_name="assets")
    op.drop_table("assets")
    op.drop_index(op.f("ix_sensors_kind"), table_name="sensors")
    op.drop_index(op.f("ix_sensors_h3"), table_name="sensors")
    op.drop_table("sensors")
    op.drop_table("readings")
    op.drop_index(op.f("ix_grid_assignments_h3"), table_name="grid_assignments")
    op.drop_table("grid_assignments")
    op.drop_index("ix_feature_history_feature", table_name="feature_history")
    op.drop_table("feature_history")
    op.drop_table("districts")
    op.drop_table("departments")
