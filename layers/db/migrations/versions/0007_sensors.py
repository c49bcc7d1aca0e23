"""sensors: alarm history, one transition per reading, partition bounds of readings

Every change of a sensor property's alarm level (normal, warning, alarm) is recorded with
the reading that caused it and the incident it opened or belongs to (or, in ``note``, why
no incident could be opened). A reading can cause
at most one transition (unique sensor, property, ts), so a crossing is never counted twice
even if the same reading is processed again. ``readings_partitions`` lists the monthly
partitions with their bounds for retention.

Revision ID: 0007_sensors
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_sensors"
down_revision: str | Sequence[str] | None = "0002"

SENSOR_ALARMS = """
CREATE TABLE sensor_alarms (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id integer NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    property varchar(32) NOT NULL,
    from_level varchar(16) NOT NULL CHECK (from_level IN ('normal', 'warning', 'alarm')),
    to_level varchar(16) NOT NULL CHECK (to_level IN ('normal', 'warning', 'alarm')),
    value double precision NOT NULL,
    ts timestamptz NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    incident_id bigint REFERENCES incidents (id) ON DELETE SET NULL,
    note text,
    CHECK (from_level <> to_level)
);
CREATE UNIQUE INDEX ux_sensor_alarms_reading ON sensor_alarms (sensor_id, property, ts);
CREATE INDEX ix_sensor_alarms_incident ON sensor_alarms (incident_id)
    WHERE incident_id IS NOT NULL;
"""

READINGS_PARTITIONS = r"""
CREATE FUNCTION readings_partitions()
RETURNS TABLE (name text, lower timestamptz, upper timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'readings'::regclass
    ORDER BY 2
$$;
"""


def upgrade() -> None:
    op.execute(SENSOR_ALARMS)
    op.execute(READINGS_PARTITIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION readings_partitions()")
    op.execute("DROP TABLE sensor_alarms")
