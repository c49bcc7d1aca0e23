"""attachments: photos and documents of cases and of features, content-addressed on disk

Each row is one attachment of one case (at a workflow stage, optionally of one recorded
transition) or of one feature of a catalog layer. The file itself lives under
``CITYHEX_HOME/attachments`` named by the SHA-256 of its stored bytes (``layers.attachments``),
so rows share identical files. The capture time and the position read from the photo's EXIF
are columns here, never left inside the stored file.

Revision ID: 0018_attachments
Revises: 0017_patrol
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_attachments"
down_revision: str | Sequence[str] | None = "0017_patrol"

UPGRADE = """
CREATE TABLE attachments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint REFERENCES incidents (id) ON DELETE CASCADE,
    layer text,
    feature_id text,
    stage varchar(16) CHECK (stage IN ('report', 'before', 'after', 'verification')),
    transition_id bigint REFERENCES incident_transitions (id) ON DELETE SET NULL,
    sha256 char(64) NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    media_type text NOT NULL
        CHECK (media_type IN ('image/jpeg', 'image/png', 'image/webp', 'application/pdf')),
    bytes bigint NOT NULL CHECK (bytes > 0),
    width integer,
    height integer,
    has_thumbnail boolean NOT NULL,
    taken_at timestamptz,
    geom geometry(Point, 4326),
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT attachments_one_owner CHECK (
        (incident_id IS NOT NULL AND layer IS NULL AND feature_id IS NULL AND stage IS NOT NULL)
        OR (incident_id IS NULL AND layer IS NOT NULL AND feature_id IS NOT NULL
            AND stage IS NULL AND transition_id IS NULL)
    )
);
CREATE INDEX ix_attachments_incident ON attachments (incident_id, id) WHERE incident_id IS NOT NULL;
CREATE INDEX ix_attachments_feature ON attachments (layer, feature_id, id) WHERE layer IS NOT NULL;
CREATE INDEX ix_attachments_sha256 ON attachments (sha256);
COMMENT ON TABLE attachments IS
    'Photos and documents of cases and features; the file is CITYHEX_HOME/attachments/'
    '<first 2 hex digits>/<sha256> (layers.attachments), shared by rows with the same bytes';
COMMENT ON COLUMN attachments.geom IS
    'Where the photo was taken (its EXIF GPS, removed from the stored file): staff only';
"""

DOWNGRADE = "DROP TABLE attachments;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
