"""incidents: working-day calendar, extension requests, duplicate reports, workflow checks

``work_calendar`` holds the days that break the Monday-to-Friday rule (holidays and make-up
working days). ``incident_extensions`` records every request for more time and its outcome,
at most one pending per case. ``incident_duplicates`` keeps reports attached to an existing
case instead of opening a new one. Transitions get structured details (the department a
case went to, the hours asked for); the status is checked against the workflow's states;
and indexes serve duplicate search, deadline sorting and the metrics' period filters.

Revision ID: 0006_incidents
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_incidents"
down_revision: str | Sequence[str] | None = "0002"

STATES = (
    "reported",
    "registered",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "closed",
    "cancelled",
    "parked",
)

UPGRADE = f"""
CREATE TABLE work_calendar (
    day date PRIMARY KEY,
    working boolean NOT NULL,
    name text
);

CREATE TABLE incident_extensions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    hours numeric(6, 2) NOT NULL CHECK (hours > 0),
    reason text,
    status varchar(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    requested_by text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_by text,
    decided_at timestamptz,
    deadline_before timestamptz,
    deadline_after timestamptz
);
CREATE INDEX ix_incident_extensions_incident ON incident_extensions (incident_id);
CREATE UNIQUE INDEX ux_incident_extensions_pending ON incident_extensions (incident_id)
    WHERE status = 'pending';

CREATE TABLE incident_duplicates (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    source varchar(16) NOT NULL,
    reporter text,
    description text,
    asset_code varchar(16),
    photos jsonb NOT NULL DEFAULT '[]'::jsonb,
    reported_at timestamptz NOT NULL DEFAULT now(),
    geom geometry(Point, 4326) NOT NULL
);
CREATE INDEX ix_incident_duplicates_incident ON incident_duplicates (incident_id);

ALTER TABLE incident_transitions ADD COLUMN details jsonb;
ALTER TABLE incidents ADD CONSTRAINT incidents_status_check CHECK (status IN {STATES});

CREATE INDEX ix_incidents_asset_code ON incidents (asset_code) WHERE asset_code IS NOT NULL;
CREATE INDEX ix_incidents_deadline ON incidents (deadline);
CREATE INDEX ix_incidents_registered_at ON incidents (registered_at);
CREATE INDEX ix_incidents_closed_at ON incidents (closed_at);
CREATE INDEX ix_incident_transitions_action_at ON incident_transitions (action, at);
"""

DOWNGRADE = """
DROP INDEX ix_incident_transitions_action_at;
DROP INDEX ix_incidents_closed_at;
DROP INDEX ix_incidents_registered_at;
DROP INDEX ix_incidents_deadline;
DROP INDEX ix_incidents_asset_code;
ALTER TABLE incidents DROP CONSTRAINT incidents_status_check;
ALTER TABLE incident_transitions DROP COLUMN details;
DROP TABLE incident_duplicates;
DROP TABLE incident_extensions;
DROP TABLE work_calendar;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
