"""Case metrics from the cases alone: each case's resolve and rework steps summed up on it,
and covering indexes for the metrics' time ranges.

``/incidents/metrics`` counts a case as resolved (reworked) in a period when one of its
``resolve`` (``rework``) transitions falls in it. The case now carries, for each of the two
actions, the time of its first and last such step and how many there are
(``resolve_first_at``, ``resolve_last_at``, ``resolve_n``, ``rework_*`` likewise): "one in
[f, t)" is then "the first or the last in [f, t)", and only a case with three or more steps
spanning the period has to look at its transitions. Statement-level triggers on
``incident_transitions`` keep the columns equal to the transitions after every INSERT (COPY
included), UPDATE and DELETE, whatever writes them.

The time indexes of the cases (reported, registered, deadline, closed) and new ones on the
step times carry the grouping columns (category, department, district, inspector) and the
columns each count reads, so a year's metrics are index-only scans of those ranges, without
reading the 2 GB table or the transitions.

Revision ID: 0025_metrics_fast
Revises: 0024_cluster_levels
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025_metrics_fast"
down_revision: str | Sequence[str] | None = "0024_cluster_levels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = ("resolve", "rework")
KEYS = "category_code, department_id, district_id, inspector_id"
"""The grouping and scope columns every metrics index carries."""


def summary(cases: str) -> str:
    """SQL setting the step columns of the cases whose ids ``cases`` (a query) yields."""
    columns = [f"{a}_{c}" for a in ACTIONS for c in ("first_at", "last_at", "n")]
    aggregates = ", ".join(
        f"min(t.at) FILTER (WHERE t.action = '{a}'), max(t.at) FILTER (WHERE t.action = '{a}'),"
        f" count(t.id) FILTER (WHERE t.action = '{a}')"
        for a in ACTIONS
    )
    return f"""
        UPDATE incidents i SET ({", ".join(columns)}) = ({", ".join("s." + c for c in columns)})
        FROM (SELECT c.id, {aggregates}
              FROM (SELECT DISTINCT id FROM ({cases}) AS q(id)) c
              LEFT JOIN incident_transitions t
                ON t.incident_id = c.id AND t.action IN ('resolve', 'rework')
              GROUP BY c.id) AS s(id, {", ".join(columns)})
        WHERE i.id = s.id
          AND ({", ".join("i." + c for c in columns)}) IS DISTINCT FROM
              ({", ".join("s." + c for c in columns)});"""


STEPS = "SELECT incident_id FROM {rows} WHERE action IN ('resolve', 'rework')"

FUNCTION = f"""
CREATE FUNCTION incident_steps_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        {summary(STEPS.format(rows="old_rows") + " UNION " + STEPS.format(rows="new_rows"))}
    ELSIF TG_OP = 'DELETE' THEN
        {summary(STEPS.format(rows="old_rows"))}
    ELSE
        {summary(STEPS.format(rows="new_rows"))}
    END IF;
    RETURN NULL;
END $$;
"""

INDEXES = {
    "ix_incidents_reported_at": f"(reported_at) INCLUDE ({KEYS})",
    "ix_incidents_registered_at": f"(registered_at) INCLUDE ({KEYS})",
    "ix_incidents_deadline": f"(deadline) INCLUDE ({KEYS}, registered_at, status, resolved_at,"
    " closed_at)",
    "ix_incidents_closed_at": f"(closed_at) INCLUDE ({KEYS}, reported_at)",
}
"""The cases' time indexes, now covering what the metrics read of each range."""

STEP_INCLUDE = f"{KEYS}, id, rework_first_at, rework_last_at, rework_n"
NEW_INDEXES = {
    "ix_incidents_resolve_first_at": f"(resolve_first_at) INCLUDE ({STEP_INCLUDE})"
    " WHERE resolve_first_at IS NOT NULL",
    "ix_incidents_resolve_last_at": f"(resolve_last_at) INCLUDE ({STEP_INCLUDE},"
    " resolve_first_at, resolve_n) WHERE resolve_n >= 2",
    "ix_incidents_rework_first_at": f"(rework_first_at) INCLUDE ({KEYS}, resolve_first_at)"
    " WHERE rework_first_at IS NOT NULL",
    "ix_incidents_rework_last_at": f"(rework_last_at) INCLUDE ({KEYS}, id, rework_first_at,"
    " rework_n) WHERE rework_n >= 2",
}
"""Indexes of the step times (only the cases that have such steps)."""


def upgrade() -> None:
    """The columns, filled from the transitions, their triggers, and the indexes."""
    op.execute(
        "ALTER TABLE incidents "
        + ", ".join(
            f"ADD COLUMN {a}_first_at timestamptz, ADD COLUMN {a}_last_at timestamptz,"
            f" ADD COLUMN {a}_n integer NOT NULL DEFAULT 0"
            for a in ACTIONS
        )
    )
    op.execute(summary(STEPS.format(rows="incident_transitions")))
    op.execute(FUNCTION)
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER incident_steps_{event.lower()} AFTER {event} ON incident_transitions"
            f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION incident_steps_apply()"
        )
    for name, definition in INDEXES.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON incidents {definition}")
    for name, definition in NEW_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON incidents {definition}")


def downgrade() -> None:
    """The plain time indexes again; drop the triggers, the function and the columns."""
    for name in NEW_INDEXES:
        op.execute(f"DROP INDEX {name}")
    for name, definition in INDEXES.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON incidents ({definition[1 : definition.index(')')]})")
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incident_steps_{event} ON incident_transitions")
    op.execute("DROP FUNCTION incident_steps_apply()")
    op.execute(
        "ALTER TABLE incidents "
        + ", ".join(f"DROP COLUMN {a}_{c}" for a in ACTIONS for c in ("first_at", "last_at", "n"))
    )
