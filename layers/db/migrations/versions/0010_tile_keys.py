"""tile keys: tile_key(geometry) and its index on the point tables (incidents, sensors), so a
tile counts and clusters its points from one range of an index

The SQL is frozen here as layers.db.tile_keys generated it when this revision was written
(zoom-24 Morton keys); a change to the tile keys is a new revision, not an edit of this one.

Revision ID: 0010_tile_keys
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_tile_keys"
down_revision: str | Sequence[str] | None = "0002"

KEYED_TABLES = ("incidents", "sensors")

POSTGIS_SCHEMA = (
    "SELECT quote_ident(n.nspname) FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis'"
)

# {postgis}: the quoted schema of PostGIS, named so the function works under any search_path
TILE_KEY_FUNCTION = """
CREATE OR REPLACE FUNCTION tile_key(g geometry) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x bigint := floor(({postgis}.ST_X(g) + 20037508.342789244) / 40075016.68557849 * 16777216);
    y bigint := floor((20037508.342789244 - {postgis}.ST_Y(g)) / 40075016.68557849 * 16777216);
BEGIN
    IF NOT (x BETWEEN 0 AND 16777215 AND y BETWEEN 0 AND 16777215) THEN
        RETURN NULL;
    END IF;
    x := (x | (x << 16)) & 281470681808895;
    x := (x | (x << 8)) & 71777214294589695;
    x := (x | (x << 4)) & 1085102592571150095;
    x := (x | (x << 2)) & 3689348814741910323;
    x := (x | (x << 1)) & 6148914691236517205;
    y := (y | (y << 16)) & 281470681808895;
    y := (y | (y << 8)) & 71777214294589695;
    y := (y | (y << 4)) & 1085102592571150095;
    y := (y | (y << 2)) & 3689348814741910323;
    y := (y | (y << 1)) & 6148914691236517205;
    RETURN x | (y << 1);
END $$;
"""

TILE_KEY_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_{table}_tile_key ON {table} "
    "(tile_key(geom_3857)) INCLUDE (geom_3857)"
)


def upgrade() -> None:
    schema = op.get_bind().execute(sa.text(POSTGIS_SCHEMA)).scalar_one()
    op.execute(TILE_KEY_FUNCTION.format(postgis=schema))
    for table in KEYED_TABLES:
        op.execute(TILE_KEY_INDEX.format(table=table))


def downgrade() -> None:
    # CASCADE: the tile-key indexes of imported layers go with the function
    op.execute("DROP FUNCTION IF EXISTS tile_key(geometry) CASCADE")
