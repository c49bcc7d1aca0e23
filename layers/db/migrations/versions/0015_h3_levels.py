"""h3 levels: the cell containing each point at every analysis resolution (5–11)

Counts per cell used to roll the stored res-10 cell up with ``h3_parent``; H3 children do
not tile their parent, so a point near an edge was counted in the neighbour. Assets,
incidents and sensors now store the cell of their point (a line's or polygon's point on
surface) at resolutions 5, 6, 7, 8, 9 and 11 in ``h3_<res>``, next to ``h3`` (res 10),
computed by the application with the h3 package on every write. This revision adds the
columns and fills them for the rows already there.

Revision ID: 0015_h3_levels
Revises: 0013_audit
"""

from collections.abc import Sequence

from alembic import op

from gis.hexgrid import level_columns
from layers.db.cell_levels import fill_cell_levels

revision: str = "0015_h3_levels"
down_revision: str | Sequence[str] | None = "0013_audit"

TABLES = ("assets", "incidents", "sensors")


def upgrade() -> None:
    """Add ``h3_5`` … ``h3_9`` and ``h3_11`` to the point-carrying tables and fill them."""
    for table in TABLES:
        adds = ", ".join(f"ADD COLUMN {c} bigint" for c in level_columns().values())
        op.execute(f"ALTER TABLE {table} {adds}")
        fill_cell_levels(op.get_bind().connection.driver_connection, table)


def downgrade() -> None:
    """Drop the level columns."""
    for table in TABLES:
        drops = ", ".join(f"DROP COLUMN {c}" for c in level_columns().values())
        op.execute(f"ALTER TABLE {table} {drops}")
