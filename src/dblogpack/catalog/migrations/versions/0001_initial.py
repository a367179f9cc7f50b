"""Initial schema: accounts, projects, keys, registered resources, packages (jobs), audit.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(64)
LIVE_PACKAGE = "state != 'Package_Deleted'"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "project_grants",
        sa.Column(
            "account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_table(
        "access_keys",
        sa.Column("public_key", sa.String(128), primary_key=True),
        sa.Column(
            "account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("private_key_encrypted", sa.Text, nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("default_project_id", ID, sa.ForeignKey("projects.id", ondelete="SET NULL")),
        sa.Column("description", sa.String(512), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    _create_resources()
    _create_packages()
    _create_audit()


def _create_resources() -> None:
    op.create_table(
        "pgsql_instances",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source_settings", sa.Text, nullable=False),
        sa.Column("source_secrets", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "mongodb_clusters",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "mongodb_nodes",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "cluster_id",
            ID,
            sa.ForeignKey("mongodb_clusters.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source_settings", sa.Text, nullable=False),
        sa.Column("source_secrets", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def _create_packages() -> None:
    op.create_table(
        "packages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", ID, nullable=False),
        sa.Column("node_id", ID),
        sa.Column("role", sa.String(16)),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("log_type", sa.String(16), nullable=False),
        sa.Column("begin_ts", sa.Float),
        sa.Column("end_ts", sa.Float),
        sa.Column("min_duration_ms", sa.Float),
        sa.Column("files", sa.Text),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("message", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("size", sa.Integer),
        sa.Column("entry_count", sa.Integer),
        sa.Column("checksum", sa.String(128)),
        sa.Column("store_key", sa.String(1024)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index(
        "packages_live_name",
        "packages",
        ["resource_id", "name"],
        unique=True,
        sqlite_where=sa.text(LIVE_PACKAGE),
        postgresql_where=sa.text(LIVE_PACKAGE),
    )
    op.create_index("packages_claim", "packages", ["state", "lease_expires_at"])
    op.create_index("packages_project", "packages", ["project_id", "kind", "resource_id"])


def _create_audit() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("request_uuid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(128)),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_id", sa.String(128)),
        sa.Column("ret_code", sa.Integer, nullable=False),
        sa.Column("remote_addr", sa.String(64)),
    )


def downgrade() -> None:
    for table in (
        "audit_records",
        "packages",
        "mongodb_nodes",
        "mongodb_clusters",
        "pgsql_instances",
        "access_keys",
        "project_grants",
        "projects",
        "accounts",
    ):
        op.drop_table(table)
