"""key scopes: the districts, departments and layers an API key is limited to

Three nullable text arrays on api_keys: NULL limits nothing (every existing key keeps what
its role allows), an array limits the key to the districts (6-digit codes), departments
(codes) or layers (ids) it names.

Revision ID: 0012_key_scopes
Revises: 0011_one_chain
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_key_scopes"
down_revision: str | Sequence[str] | None = "0011_one_chain"

SCOPES = ("districts", "departments", "layers")


def upgrade() -> None:
    """Add the scope columns."""
    for name in SCOPES:
        op.add_column("api_keys", sa.Column(name, postgresql.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    """Drop the scope columns (every key is unscoped again)."""
    for name in SCOPES:
        op.drop_column("api_keys", name)
