"""The cases by status, then tile key: a B-tree on ``(status, tile_key(geom_3857))`` carrying
the point, so an incident tile filtered by status alone (the web app's open and closed
sources) reads one key range per passing status from the index, not every case of the tile
from the table (tiles.clusters.value_ranges).

``IF NOT EXISTS``: a large city may have had the index made by hand before migrating.

Revision ID: 0029_status_tile_key
Revises: 0028_status_counts
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0029_status_tile_key"
down_revision: str | Sequence[str] | None = "0028_status_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The index."""
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_incidents_status_tile_key ON incidents "
        "(status, tile_key(geom_3857)) INCLUDE (geom_3857)"
    )


def downgrade() -> None:
    """Drop the index."""
    op.execute("DROP INDEX IF EXISTS ix_incidents_status_tile_key")
