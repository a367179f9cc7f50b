"""PostgreSQL package actions (DESIGN §4): BackupUPgSQLLog, ListUPgSQLLog, ListUPgSQLLogPackage,
GetUPgSQLLogPackageURL, DeleteUPgSQLLogPackage and GetUPgSQLInstanceLog.
"""

from __future__ import annotations

from dblogpack.api.package_info import (
    Page,
    excerpt_answer,
    min_duration,
    package_info,
    unix_seconds,
    unix_time,
    whole_seconds,
)
from dblogpack.api.params import ActionParams, integer, resource_id, text, texts
from dblogpack.api.registry import ActionRegistry, Answer, CallContext
from dblogpack.model import ResourceKind
from dblogpack.service import MAX_LINE_CAP, pgsql_log_kind

ACTIONS = ActionRegistry()

_LOG_TYPE = "slow or error (omitted: every entry)"
PGSQL = ResourceKind.PGSQL


class BackupUPgSQLLog(ActionParams):
    InstanceID: str = resource_id(required=True)
    # Checked by the service, which says what is allowed (1-64 of [A-Za-z0-9._-]).
    BackupName: str = text("1-64 characters of [A-Za-z0-9._-]", max_length=256, required=True)
    BackupFile: list[str] = texts("log file names as ListUPgSQLLog gives them", max_items=1000)
    LogType: str | None = text(_LOG_TYPE, max_length=64)
    BeginTime: int | None = unix_seconds()
    EndTime: int | None = unix_seconds()
    MinDuration: int | None = min_duration()


@ACTIONS.action("BackupUPgSQLLog", BackupUPgSQLLog, resource_field="InstanceID")
def backup_pgsql_log(context: CallContext, params: BackupUPgSQLLog) -> Answer:
    package = context.service.backup_pgsql_log(
        context.caller, context.project_id, context.region, context.zone, params.InstanceID,
        name=params.BackupName, files=params.BackupFile, log_type=pgsql_log_kind(params.LogType),
        begin=params.BeginTime, end=params.EndTime, min_duration_ms=params.MinDuration,
    )
    return {"BackupID": package.id}


class ListUPgSQLLog(ActionParams):
    InstanceID: str = resource_id(required=True)
    BeginTime: int | None = unix_seconds()
    EndTime: int | None = unix_seconds()


@ACTIONS.action("ListUPgSQLLog", ListUPgSQLLog, resource_field="InstanceID")
def list_pgsql_logs(context: CallContext, params: ListUPgSQLLog) -> Answer:
    files = context.service.list_pgsql_logs(
        context.caller, context.project_id, context.region, context.zone, params.InstanceID,
        params.BeginTime, params.EndTime,
    )
    data_set = [
        {
            "Name": f.name,
            "BeginTime": whole_seconds(f.first_ts),
            "EndTime": whole_seconds(f.last_ts),
            "Size": f.size,
        }
        for f in files
    ]
    return {"DataSet": data_set, "TotalCount": len(data_set)}


class ListUPgSQLLogPackage(Page):
    InstanceID: str | None = resource_id(required=False)


@ACTIONS.action("ListUPgSQLLogPackage", ListUPgSQLLogPackage, resource_field="InstanceID")
def list_pgsql_log_packages(context: CallContext, params: ListUPgSQLLogPackage) -> Answer:
    packages, total = context.service.list_packages(
        context.caller, context.project_id, context.region, context.zone, PGSQL,
        params.InstanceID, None, params.Offset, params.Limit,
    )
    return {"DataSet": [package_info(p) for p in packages], "TotalCount": total}


class GetUPgSQLLogPackageURL(ActionParams):
    InstanceID: str = resource_id(required=True)
    BackupID: str = resource_id(required=True)
    ValidTime: int | None = integer(1, 1_000_000_000)


@ACTIONS.action("GetUPgSQLLogPackageURL", GetUPgSQLLogPackageURL, resource_field="BackupID")
def get_pgsql_log_package_url(context: CallContext, params: GetUPgSQLLogPackageURL) -> Answer:
    links = context.service.package_links(
        context.caller, context.project_id, context.region, context.zone, PGSQL,
        params.InstanceID, params.BackupID, params.ValidTime,
    )
    return {"BackupPath": links.public, "InnerBackupPath": links.internal}


class DeleteUPgSQLLogPackage(ActionParams):
    InstanceID: str = resource_id(required=True)
    BackupID: str = resource_id(required=True)


@ACTIONS.action("DeleteUPgSQLLogPackage", DeleteUPgSQLLogPackage, resource_field="BackupID")
def delete_pgsql_log_package(context: CallContext, params: DeleteUPgSQLLogPackage) -> Answer:
    context.service.remove_package(
        context.caller, context.project_id, context.region, context.zone, PGSQL,
        params.InstanceID, params.BackupID,
    )
    return {}


class GetUPgSQLInstanceLog(ActionParams):
    InstanceID: str = resource_id(required=True)
    LogType: str | None = text(_LOG_TYPE, max_length=64)
    BeginTime: float | None = unix_time()
    EndTime: float | None = unix_time()
    MaxLine: int = integer(1, 1_000_000_000, default=1000)


@ACTIONS.action("GetUPgSQLInstanceLog", GetUPgSQLInstanceLog, resource_field="InstanceID")
def get_pgsql_instance_log(context: CallContext, params: GetUPgSQLInstanceLog) -> Answer:
    excerpt = context.service.get_pgsql_instance_log(
        context.caller, context.project_id, context.region, context.zone, params.InstanceID,
        log_type=pgsql_log_kind(params.LogType), begin=params.BeginTime, end=params.EndTime,
        max_line=params.MaxLine,
    )
    return excerpt_answer(excerpt, min(params.MaxLine, MAX_LINE_CAP))
