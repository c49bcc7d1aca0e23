"""tile keys: tile_key(geometry) and its index on the point and asset tables, so a tile
counts and clusters its features from one range of an index

Revision ID: 0010_tile_keys
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

from layers.tile_keys import TILE_KEY_FUNCTION, create_index_sql, index_name

revision: str = "0010_tile_keys"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED_TABLES = {"assets": False, "incidents": True, "sensors": True}
"""The tables that get a tile-key index, and whether their rows are points."""


def upgrade() -> None:
    op.execute(TILE_KEY_FUNCTION)
    for table, points in KEYED_TABLES.items():
        op.execute(create_index_sql(table, "geom_3857", points))


def downgrade() -> None:
    for table in KEYED_TABLES:
        op.execute(f"DROP INDEX IF EXISTS {index_name(table)}")
    op.execute("DROP FUNCTION IF EXISTS tile_key(geometry)")
