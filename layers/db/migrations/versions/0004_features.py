"""features: safe casts for free-form properties in filters, one history row per version

CQL2 filters read a layer's free-form jsonb properties as numbers or times; a stored value
that does not fit must compare as NULL, not abort the query, so filters call these two
functions. Feature history gets a unique (layer, feature_id, version) so two writers can
never both record the same version.

Revision ID: 0004_features
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_features"
down_revision: str | Sequence[str] | None = "0002"

SAFE_CASTS = r"""
CREATE FUNCTION cityhex_try_numeric(value text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN value ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'
    THEN value::numeric
END;

CREATE FUNCTION cityhex_try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF value IS NULL OR value !~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(SAFE_CASTS)
    op.create_index(
        "ux_feature_history_version",
        "feature_history",
        ["layer", "feature_id", "version"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_feature_history_version", table_name="feature_history")
    op.execute("DROP FUNCTION cityhex_try_timestamptz(text)")
    op.execute("DROP FUNCTION cityhex_try_numeric(text)")
