"""analytics: hotspot_cells, the Gi* hotspot classes of a layer as a tile-ready polygon layer

Revision ID: 0009_analytics
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_analytics"
down_revision: str | Sequence[str] | None = "0002"

HOTSPOT_CELLS = """
CREATE TABLE hotspot_cells (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer varchar(64) NOT NULL,
    h3 bigint NOT NULL,
    cell varchar(16) NOT NULL,
    res smallint NOT NULL,
    k smallint NOT NULL,
    count integer NOT NULL,
    z double precision NOT NULL,
    p double precision NOT NULL,
    gi_bin smallint NOT NULL CHECK (gi_bin BETWEEN -3 AND 3),
    hotspot varchar(16) NOT NULL,
    fdr boolean NOT NULL,
    period_from timestamptz,
    period_to timestamptz,
    category text,
    computed_at timestamptz NOT NULL DEFAULT now(),
    geom geometry(Polygon, 4326) NOT NULL,
    geom_3857 geometry(Polygon, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED,
    UNIQUE (layer, h3)
);
CREATE INDEX ix_hotspot_cells_geom ON hotspot_cells USING gist (geom);
CREATE INDEX ix_hotspot_cells_geom_3857 ON hotspot_cells USING gist (geom_3857);
COMMENT ON TABLE hotspot_cells IS
    'Significant Getis-Ord Gi* cells of a layer (gi_bin -3..3 = cold/hot at 99/95/90 %), '
    'replaced per layer by layers.analytics.hotspots.refresh_hotspot_cells';
"""


def upgrade() -> None:
    op.execute(HOTSPOT_CELLS)


def downgrade() -> None:
    op.execute("DROP TABLE hotspot_cells")
