"""one chain: joins the six revisions that branched from 0002 into one head, changing no schema

Databases stamped at those six heads move to this one; from here every revision has one parent.

Revision ID: 0011_one_chain
Revises: 0004_features, 0005_grid, 0006_incidents, 0007_sensors, 0009_analytics, 0010_tile_keys
"""

from collections.abc import Sequence

revision: str = "0011_one_chain"
down_revision: str | Sequence[str] | None = (
    "0004_features",
    "0005_grid",
    "0006_incidents",
    "0007_sensors",
    "0009_analytics",
    "0010_tile_keys",
)


def upgrade() -> None:
    """Nothing to change: a merge point."""


def downgrade() -> None:
    """Nothing to change: a merge point."""
