"""Case counts per day, category, department and district, kept on write, for the metrics of
periods of whole days.

``incident_day_counts`` holds, per day (in Asia/Shanghai) and case group (category,
department, district as the case stands now), how many cases were reported, registered and
have their deadline that day, and of the latter how many are due (registered, neither
cancelled nor parked), closed by the deadline, and handled by the deadline (resolved,
verified or closed, last resolution by the deadline), and how many were first resolved that
day (``resolve_first_at``, migration 0025). For a period of whole days these
counts are sums of days (a case closed or resolved by a deadline in the period is so before
the period ends); only the cases closed after their deadline are read one by one (a partial
index). Statement-level triggers keep the table equal to a GROUP BY over ``incidents`` after
every INSERT (COPY included), DELETE and UPDATE that changes what it counts (a row emptied
keeps its zeros).

Revision ID: 0027_metrics_days
Revises: 0026_cell_counts
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027_metrics_days"
down_revision: str | Sequence[str] | None = "0026_cell_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZONE = "Asia/Shanghai"
"""The time zone the days are cut in (layers.incidents.metrics.DAY_ZONE)."""
KEYS = ("category_code", "department_id", "district_id")
COUNTS = ("reported", "registered", "deadlines", "due", "closed_on_time", "handled_on_time",
          "first_resolved")  # fmt: skip
READ = ("reported_at", "registered_at", "deadline", "status", "closed_at", "resolved_at",
        "resolve_first_at", *KEYS)  # fmt: skip
"""The case columns the counts depend on: an UPDATE changing none of them changes nothing."""


def day(column: str) -> str:
    """SQL: the day of case r's ``column`` in ZONE."""
    return f"(r.{column} AT TIME ZONE '{ZONE}')::date"


DUE = "(r.registered_at IS NOT NULL AND r.status NOT IN ('cancelled', 'parked'))"


def adding(*parts: tuple[str, str]) -> str:
    """One SQL statement adding (sign '+') or removing ('-') the cases of each (rows, sign)
    part (alias r); it locks the count rows in key order, so concurrent writers queue
    instead of deadlocking."""
    flag = "coalesce({}, false)::int"
    on_time = flag.format(f"{DUE} AND r.closed_at <= r.deadline")
    handled = flag.format(
        f"{DUE} AND r.status IN ('resolved', 'verified', 'closed') AND r.resolved_at <= r.deadline"
    )
    keys = ", ".join(KEYS)
    rows = " UNION ALL ".join(
        f"""SELECT d.day, {", ".join("r." + k for k in KEYS)},
               {", ".join(f"{sign}d.{c} AS {c}" for c in COUNTS)}
        FROM {source} AS r CROSS JOIN LATERAL (VALUES
            ({day("reported_at")}, 1, 0, 0, 0, 0, 0, 0),
            ({day("registered_at")}, 0, 1, 0, 0, 0, 0, 0),
            ({day("deadline")}, 0, 0, 1, {flag.format(DUE)}, {on_time}, {handled}, 0),
            ({day("resolve_first_at")}, 0, 0, 0, 0, 0, 0, 1)
        ) AS d(day, {", ".join(COUNTS)})
        WHERE d.day IS NOT NULL"""
        for source, sign in parts
    )
    return f"""
        INSERT INTO incident_day_counts AS c (day, {keys}, {", ".join(COUNTS)})
        SELECT day, {keys}, {", ".join(f"sum({c})" for c in COUNTS)}
        FROM ({rows}) AS x GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (day, {keys}) DO UPDATE
        SET {", ".join(f"{c} = c.{c} + EXCLUDED.{c}" for c in COUNTS)};"""


CHANGED = f"""(SELECT {{side}}.* FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE ({", ".join("o." + c for c in READ)}) IS DISTINCT FROM
              ({", ".join("n." + c for c in READ)}))"""
"""The cases an UPDATE changed in what the table counts, as they were (o) or are (n)."""

FUNCTION = f"""
CREATE FUNCTION incident_day_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        {adding((CHANGED.format(side="o"), "-"), (CHANGED.format(side="n"), ""))}
    ELSIF TG_OP = 'DELETE' THEN
        {adding(("old_rows", "-"))}
    ELSE
        {adding(("new_rows", ""))}
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    """The table, filled from the cases, its triggers, and the index of late closings."""
    op.execute(
        "CREATE TABLE incident_day_counts (day date NOT NULL,"
        " category_code varchar(4) NOT NULL, department_id integer, district_id integer, "
        + ", ".join(f"{c} bigint NOT NULL" for c in COUNTS)
        + f", UNIQUE NULLS NOT DISTINCT (day, {', '.join(KEYS)}))"
    )
    op.execute(adding(("incidents", "")))
    op.execute(FUNCTION)
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER incident_day_counts_{event.lower()} AFTER {event} ON incidents"
            f" REFERENCING {tables} FOR EACH STATEMENT"
            " EXECUTE FUNCTION incident_day_counts_apply()"
        )
    op.execute(
        "CREATE INDEX ix_incidents_closed_late ON incidents (deadline)"
        " INCLUDE (category_code, department_id, district_id, inspector_id, registered_at,"
        " status, closed_at) WHERE closed_at > deadline"
    )


def downgrade() -> None:
    """Drop the index, the triggers, the function and the table."""
    op.execute("DROP INDEX ix_incidents_closed_late")
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incident_day_counts_{event} ON incidents")
    op.execute("DROP FUNCTION incident_day_counts_apply()")
    op.execute("DROP TABLE incident_day_counts")
