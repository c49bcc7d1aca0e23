"""rate buckets: the anonymous-report rate limit's token buckets, kept in the database so
one limit holds across every worker and server

One row per (limit, client): the tokens left at ``at``. A take is one UPSERT on the row
(``layers.db.rate_limits``); a bucket that has refilled is the same as no row, so old rows
are pruned as takes come. UNLOGGED: the counts are worth nothing after a crash (the buckets
start full again), and no WAL is written for them; standbys never read them.

Revision ID: 0022_rate_buckets
Revises: 0021_idempotency
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_rate_buckets"
down_revision: str | Sequence[str] | None = "0021_idempotency"


def upgrade() -> None:
    """The table of token buckets."""
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_buckets (
            name text NOT NULL,
            client text NOT NULL,
            tokens double precision NOT NULL,
            at timestamptz NOT NULL,
            PRIMARY KEY (name, client)
        );
        CREATE INDEX ix_rate_buckets_at ON rate_buckets (name, at);
        COMMENT ON TABLE rate_buckets IS
            'Token buckets of the rate limits, shared by every process (layers.db.rate_limits)';
        """
    )


def downgrade() -> None:
    """Drop the table."""
    op.execute("DROP TABLE rate_buckets")
