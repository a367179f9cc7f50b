"""The `dblogpack` command: each subcommand is a small function registering its own parser.

Thin by design: parse flags, call app/service (server commands) or the signed API (client
commands). Heavy imports happen inside the commands, so `dblogpack --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from dblogpack.cli_examples import attach_examples
from dblogpack.cli_pack import add_pack
from dblogpack.errors import ConfigError, DblogpackError

if TYPE_CHECKING:
    from pathlib import Path

    from dblogpack.settings import Settings

Register = Callable[[Any], None]
BuildParams = Callable[[argparse.Namespace], dict[str, object]]

# Flags every command accepts, before or after the command name.
_CLIENT_FLAGS = ("endpoint", "public_key", "private_key")
# Settings that are not `serve` flags: the global and the client ones.
_NOT_SERVE_FLAGS = frozenset({"data_dir", *_CLIENT_FLAGS})


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="data directory (settings, secret, SQLite, packages)")
    common.add_argument("--endpoint", default=argparse.SUPPRESS,
                        help="API endpoint of the client commands")
    common.add_argument("--public-key", default=argparse.SUPPRESS,
                        help="PublicKey to sign with (or DBLOGPACK_PUBLIC_KEY)")
    common.add_argument("--private-key", default=argparse.SUPPRESS,
                        help="PrivateKey to sign with (or DBLOGPACK_PRIVATE_KEY)")
    return common


COMMON = _common_flags()


def load(args: argparse.Namespace, **flags: object) -> Settings:
    """Settings for this invocation: the global flags plus `flags` over env and TOML."""
    from dblogpack.settings import load_settings

    given = {name: getattr(args, name, None) for name in ("data_dir", *_CLIENT_FLAGS)}
    return load_settings({**given, **flags})


# -- serve ------------------------------------------------------------------------------------


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Every server setting of the table as a flag of `parser`."""
    from dblogpack.settings import SETTINGS

    for setting in SETTINGS:
        if setting.name in _NOT_SERVE_FLAGS:
            continue
        # Booleans work as bare switches (`--demo`) and with a value (`--demo false`).
        switch: dict[str, Any] = {"nargs": "?", "const": "true"} if setting.kind is bool else {}
        parser.add_argument(setting.flag, dest=setting.name, metavar="VALUE", **switch,
                            help=f"{setting.help} (default: {setting.default!r})")
        if setting.kind is bool:
            parser.add_argument("--no-" + setting.flag[2:], dest=setting.name,
                                action="store_const", const="false",
                                help=f"same as {setting.flag} false")


def _add_server_command(
    subparsers: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int]
) -> None:
    """A server command (`serve`, `worker`): the common flags and every server setting."""
    parser = subparsers.add_parser(name, parents=[COMMON], help=help_text)
    _add_setting_flags(parser)
    parser.set_defaults(run=run)


def _server_start(args: argparse.Namespace) -> Settings:
    """The settings of a server command (its flags over env and TOML), logging configured."""
    from dblogpack.app import configure_logging
    from dblogpack.settings import SETTINGS

    settings = load(args, **{
        s.name: getattr(args, s.name) for s in SETTINGS if s.name not in _NOT_SERVE_FLAGS
    })
    configure_logging(settings)
    return settings


def add_serve(subparsers: Any) -> None:
    _add_server_command(
        subparsers, "serve",
        "run the API server and `workers` package workers (answers /healthz once ready)",
        run_serve,
    )


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from dblogpack.app import open_services
    from dblogpack.server import run_server

    settings = _server_start(args)
    services = open_services(settings)
    # uvicorn re-raises the SIGTERM it shut down on once it is done; as an exception, the
    # finally blocks still run (workers' grace, the demo's PostgreSQL) and the exit status is 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    demo = None
    if settings.demo:
        from dblogpack.demo import launch_demo

        demo = launch_demo(services)  # starts once /healthz answers, then prints the tour
    try:
        run_server(services, settings)
    finally:
        if demo is not None:
            demo.stop()  # the demo's PostgreSQL, workload and feeders end with the server
        services.close()
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def add_worker(subparsers: Any) -> None:
    _add_server_command(
        subparsers, "worker",
        "build packages from the shared metadata database and store (`workers` threads)",
        run_worker,
    )


def run_worker(args: argparse.Namespace) -> int:
    import logging

    from dblogpack.app import build_worker_pool, open_services
    from dblogpack.jobs import run_until_signalled
    from dblogpack.server import serve_worker_metrics

    settings = _server_start(args)
    # bootstrap=False: admin keys are made by `serve`; a worker only builds.
    services = open_services(settings, bootstrap=False)
    try:
        services.store.check()
        serve_worker_metrics(services, settings)
        log = logging.getLogger("dblogpack.cli")
        log.info("worker started with %d thread(s)", max(1, settings.workers))
        run_until_signalled(build_worker_pool(services, max(1, settings.workers)), 30.0)
    finally:
        services.close()
    return 0


# -- keys ---------------------------------------------------------------------------------------


def add_keys(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", parents=[COMMON], help="manage access keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser(
        "create", parents=[COMMON], help="create a key pair directly in the data directory"
    )
    create.add_argument("--admin", action="store_true", help="the key may run admin actions")
    create.add_argument("--project", action="append", default=[], metavar="ID",
                        help="grant this project (repeatable; the first is the default)")
    create.add_argument("--description", default="", help="what the key is for")
    create.add_argument("--json", action="store_true", help="print the key pair as JSON")
    create.set_defaults(run=run_keys_create)


def run_keys_create(args: argparse.Namespace) -> int:
    from dblogpack.app import open_services

    services = open_services(load(args))
    if services.new_admin_key is not None:
        print(f"dblogpack: first use of this data directory: the first admin key is in "
              f"{services.settings.admin_key_path}", file=sys.stderr)
    try:
        key = services.service.operator_create_access_key(
            args.project, args.admin, args.description
        )
    finally:
        services.close()
    if args.json:
        print(json.dumps(key))
    else:
        print("\n".join(f"{name}: {value}" for name, value in key.items()))
    return 0


# -- the signed API client ---------------------------------------------------------------------


class CallFailedError(DblogpackError):
    """The API answered with a non-zero RetCode."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(
            f"RetCode {answer.get('RetCode')}: {answer.get('Message', '')} "
            f"(RequestUUID {answer.get('RequestUUID', '?')})"
        )
        self.answer = answer


def _credentials(settings: Settings) -> tuple[str, str]:
    """Flags/env first; on the server's own machine, the first admin key of the data directory."""
    if settings.public_key and settings.private_key:
        return settings.public_key, settings.private_key
    if settings.public_key or settings.private_key:
        raise ConfigError("give both the PublicKey and the PrivateKey to sign with")
    try:
        saved = json.loads(settings.admin_key_path.read_text())
        return str(saved["PublicKey"]), str(saved["PrivateKey"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            "no key to sign with: give --public-key/--private-key or set "
            "DBLOGPACK_PUBLIC_KEY/DBLOGPACK_PRIVATE_KEY"
        ) from exc


def call_api(settings: Settings, action: str, params: dict[str, object]) -> dict[str, Any]:
    """POST one signed call to `settings.endpoint`; its answer, CallFailedError if RetCode != 0."""
    import httpx

    from dblogpack.api.signing import signed

    public_key, private_key = _credentials(settings)
    form = signed({"Action": action, **params}, public_key, private_key)
    try:
        response = httpx.post(settings.endpoint, data=form, timeout=60.0)
        answer: dict[str, Any] = response.json()
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach {settings.endpoint}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(
            f"{settings.endpoint} answered HTTP {response.status_code} without JSON"
        ) from exc
    if answer.get("RetCode") != 0:
        raise CallFailedError(answer)
    return answer


def _print_answer(answer: dict[str, Any]) -> int:
    from dblogpack.terminal import print_answer

    print_answer(answer)
    return 0


def parse_pairs(pairs: Sequence[str]) -> dict[str, object]:
    """`Key=Value` words; a key given twice becomes a list (sent as Key.0, Key.1…)."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected Key=Value, got {pair!r}")
        if key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params


def add_call(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call", parents=[COMMON], help="signed call of any API action; prints the JSON answer"
    )
    parser.add_argument("action", help="the Action, e.g. ListUPgSQLInstance")
    parser.add_argument("params", nargs="*", metavar="Key=Value",
                        help="parameters; repeat a key for an array")
    parser.set_defaults(run=lambda args: _print_answer(
        call_api(load(args), args.action, parse_pairs(args.params))
    ))


def add_audit(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit", parents=[COMMON], help="the audit trail of signed calls, newest first (admin)"
    )
    parser.add_argument("--action", help="only calls of this Action")
    parser.add_argument("--key", metavar="PUBLIC_KEY", help="only calls signed with this key")
    parser.add_argument("--since", type=int, metavar="UNIX", help="only calls at or after")
    parser.add_argument("--until", type=int, metavar="UNIX", help="only calls before")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=50, help="records to show (default 50)")
    parser.set_defaults(run=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    from dblogpack.terminal import print_audit

    filters = {"TargetAction": args.action, "TargetPublicKey": args.key,
               "BeginTime": args.since, "EndTime": args.until}
    params = {name: value for name, value in filters.items() if value is not None}
    print_audit(call_api(load(args), "ListAuditRecords",
                         {**params, "Offset": args.offset, "Limit": args.limit}))
    return 0


# -- pgsql and mongodb resources ---------------------------------------------------------------

# CLI flag → API parameter of the source settings (DESIGN §4).
_SOURCE_FLAGS = {
    "source_type": "SourceType", "dsn": "DSN", "log_dir": "LogDir", "log_pattern": "LogPattern",
    "ssh_host": "SSHHost", "ssh_port": "SSHPort", "ssh_user": "SSHUser",
    "ssh_known_host_key": "SSHKnownHostKey", "log_format": "LogFormat",
    "log_line_prefix": "LogLinePrefix", "log_timezone": "LogTimezone",
}
_PLACEMENT_FLAGS = {"region": "Region", "zone": "Zone", "project": "ProjectId"}


def _placement_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--region", help="Region (default: the server's default_region)")
    parent.add_argument("--zone", help="Zone (default: the server's default_zone)")
    parent.add_argument("--project", help="ProjectId (default: the key's default project)")
    return parent


def _source_parent() -> argparse.ArgumentParser:
    from pathlib import Path

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--source-type", required=True, choices=["postgres", "dir", "ssh"])
    parent.add_argument("--dsn", help="postgres: connection string of a log-reading role")
    parent.add_argument("--log-dir", help="dir, ssh: directory of the log files")
    parent.add_argument("--log-pattern", help="dir, ssh: glob of the log file names")
    parent.add_argument("--ssh-host")
    parent.add_argument("--ssh-port", type=int)
    parent.add_argument("--ssh-user")
    parent.add_argument("--ssh-private-key-file", type=Path,
                        help="ssh: file holding the private key (sent as SSHPrivateKey)")
    parent.add_argument("--ssh-known-host-key", help="ssh: the host's public key line")
    parent.add_argument("--log-format", help="auto (default) or a format name")
    parent.add_argument("--log-line-prefix", help="PostgreSQL log_line_prefix")
    parent.add_argument("--log-timezone", help="IANA name of the log's time zone")
    return parent


def _params_from(args: argparse.Namespace, mapping: dict[str, str]) -> dict[str, object]:
    return {
        api: getattr(args, flag) for flag, api in mapping.items()
        if getattr(args, flag, None) is not None
    }


def _source_params(args: argparse.Namespace) -> dict[str, object]:
    params = _params_from(args, _SOURCE_FLAGS)
    if args.ssh_private_key_file is not None:
        try:
            params["SSHPrivateKey"] = args.ssh_private_key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.ssh_private_key_file}: {exc}") from exc
    return params


def _api_command(
    actions: Any, name: str, action: str, help_text: str,
    parents: Sequence[argparse.ArgumentParser], build: BuildParams,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(
        name, parents=[COMMON, *parents], help=help_text
    )
    parser.set_defaults(run=lambda args: _print_answer(call_api(load(args), action, build(args))))
    return parser


def _listing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=100)


def add_pgsql(subparsers: Any) -> None:
    group = subparsers.add_parser("pgsql", parents=[COMMON], help="PostgreSQL instances (admin)")
    actions = group.add_subparsers(dest="pgsql_command", required=True)
    placement, source = _placement_parent(), _source_parent()
    add = _api_command(
        actions, "add", "RegisterUPgSQLInstance", "register an instance", [placement, source],
        lambda a: {"Name": a.name, **_params_from(a, _PLACEMENT_FLAGS),
                   **_params_from(a, {"instance_id": "InstanceID"}), **_source_params(a)},
    )
    add.add_argument("--name", required=True)
    add.add_argument("--instance-id", help="InstanceID (default: generated upgsql-…)")
    _listing(_api_command(
        actions, "list", "ListUPgSQLInstance", "list instances", [placement],
        lambda a: {"Offset": a.offset, "Limit": a.limit, **_params_from(a, _PLACEMENT_FLAGS)},
    ))
    _api_command(
        actions, "remove", "DeregisterUPgSQLInstance", "deregister an instance", [placement],
        lambda a: {"InstanceID": a.instance_id, **_params_from(a, _PLACEMENT_FLAGS)},
    ).add_argument("instance_id", metavar="INSTANCE_ID")


def add_mongodb(subparsers: Any) -> None:
    group = subparsers.add_parser("mongodb", parents=[COMMON], help="MongoDB clusters (admin)")
    actions = group.add_subparsers(dest="mongodb_command", required=True)
    placement, source = _placement_parent(), _source_parent()
    cluster = _api_command(
        actions, "add-cluster", "RegisterUMongoDBCluster", "register a cluster", [placement],
        lambda a: {"Name": a.name, **_params_from(a, _PLACEMENT_FLAGS),
                   **_params_from(a, {"cluster_id": "ClusterId"})},
    )
    cluster.add_argument("--name", required=True)
    cluster.add_argument("--cluster-id", help="ClusterId (default: generated umongodb-…)")
    node = _api_command(
        actions, "add-node", "RegisterUMongoDBNode", "add a node to a cluster",
        [placement, source],
        lambda a: {"ClusterId": a.cluster_id, "Role": a.role,
                   **_params_from(a, {**_PLACEMENT_FLAGS, "node_id": "NodeId"}),
                   **_source_params(a)},
    )
    node.add_argument("cluster_id", metavar="CLUSTER_ID")
    node.add_argument("--role", required=True,
                      choices=["primary", "secondary", "arbiter", "mongos", "configsvr"])
    node.add_argument("--node-id", help="NodeId (default: generated)")
    _listing(_api_command(
        actions, "list", "ListUMongoDBInstances", "list clusters and their nodes", [placement],
        lambda a: {"Offset": a.offset, "Limit": a.limit, **_params_from(a, _PLACEMENT_FLAGS)},
    ))
    _api_command(
        actions, "remove", "DeregisterUMongoDBCluster", "deregister a cluster", [placement],
        lambda a: {"ClusterId": a.cluster_id, **_params_from(a, _PLACEMENT_FLAGS)},
    ).add_argument("cluster_id", metavar="CLUSTER_ID")


# -- package (submit through the signed API, wait with a progress bar, download) ---------------

PACKAGE_EXAMPLE = """\
examples:
  dblogpack --endpoint http://dblogpack:8080/ package mongodb --cluster-id umongodb-ab12cd34 \\
      --node-id udb-ef56gh78 --type slow --begin 1714550400 --end 1714554000 --wait
  dblogpack package pgsql --instance-id upgsql-ab12cd34 --type error \\
      --file postgresql-2024-05-01_000000.log --wait --out errors.tar.gz
Without --file, pgsql packages every file ListUPgSQLLog lists for the window.
"""
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FINAL_STATES = ("Package_Success", "Package_Failed", "Package_Deleting", "Package_Deleted",
                 "Package_DeleteFailed")


class PackageActions(NamedTuple):
    """The actions and answer fields of one resource kind (DESIGN §4)."""

    backup: str
    package_id: str  # the id's name, in Backup's answer and in the URL request
    listing: str
    url: str
    public_url: str
    internal_url: str


PACKAGE_ACTIONS = {
    "mongodb": PackageActions("BackupUMongoDBLog", "PackageId", "ListUMongoDBLogPackage",
                              "DescribeUMongoDBBackupURL", "InternetAddress", "IntranetAddress"),
    "pgsql": PackageActions("BackupUPgSQLLog", "BackupID", "ListUPgSQLLogPackage",
                            "GetUPgSQLLogPackageURL", "BackupPath", "InnerBackupPath"),
}


class PackageFailedError(DblogpackError):
    """The package did not become downloadable; the message says why and names the request."""


def add_package(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "package", parents=[COMMON], help="build a package through the API, wait, download it",
        epilog=PACKAGE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = group.add_subparsers(dest="package_kind", required=True)
    common = _package_parent()
    mongodb = kinds.add_parser("mongodb", parents=[COMMON, _placement_parent(), common],
                               help="a MongoDB node's slow or error log", epilog=PACKAGE_EXAMPLE,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    mongodb.add_argument("--cluster-id", required=True, help="ClusterId")
    mongodb.add_argument("--node-id", required=True, help="NodeId")
    mongodb.add_argument("--type", dest="log_type", required=True, choices=["slow", "error"])
    pgsql = kinds.add_parser("pgsql", parents=[COMMON, _placement_parent(), common],
                             help="a PostgreSQL instance's log entries", epilog=PACKAGE_EXAMPLE,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    pgsql.add_argument("--instance-id", required=True, help="InstanceID")
    pgsql.add_argument("--type", dest="log_type", default="all", choices=["slow", "error", "all"])
    pgsql.add_argument("--file", dest="files", action="append", metavar="NAME",
                       help="a log file name from ListUPgSQLLog (repeatable; default: all)")
    group.set_defaults(run=run_package)


def _package_parent() -> argparse.ArgumentParser:
    from pathlib import Path

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--begin", type=int, metavar="UNIX",
                        help="window start, unix s (mongodb default: an hour before --end)")
    parent.add_argument("--end", type=int, metavar="UNIX", help="window end, unix s "
                        "(excluded; mongodb default: now)")
    parent.add_argument("--min-duration", type=int, metavar="MS", help="slow entries of >= MS")
    parent.add_argument("--name", help="package name, 1-64 of A-Z a-z 0-9 . _ - "
                        "(default: generated)")
    parent.add_argument("--wait", action="store_true",
                        help="show progress until the package is built, then download it")
    parent.add_argument("--out", type=Path, metavar="FILE",
                        help="where --wait saves the package (default: ./<Name>.tar.gz)")
    parent.add_argument("--internal", action="store_true",
                        help="download from the internal address (IntranetAddress)")
    parent.add_argument("--poll", type=float, default=1.0, metavar="S",
                        help="seconds between progress checks (default 1)")
    parent.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                        help="give up waiting after S seconds (default 3600)")
    return parent


def run_package(args: argparse.Namespace) -> int:
    from pathlib import Path

    settings = load(args)
    actions = PACKAGE_ACTIONS[args.package_kind]
    name = args.name or time.strftime("cli-%Y%m%d-%H%M%S-", time.gmtime()) + os.urandom(3).hex()
    if not _PACKAGE_NAME.fullmatch(name):
        raise ConfigError(f"--name must be 1 to 64 of A-Z a-z 0-9 . _ -, got {name!r}")
    scope = {**_params_from(args, _PLACEMENT_FLAGS), **_package_scope(args)}
    answer = call_api(settings, actions.backup, {**scope, **_backup_params(settings, args, name)})
    package_id = str(answer[actions.package_id])
    if not args.wait:
        return _print_answer({actions.package_id: package_id, "Name": name})
    try:
        info = _wait_for_package(settings, actions, scope, package_id, args)
        url_answer = call_api(settings, actions.url, {
            **scope, actions.package_id: package_id, "ValidTime": 3600})
        url = str(url_answer[actions.internal_url if args.internal else actions.public_url])
        out = args.out or Path(f"{info['Name']}.tar.gz")
        size = _download(url, out, info, str(url_answer.get("RequestUUID", "?")))
    except PackageFailedError as exc:
        print(f"dblogpack package: {exc.message}", file=sys.stderr)
        return 1
    print(f"{out}: {size} bytes, {info.get('EntryCount', 0)} entries ({package_id})")
    return 0


def _package_scope(args: argparse.Namespace) -> dict[str, object]:
    if args.package_kind == "mongodb":
        return {"ClusterId": args.cluster_id}
    return {"InstanceID": args.instance_id}


def _backup_params(settings: Settings, args: argparse.Namespace, name: str) -> dict[str, object]:
    duration = {} if args.min_duration is None else {"MinDuration": args.min_duration}
    if args.package_kind == "mongodb":
        end = args.end if args.end is not None else int(time.time())
        begin = args.begin if args.begin is not None else end - 3600
        return {"NodeId": args.node_id, "Name": name, "Begin": begin, "End": end,
                "LogType": {"slow": "SlowLog", "error": "ErrorLog"}[args.log_type], **duration}
    window = {key: value for key, value in (("BeginTime", args.begin), ("EndTime", args.end))
              if value is not None}
    files = args.files or _listed_files(settings, args, window)
    type_param = {} if args.log_type == "all" else {"LogType": args.log_type}
    return {"BackupName": name, "BackupFile": files, **window, **type_param, **duration}


def _listed_files(
    settings: Settings, args: argparse.Namespace, window: dict[str, object]
) -> list[str]:
    # ListUPgSQLLog wants both edges; an open edge is the epoch or now.
    listing = {"BeginTime": window.get("BeginTime", 0),
               "EndTime": window.get("EndTime", int(time.time()) + 1)}
    answer = call_api(settings, "ListUPgSQLLog", {
        **_params_from(args, _PLACEMENT_FLAGS), "InstanceID": args.instance_id, **listing})
    files = [str(row["Name"]) for row in answer.get("DataSet", [])]
    if not files:
        raise ConfigError(f"InstanceID {args.instance_id} has no log file in the window "
                          f"(RequestUUID {answer.get('RequestUUID', '?')})")
    return files


def _wait_for_package(
    settings: Settings, actions: PackageActions, scope: dict[str, object], package_id: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Poll the package list until the package is final; its PackageInfo once Package_Success."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    deadline = time.monotonic() + args.timeout
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[state]}"))
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(package_id, total=100, state="Package_Running")
        while True:
            info, request_uuid = _package_info(settings, actions, scope, package_id)
            bar.update(task, completed=int(info.get("Progress") or 0), state=info["State"])
            if info["State"] in _FINAL_STATES:
                break
            if time.monotonic() > deadline:
                raise PackageFailedError(f"package {package_id} still {info['State']} after "
                                         f"{args.timeout:g} s (RequestUUID {request_uuid})")
            time.sleep(args.poll)
        if info["State"] == "Package_Success":
            bar.update(task, completed=100)
    if info["State"] != "Package_Success":
        reason = f": {info['Message']}" if info.get("Message") else ""
        raise PackageFailedError(
            f"package {package_id} ended {info['State']}{reason} (RequestUUID {request_uuid})")
    return info


def _package_info(
    settings: Settings, actions: PackageActions, scope: dict[str, object], package_id: str
) -> tuple[dict[str, Any], str]:
    """The package's PackageInfo, paging through the list (newest first: usually page one)."""
    offset = 0
    while True:
        answer = call_api(settings, actions.listing, {**scope, "Offset": offset, "Limit": 100})
        rows: list[dict[str, Any]] = answer.get("DataSet", [])
        for row in rows:
            if row.get("Id") == package_id:
                return row, str(answer.get("RequestUUID", "?"))
        offset += len(rows)
        if not rows or offset >= int(answer.get("TotalCount", 0)):
            raise PackageFailedError(f"package {package_id} is not listed any more "
                                     f"(RequestUUID {answer.get('RequestUUID', '?')})")


def _download(url: str, out: Path, info: dict[str, Any], request_uuid: str) -> int:
    """Stream `url` into `out` (via a .part file), checking size and sha256; the bytes written."""
    import hashlib

    import httpx

    partial = out.with_name(out.name + ".part")
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", url, timeout=60.0) as response, partial.open("wb") as sink:
            if response.status_code != 200:
                raise PackageFailedError(f"download refused: HTTP {response.status_code} from "
                                         f"{url.split('?')[0]} (RequestUUID {request_uuid})")
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                sink.write(chunk)
        size = partial.stat().st_size
        _check_download(info, size, digest.hexdigest(), request_uuid)
        partial.replace(out)
    except httpx.HTTPError as exc:
        raise PackageFailedError(f"download failed: {exc} (RequestUUID {request_uuid})") from exc
    except OSError as exc:
        raise PackageFailedError(f"cannot write {out}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return size


def _check_download(info: dict[str, Any], size: int, sha256: str, request_uuid: str) -> None:
    expected_size, checksum = info.get("Size"), str(info.get("Checksum") or "")
    if expected_size and size != int(expected_size):
        raise PackageFailedError(f"download is {size} bytes, the package {expected_size} "
                                 f"(RequestUUID {request_uuid})")
    if checksum and checksum != sha256:
        raise PackageFailedError(f"download's sha256 {sha256} is not the package's Checksum "
                                 f"{checksum} (RequestUUID {request_uuid})")


# -- main -------------------------------------------------------------------------------------

# Each entry registers one subcommand; add yours here.
COMMANDS: list[Register] = [
    add_serve, add_worker, add_keys, add_call, add_audit, add_pgsql, add_mongodb, add_package,
    add_pack,
]


def build_parser(commands: Sequence[Register] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dblogpack", parents=[COMMON],
        description="Packages PostgreSQL and MongoDB log entries on request.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands:
        register(subparsers)
    attach_examples(parser)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    # `pack` is the one command timed as a whole process (a small window must take < 50 ms):
    # building every other command's parser would cost it more than its own work.
    if argv[:1] == ["pack"]:
        return build_parser([add_pack])
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    args = _parser_for(given).parse_args(given)
    code = _run(args)
    if argv is None and args.command == "pack":
        _end_process(code)
    return code


def _end_process(code: int) -> NoReturn:
    """End a `pack` process whose package is written and closed, skipping the interpreter's
    teardown (freeing every module and object one by one): ~10 ms of a 1-hour window's ~140.

    Only for the process's own command line (a caller passing argv gets its return), and
    only once pack's threads, worker processes and files are closed, as run_pack leaves them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args))
    except CallFailedError as exc:
        print(f"dblogpack {args.command}: {exc.message}", file=sys.stderr)
        return 1
    except DblogpackError as exc:
        print(f"dblogpack {args.command}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file or directory of this machine (data dir, --out, a key file): one line, no trace.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dblogpack {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
