"""MongoDB package actions (DESIGN §4): BackupUMongoDBLog, ListUMongoDBLogPackage,
DescribeUMongoDBBackupURL, DeleteUMongoDBLogPackage and GetUMongoDBLog.
"""

from __future__ import annotations

from dblogpack.api.package_info import (
    Page,
    excerpt_answer,
    min_duration,
    package_info,
    unix_seconds,
    unix_time,
)
from dblogpack.api.params import ActionParams, integer, resource_id, text
from dblogpack.api.registry import ActionRegistry, Answer, CallContext
from dblogpack.model import ResourceKind
from dblogpack.service import MAX_LINE_CAP, mongodb_log_kind

ACTIONS = ActionRegistry()

_LOG_TYPE = "SlowLog or ErrorLog (any case; Slow_Log and Error_Log are accepted too)"
MONGODB = ResourceKind.MONGODB


class BackupUMongoDBLog(ActionParams):
    ClusterId: str = resource_id(required=True)
    NodeId: str = resource_id(required=True)
    # Checked by the service, which says what is allowed (1-64 of [A-Za-z0-9._-]).
    Name: str = text("1-64 characters of [A-Za-z0-9._-]", max_length=256, required=True)
    Begin: int = unix_seconds(required=True)
    End: int = unix_seconds(required=True)
    LogType: str = text(_LOG_TYPE, max_length=64, required=True)
    MinDuration: int | None = min_duration()


@ACTIONS.action("BackupUMongoDBLog", BackupUMongoDBLog, resource_field="ClusterId")
def backup_mongodb_log(context: CallContext, params: BackupUMongoDBLog) -> Answer:
    package = context.service.backup_mongodb_log(
        context.caller, context.project_id, context.region, context.zone, params.ClusterId,
        node_id=params.NodeId, name=params.Name, log_type=mongodb_log_kind(params.LogType),
        begin=params.Begin, end=params.End, min_duration_ms=params.MinDuration,
    )
    return {"PackageId": package.id}


class ListUMongoDBLogPackage(Page):
    ClusterId: str = resource_id(required=True)
    NodeId: str | None = resource_id(required=False)


@ACTIONS.action("ListUMongoDBLogPackage", ListUMongoDBLogPackage, resource_field="ClusterId")
def list_mongodb_log_packages(context: CallContext, params: ListUMongoDBLogPackage) -> Answer:
    packages, total = context.service.list_packages(
        context.caller, context.project_id, context.region, context.zone, MONGODB,
        params.ClusterId, params.NodeId, params.Offset, params.Limit,
    )
    return {"DataSet": [package_info(p) for p in packages], "TotalCount": total}


class DescribeUMongoDBBackupURL(ActionParams):
    ClusterId: str = resource_id(required=True)
    PackageId: str = resource_id(required=True)
    ValidTime: int | None = integer(1, 1_000_000_000)


@ACTIONS.action(
    "DescribeUMongoDBBackupURL", DescribeUMongoDBBackupURL, resource_field="PackageId"
)
def describe_mongodb_backup_url(context: CallContext, params: DescribeUMongoDBBackupURL) -> Answer:
    links = context.service.package_links(
        context.caller, context.project_id, context.region, context.zone, MONGODB,
        params.ClusterId, params.PackageId, params.ValidTime,
    )
    return {"InternetAddress": links.public, "IntranetAddress": links.internal}


class DeleteUMongoDBLogPackage(ActionParams):
    ClusterId: str = resource_id(required=True)
    PackageId: str = resource_id(required=True)


@ACTIONS.action("DeleteUMongoDBLogPackage", DeleteUMongoDBLogPackage, resource_field="PackageId")
def delete_mongodb_log_package(context: CallContext, params: DeleteUMongoDBLogPackage) -> Answer:
    context.service.remove_package(
        context.caller, context.project_id, context.region, context.zone, MONGODB,
        params.ClusterId, params.PackageId,
    )
    return {}


class GetUMongoDBLog(ActionParams):
    ClusterId: str = resource_id(required=True)
    NodeId: str = resource_id(required=True)
    Begin: float = unix_time(required=True)
    End: float | None = unix_time()
    LogType: str = text(_LOG_TYPE, max_length=64, required=True)
    MaxLine: int = integer(1, 1_000_000_000, default=1000)


@ACTIONS.action("GetUMongoDBLog", GetUMongoDBLog, resource_field="NodeId")
def get_mongodb_log(context: CallContext, params: GetUMongoDBLog) -> Answer:
    excerpt = context.service.get_mongodb_log(
        context.caller, context.project_id, context.region, context.zone, params.ClusterId,
        node_id=params.NodeId, log_type=mongodb_log_kind(params.LogType), begin=params.Begin,
        end=params.End, max_line=params.MaxLine,
    )
    return excerpt_answer(excerpt, min(params.MaxLine, MAX_LINE_CAP))
