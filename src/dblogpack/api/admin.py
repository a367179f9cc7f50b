"""Admin actions (DESIGN §4): projects, access keys, and registering the PostgreSQL instances
and MongoDB clusters/nodes whose logs are packaged. Admin keys only (RetCode 299 otherwise).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import field_validator

from dblogpack.api.params import ActionParams, choice, flag, integer, resource_id, text, texts
from dblogpack.api.registry import PLACEMENT, ActionRegistry, Answer, CallContext
from dblogpack.catalog.audit import AuditFilter
from dblogpack.errors import MissingParameter
from dblogpack.model import FormatConfig, SourceConfig, SourceType

ACTIONS = ActionRegistry()

_NAME = r"^[^\x00-\x1f\x7f]{1,64}$"
_NAME_ALLOWED = "1-64 printable characters"
_PLACE = f"^{PLACEMENT.pattern}$"
_SOURCE_TYPES = ["postgres", "dir", "ssh"]


def _place(example: str) -> Any:
    return text(f"like {example}: 1-64 characters of [A-Za-z0-9_-]", pattern=_PLACE, max_length=64)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class _Page(ActionParams):
    Offset: int = integer(0, 1_000_000_000, default=0)
    Limit: int = integer(1, 1000, default=100)


class _Placement(ActionParams):
    Region: str | None = _place("cn-bj2")
    Zone: str | None = _place("cn-bj2-01")


class _SourceSettings(ActionParams):
    """Where a node's logs are (`SourceType` and its settings) and how they are written."""

    SourceType: Literal["postgres", "dir", "ssh"] = choice(_SOURCE_TYPES, required=True)
    DSN: str | None = text("a libpq connection string", max_length=4096, secret=True)
    LogDir: str | None = text("a directory path", max_length=4096)
    LogPattern: str | None = text("a file name glob like postgresql-*.log", max_length=256)
    SSHHost: str | None = text("a host name or address", max_length=255)
    SSHPort: int = integer(1, 65535, default=22)
    SSHUser: str | None = text("a user name", max_length=255)
    SSHPrivateKey: str | None = text("an OpenSSH private key", max_length=16384, secret=True)
    SSHKnownHostKey: str | None = text("the host's public key line", max_length=16384)
    LogLinePrefix: str | None = text("PostgreSQL's log_line_prefix", max_length=256)
    LogTimezone: str | None = text("an IANA time zone name like Asia/Shanghai", max_length=64)

    @field_validator("LogTimezone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _time_zones():
            raise ValueError("unknown time zone")
        return value

    def source_config(self, log_format: str) -> SourceConfig:
        self._require_settings_of_source_type()
        return SourceConfig(
            type=SourceType(self.SourceType),
            dsn=self.DSN,
            log_dir=self.LogDir,
            log_pattern=self.LogPattern,
            ssh_host=self.SSHHost,
            ssh_port=self.SSHPort,
            ssh_user=self.SSHUser,
            ssh_private_key=self.SSHPrivateKey,
            ssh_known_host_key=self.SSHKnownHostKey,
            log_format=FormatConfig(log_format, self.LogLinePrefix, self.LogTimezone),
        )

    def _require_settings_of_source_type(self) -> None:
        required = {
            "postgres": ("DSN",),
            "dir": ("LogDir",),
            "ssh": ("SSHHost", "SSHUser", "SSHPrivateKey", "LogDir"),
        }[self.SourceType]
        for name in required:
            if getattr(self, name) is None:
                raise MissingParameter(
                    f"Missing parameter {name}: SourceType {self.SourceType} needs "
                    + ", ".join(required)
                )


_PG_FORMATS = ["auto", "pg-stderr", "pg-csv", "pg-json"]
_MONGO_FORMATS = ["auto", "mongo-json", "mongo-legacy"]
_ROLES = ["primary", "secondary", "arbiter", "mongos", "configsvr"]


# --- projects and keys ---------------------------------------------------------------------


class CreateProject(ActionParams):
    Name: str = text(_NAME_ALLOWED, pattern=_NAME, max_length=64, required=True)


@ACTIONS.action("CreateProject", CreateProject, admin_only=True, resource_field="ProjectId")
def create_project(context: CallContext, params: CreateProject) -> Answer:
    return {"ProjectId": context.service.create_project(context.caller, params.Name)}


class CreateAccessKey(ActionParams):
    ProjectId: list[str] = texts("project ids the key is granted (the first is its default)")
    Admin: bool = flag()
    Description: str = text("up to 256 characters", max_length=256, default="")


@ACTIONS.action("CreateAccessKey", CreateAccessKey, admin_only=True, resource_field="PublicKey")
def create_access_key(context: CallContext, params: CreateAccessKey) -> Answer:
    created = context.service.create_access_key(
        context.caller, params.ProjectId, params.Admin, params.Description
    )
    return dict(created)


class DeleteAccessKey(ActionParams):
    TargetPublicKey: str = text("the PublicKey of the key to delete", max_length=256, required=True)


@ACTIONS.action(
    "DeleteAccessKey", DeleteAccessKey, admin_only=True, resource_field="TargetPublicKey"
)
def delete_access_key(context: CallContext, params: DeleteAccessKey) -> Answer:
    context.service.delete_access_key(context.caller, params.TargetPublicKey)
    return {}


# --- PostgreSQL instances ------------------------------------------------------------------


class RegisterUPgSQLInstance(_Placement, _SourceSettings):
    InstanceID: str | None = resource_id(required=False)
    Name: str = text(_NAME_ALLOWED, pattern=_NAME, max_length=64, required=True)
    LogFormat: Literal["auto", "pg-stderr", "pg-csv", "pg-json"] = choice(_PG_FORMATS, "auto")


@ACTIONS.action(
    "RegisterUPgSQLInstance", RegisterUPgSQLInstance, admin_only=True, resource_field="InstanceID"
)
def register_pgsql_instance(context: CallContext, params: RegisterUPgSQLInstance) -> Answer:
    source = params.source_config(params.LogFormat)
    instance_id = context.service.register_pgsql_instance(
        context.caller,
        context.project_id,
        params.Region,
        params.Zone,
        params.InstanceID,
        params.Name,
        source,
    )
    return {"InstanceID": instance_id}


class DeregisterUPgSQLInstance(ActionParams):
    InstanceID: str = resource_id(required=True)


@ACTIONS.action(
    "DeregisterUPgSQLInstance",
    DeregisterUPgSQLInstance,
    admin_only=True,
    resource_field="InstanceID",
)
def deregister_pgsql_instance(context: CallContext, params: DeregisterUPgSQLInstance) -> Answer:
    context.service.deregister_pgsql_instance(
        context.caller, context.project_id, context.region, context.zone, params.InstanceID
    )
    return {}


class ListUPgSQLInstance(_Page):
    pass


@ACTIONS.action("ListUPgSQLInstance", ListUPgSQLInstance, admin_only=True)
def list_pgsql_instances(context: CallContext, params: ListUPgSQLInstance) -> Answer:
    rows, total = context.service.list_pgsql_instances(
        context.caller, context.project_id, context.region, context.zone,
        params.Offset, params.Limit,
    )
    data_set = [
        {
            "InstanceID": row.instance_id,
            "Name": row.name,
            "Region": row.region,
            "Zone": row.zone,
            "SourceType": row.source_type,
            "LogFormat": row.log_format,
            "State": row.state,
        }
        for row in rows
    ]
    return {"DataSet": data_set, "TotalCount": total}


# --- MongoDB clusters and nodes ------------------------------------------------------------


class RegisterUMongoDBCluster(_Placement):
    ClusterId: str | None = resource_id(required=False)
    Name: str = text(_NAME_ALLOWED, pattern=_NAME, max_length=64, required=True)


@ACTIONS.action(
    "RegisterUMongoDBCluster", RegisterUMongoDBCluster, admin_only=True, resource_field="ClusterId"
)
def register_mongodb_cluster(context: CallContext, params: RegisterUMongoDBCluster) -> Answer:
    cluster_id = context.service.register_mongodb_cluster(
        context.caller, context.project_id, params.Region, params.Zone,
        params.ClusterId, params.Name,
    )
    return {"ClusterId": cluster_id}


class RegisterUMongoDBNode(_SourceSettings):
    ClusterId: str = resource_id(required=True)
    NodeId: str | None = resource_id(required=False)
    Role: Literal["primary", "secondary", "arbiter", "mongos", "configsvr"] = choice(
        _ROLES, required=True
    )
    LogFormat: Literal["auto", "mongo-json", "mongo-legacy"] = choice(_MONGO_FORMATS, "auto")


@ACTIONS.action(
    "RegisterUMongoDBNode", RegisterUMongoDBNode, admin_only=True, resource_field="NodeId"
)
def register_mongodb_node(context: CallContext, params: RegisterUMongoDBNode) -> Answer:
    source = params.source_config(params.LogFormat)
    node_id = context.service.register_mongodb_node(
        context.caller, context.project_id, context.region, context.zone,
        params.ClusterId, params.NodeId, params.Role, source,
    )
    return {"NodeId": node_id}


class DeregisterUMongoDBCluster(ActionParams):
    ClusterId: str = resource_id(required=True)


@ACTIONS.action(
    "DeregisterUMongoDBCluster",
    DeregisterUMongoDBCluster,
    admin_only=True,
    resource_field="ClusterId",
)
def deregister_mongodb_cluster(context: CallContext, params: DeregisterUMongoDBCluster) -> Answer:
    context.service.deregister_mongodb_cluster(
        context.caller, context.project_id, context.region, context.zone, params.ClusterId
    )
    return {}


class ListUMongoDBInstances(_Page):
    pass


@ACTIONS.action("ListUMongoDBInstances", ListUMongoDBInstances, admin_only=True)
def list_mongodb_instances(context: CallContext, params: ListUMongoDBInstances) -> Answer:
    clusters, total = context.service.list_mongodb_instances(
        context.caller, context.project_id, context.region, context.zone,
        params.Offset, params.Limit,
    )
    data_set = [
        {
            "ClusterId": cluster.cluster_id,
            "Name": cluster.name,
            "Region": cluster.region,
            "Zone": cluster.zone,
            "Nodes": [
                {"NodeId": node.node_id, "Role": node.role, "SourceType": node.source_type}
                for node in cluster.nodes
            ],
        }
        for cluster in clusters
    ]
    return {"DataSet": data_set, "TotalCount": total}


# --- audit trail ---------------------------------------------------------------------------


class ListAuditRecords(_Page):
    # PublicKey and Action name the call itself, so the filters carry a Target prefix, as
    # DeleteAccessKey's TargetPublicKey does.
    TargetPublicKey: str | None = text("a PublicKey", max_length=128)
    TargetAction: str | None = text("an Action name", max_length=128)
    BeginTime: int | None = integer(0, 1 << 40)
    EndTime: int | None = integer(0, 1 << 40)


@ACTIONS.action("ListAuditRecords", ListAuditRecords, admin_only=True)
def list_audit_records(context: CallContext, params: ListAuditRecords) -> Answer:
    where = AuditFilter(
        params.TargetPublicKey, params.TargetAction, params.BeginTime, params.EndTime
    )
    records, total = context.service.list_audit_records(
        context.caller, where, params.Offset, params.Limit
    )
    data_set = [
        {
            "Time": int(record.at),
            "RequestUUID": record.request_uuid,
            "PublicKey": record.public_key,
            "Action": record.action,
            "ResourceId": record.resource_id,
            "RetCode": record.ret_code,
            "RemoteAddr": record.remote_addr,
        }
        for record in records
    ]
    return {"DataSet": data_set, "TotalCount": total}
