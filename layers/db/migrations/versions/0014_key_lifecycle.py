"""key lifecycle: keys that expire, their last use, and the secret that signs tokens

``api_keys`` gains ``expires_at`` (NULL: never), ``last_used_at`` (written at most once a
minute per key) and ``rotated_at`` (the last new secret). ``token_secret`` holds the one
random key (32 bytes, made here) that signs the short-lived tokens of ``POST /auth/token``:
every server process on the database reads the same one, so a token made by one is accepted
by all. Replacing the row invalidates every token made before.

Revision ID: 0014_key_lifecycle
Revises: 0013_audit
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_key_lifecycle"
down_revision: str | Sequence[str] | None = "0013_audit"

COLUMNS = ("expires_at", "last_used_at", "rotated_at")


def upgrade() -> None:
    """Add the lifecycle columns and make the token-signing secret."""
    for name in COLUMNS:
        op.add_column("api_keys", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "CREATE TABLE token_secret ("
        " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
        " secret bytea NOT NULL CHECK (octet_length(secret) >= 32),"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "COMMENT ON TABLE token_secret IS 'The HMAC key that signs the tokens of "
        "POST /auth/token (shared by every server process); replace it to void every token'"
    )
    op.execute(
        sa.text("INSERT INTO token_secret (secret) VALUES (:s)").bindparams(
            s=secrets.token_bytes(32)
        )
    )
    op.execute("REVOKE ALL ON token_secret FROM PUBLIC")


def downgrade() -> None:
    """Drop the secret (every token is void) and the lifecycle columns."""
    op.execute("DROP TABLE token_secret")
    for name in COLUMNS:
        op.drop_column("api_keys", name)
