"""Jobs: 64-bit package sizes and entry counts, a build counter, an index for per-node claims.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Packages can exceed 2 GiB; on SQLite every INTEGER is 64-bit already and the batch copy
    # keeps the table's indexes (the partial unique name index among them).
    with op.batch_alter_table("packages") as batch:
        batch.alter_column("size", existing_type=sa.Integer, type_=sa.BigInteger)
        batch.alter_column("entry_count", existing_type=sa.Integer, type_=sa.BigInteger)
        batch.add_column(
            sa.Column("builds", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
    op.create_index("packages_node", "packages", ["resource_id", "node_id", "state"])


def downgrade() -> None:
    op.drop_index("packages_node", table_name="packages")
    with op.batch_alter_table("packages") as batch:
        batch.drop_column("builds")
        batch.alter_column("entry_count", existing_type=sa.BigInteger, type_=sa.Integer)
        batch.alter_column("size", existing_type=sa.BigInteger, type_=sa.Integer)
