"""Queries on registered resources: PostgreSQL instances, MongoDB clusters and their nodes.

Source settings are split at the boundary: plain settings as JSON, secrets (DSN, SSH key)
sealed by the SecretBox in their own column, so no listing can ever select them by mistake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, Table, delete, insert, select

from dblogpack.catalog.paging import page
from dblogpack.catalog.records import MongoCluster, MongoNode, PgsqlInstance
from dblogpack.catalog.tables import mongodb_clusters, mongodb_nodes, pgsql_instances
from dblogpack.model import FormatConfig, ResourceKind, SourceConfig, SourceType
from dblogpack.secretbox import SecretBox

AVAILABLE = "Available"


def seal_source(source: SourceConfig, box: SecretBox) -> tuple[str, str]:
    """(settings JSON, sealed secrets) columns for `source`."""
    settings = {
        "log_dir": source.log_dir,
        "log_pattern": source.log_pattern,
        "ssh_host": source.ssh_host,
        "ssh_port": source.ssh_port,
        "ssh_user": source.ssh_user,
        "ssh_known_host_key": source.ssh_known_host_key,
        "log_format": source.log_format.name,
        "log_line_prefix": source.log_format.log_line_prefix,
        "log_timezone": source.log_format.timezone,
    }
    secrets = {"dsn": source.dsn, "ssh_private_key": source.ssh_private_key}
    return json.dumps(settings), box.encrypt(json.dumps(secrets))


def open_source(source_type: str, settings_json: str, sealed: str, box: SecretBox) -> SourceConfig:
    """The SourceConfig `seal_source` stored, secrets decrypted."""
    settings: dict[str, Any] = json.loads(settings_json)
    secrets: dict[str, Any] = json.loads(box.decrypt(sealed))
    return SourceConfig(
        type=SourceType(source_type),
        dsn=secrets["dsn"],
        ssh_private_key=secrets["ssh_private_key"],
        log_dir=settings["log_dir"],
        log_pattern=settings["log_pattern"],
        ssh_host=settings["ssh_host"],
        ssh_port=settings["ssh_port"],
        ssh_user=settings["ssh_user"],
        ssh_known_host_key=settings["ssh_known_host_key"],
        log_format=FormatConfig(
            settings["log_format"], settings["log_line_prefix"], settings["log_timezone"]
        ),
    )


def _log_format(settings_json: str) -> str:
    return str(json.loads(settings_json)["log_format"])


def resource_id_taken(conn: Connection, resource_id: str) -> bool:
    """Whether any instance, cluster or node already uses `resource_id`."""
    for column in (pgsql_instances.c.id, mongodb_clusters.c.id, mongodb_nodes.c.id):
        if conn.execute(select(column).where(column == resource_id)).first() is not None:
            return True
    return False


def insert_pgsql_instance(
    conn: Connection,
    box: SecretBox,
    *,
    instance_id: str,
    project_id: str,
    region: str,
    zone: str,
    name: str,
    source: SourceConfig,
) -> None:
    settings_json, sealed = seal_source(source, box)
    conn.execute(
        insert(pgsql_instances).values(
            id=instance_id,
            project_id=project_id,
            region=region,
            zone=zone,
            name=name,
            state=AVAILABLE,
            source_type=source.type.value,
            source_settings=settings_json,
            source_secrets=sealed,
            created_at=time.time(),
        )
    )


def _pgsql_record(row: Row[Any]) -> PgsqlInstance:
    return PgsqlInstance(
        instance_id=row.id,
        project_id=row.project_id,
        region=row.region,
        zone=row.zone,
        name=row.name,
        state=row.state,
        source_type=row.source_type,
        log_format=_log_format(row.source_settings),
        created_at=row.created_at,
    )


def _scoped(table: Table, project_ids: Sequence[str],
            region: str | None, zone: str | None) -> Select[Any]:
    """The rows of `table` in the caller's projects, narrowed to a region and zone if given."""
    query = select(table).where(table.c.project_id.in_(project_ids))
    if region is not None:
        query = query.where(table.c.region == region)
    if zone is not None:
        query = query.where(table.c.zone == zone)
    return query


def _oldest_first(table: Table) -> tuple[ColumnElement[Any], ...]:
    return (table.c.created_at, table.c.id)


def _stored_source(
    conn: Connection, box: SecretBox, table: Table, row_id: str
) -> SourceConfig | None:
    row = conn.execute(select(table).where(table.c.id == row_id)).one_or_none()
    if row is None:
        return None
    return open_source(row.source_type, row.source_settings, row.source_secrets, box)


def visible_project(
    conn: Connection, kind: ResourceKind, resource_id: str, project_ids: Sequence[str],
    region: str | None = None, zone: str | None = None,
) -> str | None:
    """The project of an instance or cluster the caller may see, or None: one lookup, without
    the nodes or the source (what every package call asks first)."""
    table = pgsql_instances if kind is ResourceKind.PGSQL else mongodb_clusters
    query = _scoped(table, project_ids, region, zone).where(table.c.id == resource_id)
    row = conn.execute(query).one_or_none()
    return None if row is None else str(row.project_id)


def get_pgsql_instance(
    conn: Connection, instance_id: str, project_ids: Sequence[str],
    region: str | None = None, zone: str | None = None,
) -> PgsqlInstance | None:
    query = _scoped(pgsql_instances, project_ids, region, zone)
    row = conn.execute(query.where(pgsql_instances.c.id == instance_id)).one_or_none()
    return None if row is None else _pgsql_record(row)


def pgsql_source(conn: Connection, box: SecretBox, instance_id: str) -> SourceConfig | None:
    """The decrypted source of an instance, for the worker that reads its logs."""
    return _stored_source(conn, box, pgsql_instances, instance_id)


def list_pgsql_instances(
    conn: Connection, project_ids: Sequence[str], region: str | None, zone: str | None,
    offset: int, limit: int,
) -> tuple[list[PgsqlInstance], int]:
    query = _scoped(pgsql_instances, project_ids, region, zone)
    rows, total = page(conn, query, _oldest_first(pgsql_instances), offset, limit)
    return [_pgsql_record(r) for r in rows], total


def delete_pgsql_instance(conn: Connection, instance_id: str) -> None:
    conn.execute(delete(pgsql_instances).where(pgsql_instances.c.id == instance_id))


def insert_mongodb_cluster(
    conn: Connection, *, cluster_id: str, project_id: str, region: str, zone: str, name: str,
) -> None:
    conn.execute(
        insert(mongodb_clusters).values(
            id=cluster_id, project_id=project_id, region=region, zone=zone, name=name,
            created_at=time.time(),
        )
    )


def insert_mongodb_node(
    conn: Connection, box: SecretBox, *, node_id: str, cluster_id: str, role: str,
    source: SourceConfig,
) -> None:
    settings_json, sealed = seal_source(source, box)
    conn.execute(
        insert(mongodb_nodes).values(
            id=node_id, cluster_id=cluster_id, role=role, source_type=source.type.value,
            source_settings=settings_json, source_secrets=sealed, created_at=time.time(),
        )
    )


def _node_record(row: Row[Any]) -> MongoNode:
    return MongoNode(
        node_id=row.id,
        cluster_id=row.cluster_id,
        role=row.role,
        source_type=row.source_type,
        log_format=_log_format(row.source_settings),
        created_at=row.created_at,
    )


def _nodes_of(conn: Connection, cluster_ids: Sequence[str]) -> dict[str, list[MongoNode]]:
    found: dict[str, list[MongoNode]] = {c: [] for c in cluster_ids}
    query = select(mongodb_nodes).where(mongodb_nodes.c.cluster_id.in_(cluster_ids))
    for row in conn.execute(query.order_by(mongodb_nodes.c.created_at, mongodb_nodes.c.id)):
        found[row.cluster_id].append(_node_record(row))
    return found


def _cluster_record(row: Row[Any], nodes: Sequence[MongoNode]) -> MongoCluster:
    return MongoCluster(
        cluster_id=row.id, project_id=row.project_id, region=row.region, zone=row.zone,
        name=row.name, created_at=row.created_at, nodes=tuple(nodes),
    )


def get_mongodb_cluster(
    conn: Connection, cluster_id: str, project_ids: Sequence[str],
    region: str | None = None, zone: str | None = None,
) -> MongoCluster | None:
    query = _scoped(mongodb_clusters, project_ids, region, zone)
    row = conn.execute(query.where(mongodb_clusters.c.id == cluster_id)).one_or_none()
    if row is None:
        return None
    return _cluster_record(row, _nodes_of(conn, [row.id])[row.id])


def list_mongodb_clusters(
    conn: Connection, project_ids: Sequence[str], region: str | None, zone: str | None,
    offset: int, limit: int,
) -> tuple[list[MongoCluster], int]:
    query = _scoped(mongodb_clusters, project_ids, region, zone)
    rows, total = page(conn, query, _oldest_first(mongodb_clusters), offset, limit)
    nodes = _nodes_of(conn, [r.id for r in rows])
    return [_cluster_record(r, nodes[r.id]) for r in rows], total


def mongodb_node_source(conn: Connection, box: SecretBox, node_id: str) -> SourceConfig | None:
    """The decrypted source of a node, for the worker that reads its logs."""
    return _stored_source(conn, box, mongodb_nodes, node_id)


def delete_mongodb_cluster(conn: Connection, cluster_id: str) -> None:
    conn.execute(delete(mongodb_nodes).where(mongodb_nodes.c.cluster_id == cluster_id))
    conn.execute(delete(mongodb_clusters).where(mongodb_clusters.c.id == cluster_id))
