"""grid responsibility: per-district category departments, supervisor areas in the history

A cell's supervisor area (``grid_cells.supervisor``) is the 6-digit code of a district or
the hex string of a coarser H3 cell that contains it; the district's users with the role
'supervisor' supervise it. Each incident category has a department
(``incident_categories.department_id``); ``category_departments`` overrides it per district.
The assignment history now records supervisor area changes as well as inspector changes.

Revision ID: 0005_grid
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_grid"
down_revision: str | Sequence[str] | None = "0002"


def upgrade() -> None:
    op.create_table(
        "category_departments",
        sa.Column("category_code", sa.String(length=4), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["category_code"], ["incident_categories.code"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["district_id"], ["districts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("category_code", "district_id"),
    )
    op.add_column("grid_assignments", sa.Column("from_supervisor", sa.Text(), nullable=True))
    op.add_column("grid_assignments", sa.Column("to_supervisor", sa.Text(), nullable=True))
    op.create_index("ix_grid_cells_supervisor", "grid_cells", ["supervisor"])
    op.create_index("ix_users_district_role", "users", ["district_id", "role"])


def downgrade() -> None:
    op.drop_index("ix_users_district_role", table_name="users")
    op.drop_index("ix_grid_cells_supervisor", table_name="grid_cells")
    op.drop_column("grid_assignments", "to_supervisor")
    op.drop_column("grid_assignments", "from_supervisor")
    op.drop_table("category_departments")
