"""The metadata schema as SQLAlchemy Core tables; Alembic migrations create exactly these.

Times are unix seconds (float) on every backend, the unit the API speaks.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

ID = String(64)

accounts = Table(
    "accounts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

project_grants = Table(
    "project_grants",
    metadata,
    Column("account_id", ID, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("public_key", String(128), primary_key=True),
    Column("account_id", ID, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("private_key_encrypted", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False),
    # NULL: the key must name ProjectId in every call.
    Column("default_project_id", ID, ForeignKey("projects.id", ondelete="SET NULL")),
    Column("description", String(512), nullable=False),
    Column("created_at", Float, nullable=False),
)

pgsql_instances = Table(
    "pgsql_instances",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False, index=True),
    Column("region", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("state", String(32), nullable=False),
    Column("source_type", String(16), nullable=False),
    # Non-secret source settings as JSON; DSN and SSH key live only in source_secrets, encrypted.
    Column("source_settings", Text, nullable=False),
    Column("source_secrets", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

mongodb_clusters = Table(
    "mongodb_clusters",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False, index=True),
    Column("region", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

mongodb_nodes = Table(
    "mongodb_nodes",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "cluster_id",
        ID,
        ForeignKey("mongodb_clusters.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("role", String(16), nullable=False),
    Column("source_type", String(16), nullable=False),
    Column("source_settings", Text, nullable=False),
    Column("source_secrets", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# A package row is its job (DESIGN §2): the spec, the state machine and the worker's lease.
packages = Table(
    "packages",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # model.ResourceKind
    Column("resource_id", ID, nullable=False),
    Column("node_id", ID),
    Column("role", String(16)),
    Column("name", String(64), nullable=False),
    Column("log_type", String(16), nullable=False),  # model.LogKind
    Column("begin_ts", Float),
    Column("end_ts", Float),
    Column("min_duration_ms", Float),
    Column("files", Text),  # JSON list of names chosen by the caller; NULL: all files
    Column("state", String(32), nullable=False),  # model.PackageState
    Column("progress", Integer, nullable=False, server_default=text("0")),
    Column("message", Text, nullable=False, server_default=text("''")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Float),
    Column("size", BigInteger),  # packages can exceed 2 GiB
    Column("entry_count", BigInteger),
    Column("checksum", String(128)),
    Column("store_key", String(1024)),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("expires_at", Float),
    # Completed builds of this package (exactly one when no worker duplicated work).
    Column("builds", Integer, nullable=False, server_default=text("0")),
)

LIVE_PACKAGE = "state != 'Package_Deleted'"

Index(
    "packages_live_name",
    packages.c.resource_id,
    packages.c.name,
    unique=True,
    sqlite_where=text(LIVE_PACKAGE),
    postgresql_where=text(LIVE_PACKAGE),
)
Index("packages_claim", packages.c.state, packages.c.lease_expires_at)
Index("packages_project", packages.c.project_id, packages.c.kind, packages.c.resource_id)
Index("packages_node", packages.c.resource_id, packages.c.node_id, packages.c.state)

# summary.json of a finished package, recorded with its success: the console reads it here
# instead of streaming the whole package through (it follows the logs, seconds for a big one).
# A table of its own, so listing packages never reads these documents.
package_summaries = Table(
    "package_summaries",
    metadata,
    Column("package_id", ID, ForeignKey("packages.id"), primary_key=True),
    Column("document", Text, nullable=False),  # summary.json as the package holds it
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("request_uuid", String(64), nullable=False),
    Column("public_key", String(128)),
    Column("action", String(128), nullable=False),
    Column("resource_id", String(128)),
    Column("ret_code", Integer, nullable=False),
    Column("remote_addr", String(64)),
)
