"""`package`: submit a package through the signed API, wait with a progress bar, download it
and check its size and sha256."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from dblogpack.cli.client import call_api, show_answer
from dblogpack.cli.common import COMMON, load
from dblogpack.cli.resources import PLACEMENT_FLAGS, params_from, placement_parent
from dblogpack.errors import ConfigError, DblogpackError

if TYPE_CHECKING:
    from pathlib import Path

    from dblogpack.settings import Settings


PACKAGE_EXAMPLE = """\
examples:
  dblogpack --endpoint http://dblogpack:8080/ package mongodb --cluster-id umongodb-ab12cd34 \\
      --node-id udb-ef56gh78 --type slow --begin 1714550400 --end 1714554000 --wait
  dblogpack package pgsql --instance-id upgsql-ab12cd34 --type error \\
      --file postgresql-2024-05-01_000000.log --wait --out errors.tar.gz
Without --file, pgsql packages every file ListUPgSQLLog lists for the window.
"""
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


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
    mongodb = kinds.add_parser("mongodb", parents=[COMMON, placement_parent(), common],
                               help="a MongoDB node's slow or error log", epilog=PACKAGE_EXAMPLE,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    mongodb.add_argument("--cluster-id", required=True, help="ClusterId")
    mongodb.add_argument("--node-id", required=True, help="NodeId")
    mongodb.add_argument("--type", dest="log_type", required=True, choices=["slow", "error"])
    pgsql = kinds.add_parser("pgsql", parents=[COMMON, placement_parent(), common],
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
    scope = {**params_from(args, PLACEMENT_FLAGS), **_package_scope(args)}
    answer = call_api(settings, actions.backup, {**scope, **_backup_params(settings, args, name)})
    package_id = str(answer[actions.package_id])
    if not args.wait:
        return show_answer({actions.package_id: package_id, "Name": name})
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
        **params_from(args, PLACEMENT_FLAGS), "InstanceID": args.instance_id, **listing})
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

    from dblogpack.model import PackageState

    final_states = {state.value for state in PackageState if state is not PackageState.RUNNING}
    deadline = time.monotonic() + args.timeout
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[state]}"))
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(package_id, total=100, state=PackageState.RUNNING.value)
        while True:
            info, request_uuid = _package_info(settings, actions, scope, package_id)
            bar.update(task, completed=int(info.get("Progress") or 0), state=info["State"])
            if info["State"] in final_states:
                break
            if time.monotonic() > deadline:
                raise PackageFailedError(f"package {package_id} still {info['State']} after "
                                         f"{args.timeout:g} s (RequestUUID {request_uuid})")
            time.sleep(args.poll)
        if info["State"] == PackageState.SUCCESS:
            bar.update(task, completed=100)
    # Deleted while waited for: listed in one of these until the sweeper is done with it, then
    # not at all (see _package_info).
    deleted = {PackageState.DELETING, PackageState.DELETED, PackageState.DELETE_FAILED}
    if info["State"] in deleted:
        raise PackageFailedError(f"package {package_id} was deleted, or cancelled: it is "
                                 f"{info['State']} (RequestUUID {request_uuid})")
    if info["State"] != PackageState.SUCCESS:
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
            raise PackageFailedError(f"package {package_id} is not listed any more: it was "
                                     "deleted, or cancelled while queued "
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
