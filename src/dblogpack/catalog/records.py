"""What catalog queries return: frozen records, never ORM rows; secrets appear only where needed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AccessKey:
    """A key and what it may reach; `private_key` is decrypted, for signature checks only."""

    public_key: str
    account_id: str
    private_key: str = field(repr=False)
    is_admin: bool
    default_project_id: str | None
    description: str
    project_ids: frozenset[str]
    created_at: float


@dataclass(frozen=True, slots=True)
class Project:
    project_id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PgsqlInstance:
    """A registered PostgreSQL instance, without its source secrets."""

    instance_id: str
    project_id: str
    region: str
    zone: str
    name: str
    state: str
    source_type: str
    log_format: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MongoNode:
    node_id: str
    cluster_id: str
    role: str
    source_type: str
    log_format: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MongoCluster:
    cluster_id: str
    project_id: str
    region: str
    zone: str
    name: str
    created_at: float
    nodes: tuple[MongoNode, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: float
    request_uuid: str
    public_key: str | None
    action: str
    resource_id: str | None
    ret_code: int
    remote_addr: str | None
