"""patrol: inspectors' GPS fixes in day partitions, shift schedules, off-post episodes and
their events, and the last day each cell was patrolled

``patrol_fixes`` holds one row per (inspector, ts) with the fix's H3 cell at the grid's
resolution (computed on write with the h3 package), partitioned by UTC day
(``patrol_fixes_YYYYMMDD``, made on demand by ``patrol_fixes_ensure_partition``; retention
drops whole days). ``patrol_pieces`` holds, for every segment of a track (two consecutive
counted fixes at most the gap apart), each grid cell the segment meets and the fraction of
its length inside that cell, written as fixes arrive, so that a day's figures are sums.
``patrol_schedules`` gives a shift (local start and end time, on working
days of the incidents' calendar or on every day) to an inspector or to a district.
``patrol_off_post`` records each off-post episode (脱岗); ``patrol_events`` the
``inspector.off_post`` and ``inspector.back`` events, whose ids come from the sequence of
``incident_transitions`` so that ``/events`` carries one increasing id over both.
``patrol_cells`` keeps the last time each grid cell was patrolled; the view
``patrol_staleness`` turns it into whole days (24 h) since, for the tile layer of that name.

Revision ID: 0017_patrol
Revises: 0015_h3_levels
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_patrol"
down_revision: str | Sequence[str] | None = "0015_h3_levels"

TABLES = r"""
CREATE TABLE patrol_fixes (
    inspector_id integer NOT NULL,
    ts timestamptz NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    accuracy_m real,
    speed_mps real,
    h3 bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inspector_id, ts)
) PARTITION BY RANGE (ts);

CREATE FUNCTION patrol_fixes_ensure_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'patrol_fixes_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF patrol_fixes FOR VALUES FROM (%L) TO (%L)',
            name, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
    END IF;
    RETURN name;
END $$;

CREATE FUNCTION patrol_fixes_partitions()
RETURNS TABLE (name text, lower timestamptz, upper timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'patrol_fixes'::regclass
    ORDER BY 2
$$;

CREATE TABLE patrol_pieces (
    inspector_id integer NOT NULL,
    t0 timestamptz NOT NULL,
    t1 timestamptz NOT NULL,
    h3 bigint NOT NULL,
    frac double precision NOT NULL
);
CREATE INDEX ix_patrol_pieces_inspector_t0 ON patrol_pieces (inspector_id, t0);

CREATE TABLE patrol_schedules (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inspector_id integer REFERENCES users (id) ON DELETE CASCADE,
    district_id integer REFERENCES districts (id) ON DELETE CASCADE,
    start_time time NOT NULL,
    end_time time NOT NULL,
    working_days_only boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text,
    CHECK ((inspector_id IS NULL) <> (district_id IS NULL)),
    CHECK (start_time <> end_time)
);
CREATE UNIQUE INDEX ux_patrol_schedules_inspector ON patrol_schedules (inspector_id)
    WHERE inspector_id IS NOT NULL;
CREATE UNIQUE INDEX ux_patrol_schedules_district ON patrol_schedules (district_id)
    WHERE district_id IS NOT NULL;

CREATE TABLE patrol_off_post (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inspector_id integer NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    ended_by text CHECK (ended_by IN ('back', 'shift_end')),
    detected_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (inspector_id, started_at)
);
CREATE INDEX ix_patrol_off_post_open ON patrol_off_post (inspector_id) WHERE ended_at IS NULL;

CREATE TABLE patrol_events (
    id bigint PRIMARY KEY,
    type text NOT NULL CHECK (type IN ('inspector.off_post', 'inspector.back')),
    inspector_id integer NOT NULL,
    off_post_id bigint NOT NULL REFERENCES patrol_off_post (id) ON DELETE CASCADE,
    at timestamptz NOT NULL
);

CREATE TABLE patrol_cells (
    h3 bigint PRIMARY KEY,
    last_at timestamptz NOT NULL
);

CREATE VIEW patrol_staleness AS
    SELECT g.h3, g.district_id, g.geom, g.geom_3857,
           floor(extract(epoch FROM now() - c.last_at) / 86400)::integer AS days
    FROM grid_cells g LEFT JOIN patrol_cells c ON c.h3 = g.h3;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(
        "ALTER TABLE patrol_events ALTER COLUMN id SET DEFAULT "
        "nextval(pg_get_serial_sequence('incident_transitions', 'id'))"
    )


def downgrade() -> None:
    op.execute("DROP VIEW patrol_staleness")
    for table in (
        "patrol_cells",
        "patrol_events",
        "patrol_off_post",
        "patrol_schedules",
        "patrol_pieces",
        "patrol_fixes",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION patrol_fixes_partitions()")
    op.execute("DROP FUNCTION patrol_fixes_ensure_partition(date)")
