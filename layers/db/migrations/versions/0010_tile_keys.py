"""tile keys: tile_key(geometry) and its index on the point tables (incidents, sensors), so a
tile counts and clusters its points from one range of an index

Revision ID: 0010_tile_keys
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from layers.db.tile_keys import POSTGIS_SCHEMA_SQL, create_index_sql, tile_key_function_sql

revision: str = "0010_tile_keys"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED_TABLES = ("incidents", "sensors")


def upgrade() -> None:
    schema = op.get_bind().execute(sa.text(POSTGIS_SCHEMA_SQL)).scalar_one()
    op.execute(tile_key_function_sql(schema))
    for table in KEYED_TABLES:
        op.execute(create_index_sql(table, "geom_3857"))


def downgrade() -> None:
    # CASCADE: the tile-key indexes of imported layers go with the function
    op.execute("DROP FUNCTION IF EXISTS tile_key(geometry) CASCADE")
