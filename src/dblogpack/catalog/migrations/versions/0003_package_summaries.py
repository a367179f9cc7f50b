"""Package summaries: summary.json of each finished package, kept beside its row.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Packages finished before this revision have no row here: their summary is read from the
    # package file, as before.
    op.create_table(
        "package_summaries",
        sa.Column("package_id", sa.String(64), sa.ForeignKey("packages.id"), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("package_summaries")
