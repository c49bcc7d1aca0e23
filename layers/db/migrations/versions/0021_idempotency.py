"""idempotency: the first answer to each ``Idempotency-Key`` a caller sent, kept until it
expires, so a retried POST (an offline outbox replaying) is answered again instead of run
again

A row is claimed (``response_status`` NULL) before the request runs and filled with the
answer after it; the primary key (caller, key) makes the claim the one place where two
concurrent retries meet.

Revision ID: 0021_idempotency
Revises: 0018_attachments
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021_idempotency"
down_revision: str | Sequence[str] | None = "0018_attachments"


def upgrade() -> None:
    """The table of idempotency keys."""
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            caller text NOT NULL,
            key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
            fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            response_status smallint,
            response_headers jsonb,
            response_body bytea,
            PRIMARY KEY (caller, key)
        );
        CREATE INDEX ix_idempotency_keys_expires_at ON idempotency_keys (expires_at);
        COMMENT ON TABLE idempotency_keys IS
            'The first answer to each Idempotency-Key per caller (see layers.db.idempotency)';
        """
    )


def downgrade() -> None:
    """Drop the table."""
    op.execute("DROP TABLE idempotency_keys")
