"""`pgsql` and `mongodb`: registering, listing and removing instances, clusters and nodes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dblogpack.cli.client import call_api, show_answer
from dblogpack.cli.common import COMMON, BuildParams, load
from dblogpack.errors import ConfigError

# CLI flag → API parameter of the source settings (DESIGN §4).
_SOURCE_FLAGS = {
    "source_type": "SourceType", "dsn": "DSN", "log_dir": "LogDir", "log_pattern": "LogPattern",
    "ssh_host": "SSHHost", "ssh_port": "SSHPort", "ssh_user": "SSHUser",
    "ssh_known_host_key": "SSHKnownHostKey", "log_format": "LogFormat",
    "log_line_prefix": "LogLinePrefix", "log_timezone": "LogTimezone",
}
PLACEMENT_FLAGS = {"region": "Region", "zone": "Zone", "project": "ProjectId"}


def placement_parent() -> argparse.ArgumentParser:
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


def params_from(args: argparse.Namespace, mapping: dict[str, str]) -> dict[str, object]:
    return {
        api: getattr(args, flag) for flag, api in mapping.items()
        if getattr(args, flag, None) is not None
    }


def _source_params(args: argparse.Namespace) -> dict[str, object]:
    params = params_from(args, _SOURCE_FLAGS)
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
    parser.set_defaults(run=lambda args: show_answer(call_api(load(args), action, build(args))))
    return parser


def _add_list_command(
    actions: Any, action: str, help_text: str, placement: argparse.ArgumentParser
) -> None:
    """`list`: one page (--offset, --limit) of what a placement holds."""
    parser = _api_command(
        actions, "list", action, help_text, [placement],
        lambda a: {"Offset": a.offset, "Limit": a.limit, **params_from(a, PLACEMENT_FLAGS)},
    )
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=100)


def add_pgsql(subparsers: Any) -> None:
    group = subparsers.add_parser("pgsql", parents=[COMMON], help="PostgreSQL instances (admin)")
    actions = group.add_subparsers(dest="pgsql_command", required=True)
    placement, source = placement_parent(), _source_parent()
    add = _api_command(
        actions, "add", "RegisterUPgSQLInstance", "register an instance", [placement, source],
        lambda a: {"Name": a.name, **params_from(a, PLACEMENT_FLAGS),
                   **params_from(a, {"instance_id": "InstanceID"}), **_source_params(a)},
    )
    add.add_argument("--name", required=True)
    add.add_argument("--instance-id", help="InstanceID (default: generated upgsql-…)")
    _add_list_command(actions, "ListUPgSQLInstance", "list instances", placement)
    _api_command(
        actions, "remove", "DeregisterUPgSQLInstance", "deregister an instance", [placement],
        lambda a: {"InstanceID": a.instance_id, **params_from(a, PLACEMENT_FLAGS)},
    ).add_argument("instance_id", metavar="INSTANCE_ID")


def add_mongodb(subparsers: Any) -> None:
    group = subparsers.add_parser("mongodb", parents=[COMMON], help="MongoDB clusters (admin)")
    actions = group.add_subparsers(dest="mongodb_command", required=True)
    placement, source = placement_parent(), _source_parent()
    cluster = _api_command(
        actions, "add-cluster", "RegisterUMongoDBCluster", "register a cluster", [placement],
        lambda a: {"Name": a.name, **params_from(a, PLACEMENT_FLAGS),
                   **params_from(a, {"cluster_id": "ClusterId"})},
    )
    cluster.add_argument("--name", required=True)
    cluster.add_argument("--cluster-id", help="ClusterId (default: generated umongodb-…)")
    node = _api_command(
        actions, "add-node", "RegisterUMongoDBNode", "add a node to a cluster",
        [placement, source],
        lambda a: {"ClusterId": a.cluster_id, "Role": a.role,
                   **params_from(a, {**PLACEMENT_FLAGS, "node_id": "NodeId"}),
                   **_source_params(a)},
    )
    node.add_argument("cluster_id", metavar="CLUSTER_ID")
    node.add_argument("--role", required=True,
                      choices=["primary", "secondary", "arbiter", "mongos", "configsvr"])
    node.add_argument("--node-id", help="NodeId (default: generated)")
    _add_list_command(actions, "ListUMongoDBInstances", "list clusters and their nodes", placement)
    _api_command(
        actions, "remove", "DeregisterUMongoDBCluster", "deregister a cluster", [placement],
        lambda a: {"ClusterId": a.cluster_id, **params_from(a, PLACEMENT_FLAGS)},
    ).add_argument("cluster_id", metavar="CLUSTER_ID")
