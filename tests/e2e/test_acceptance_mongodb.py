"""Acceptance (issue #3): MongoDB node logs packaged through the official SDK against a running
`dblogpack serve`, read from a directory and over SSH from a real sshd; every BackupUMongoDBLog
rule answered with its code and message; and `dblogpack package mongodb --wait` end to end.

Node logs are generated (4.4+ JSON and legacy text, recent timestamps, rotated); what a package
must hold comes from the generator's record.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.acceptance import (
    NodeLogs,
    Package,
    download,
    generate_node_logs,
    recent_window,
    sdk,
    wait_for_package,
)
from tests.support.apiserver import DBLOGPACK, ApiServer, KeyPair, start_server
from tests.support.sshd import Sshd
from ucloud.client import Client
from ucloud.core.exc import RetCodeException

from dblogpack.model import LogKind, TimeWindow

LIST = "ListUMongoDBLogPackage"
KINDS = {"SlowLog": LogKind.SLOW, "ErrorLog": LogKind.ERROR}
DAY = 24 * 3600


@dataclass
class Node:
    node_id: str
    logs: NodeLogs


@dataclass
class World:
    server: ApiServer
    admin: KeyPair
    client: Client
    cluster_id: str
    nodes: dict[str, Node]
    window: TimeWindow
    mongos_id: str
    foreign_node_id: str

    def backup_params(self, node: str, kind: str, name: str | None = None) -> dict[str, Any]:
        assert self.window.begin is not None and self.window.end is not None
        return {"ClusterId": self.cluster_id, "NodeId": self.nodes[node].node_id,
                "Name": name or f"acc-{uuid.uuid4().hex[:10]}", "Begin": int(self.window.begin),
                "End": int(self.window.end), "LogType": kind}


def _register_node(
    client: Client, cluster_id: str, role: str, source: dict[str, Any]
) -> str:
    answer = client.invoke("RegisterUMongoDBNode", {"ClusterId": cluster_id, "Role": role,
                                                    **source})
    return str(answer["NodeId"])


def _sources(sshd: Sshd, directory: Path) -> dict[str, dict[str, Any]]:
    return {
        "dir": {"SourceType": "dir", "LogDir": str(directory), "LogPattern": "mongod.log*"},
        "ssh": {"SourceType": "ssh", "SSHHost": "127.0.0.1", "SSHPort": sshd.port,
                "SSHUser": sshd.user, "SSHPrivateKey": sshd.client_key,
                "SSHKnownHostKey": sshd.host_public_key, "LogDir": str(directory),
                "LogPattern": "mongod.log*"},
    }


@pytest.fixture(scope="module")
def world(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A serve with two package workers; one cluster whose nodes read generated JSON and legacy
    logs by `dir` and by `ssh` (the same files both ways), a mongos, and a second cluster."""
    server = start_server(tmp_path_factory.mktemp("acc-mongo") / "data",
                          {"DBLOGPACK_WORKERS": "2"})
    try:
        client = sdk(server, server.admin)
        logs_begin, logs_end, window = recent_window(time.time())
        cluster_id = str(client.invoke("RegisterUMongoDBCluster", {"Name": "shop"})["ClusterId"])
        nodes: dict[str, Node] = {}
        for seed, fmt in enumerate(("mongo-json", "mongo-legacy"), start=41):
            directory = sshd.make_readable_dir(f"acc-{fmt}")
            logs = generate_node_logs(directory, fmt, logs_begin, logs_end, seed)
            for via, source in _sources(sshd, directory).items():
                node_id = _register_node(client, cluster_id, "secondary", source)
                nodes[f"{fmt}-{via}"] = Node(node_id, logs)
        json_dir = _sources(sshd, nodes["mongo-json-dir"].logs.directory)["dir"]
        mongos_id = _register_node(client, cluster_id, "mongos", json_dir)
        other = str(client.invoke("RegisterUMongoDBCluster", {"Name": "other"})["ClusterId"])
        foreign = _register_node(client, other, "primary", json_dir)
        yield World(server, server.admin, client, cluster_id, nodes, window, mongos_id, foreign)
    finally:
        server.stop()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "node", ["mongo-json-dir", "mongo-json-ssh", "mongo-legacy-dir", "mongo-legacy-ssh"]
)
def test_a_package_holds_exactly_the_recorded_entries_and_deleting_it_removes_it(
    world: World, node: str, kind: str
) -> None:
    client, cluster = world.client, {"ClusterId": world.cluster_id}
    params = world.backup_params(node, kind)
    package_id = client.invoke("BackupUMongoDBLog", params)["PackageId"]

    info = wait_for_package(client, LIST, {**cluster, "NodeId": params["NodeId"]}, package_id)
    assert info["State"] == "Package_Success", info
    expected, count = world.nodes[node].logs.expected(world.window, KINDS[kind])
    assert count > 0 and len(expected) >= 2, "the window must span rotated files"
    assert {k: info[k] for k in ("Id", "Name", "PackageType", "ClusterId", "NodeId", "Role",
                                 "Begin", "End", "Progress", "EntryCount")} == {
        "Id": package_id, "Name": params["Name"], "PackageType": kind,
        "ClusterId": world.cluster_id, "NodeId": params["NodeId"], "Role": "secondary",
        "Begin": params["Begin"], "End": params["End"], "Progress": 100, "EntryCount": count,
    }

    links = client.invoke("DescribeUMongoDBBackupURL",
                          {**cluster, "PackageId": package_id, "ValidTime": 600})
    data = download(links["InternetAddress"])
    assert download(links["IntranetAddress"]) == data
    assert (len(data), _sha256(data)) == (info["Size"], info["Checksum"])
    package = Package.open(data)
    assert package.logs == expected
    assert package.manifest["totals"]["entries"] == count
    assert package.manifest["package"]["node_id"] == params["NodeId"]
    assert package.manifest["package"]["log_type"] == KINDS[kind].value
    assert package.manifest["window"]["begin"] == params["Begin"]

    client.invoke("DeleteUMongoDBLogPackage", {**cluster, "PackageId": package_id})
    listed = client.invoke(LIST, {**cluster, "NodeId": params["NodeId"], "Limit": 100})
    assert all(row["State"] != "Package_Success" for row in listed["DataSet"]
               if row["Id"] == package_id)
    assert httpx.get(links["InternetAddress"], timeout=30).status_code == 404
    with pytest.raises(RetCodeException) as again:
        client.invoke("DeleteUMongoDBLogPackage", {**cluster, "PackageId": package_id})
    assert again.value.code == 1003


def _refusal(world: World, params: dict[str, Any], key: KeyPair | None = None) -> Any:
    client = world.client if key is None else sdk(world.server, key)
    with pytest.raises(RetCodeException) as refused:
        client.invoke("BackupUMongoDBLog", params)
    return refused.value


def _shifted(world: World, begin: float, end: float) -> dict[str, Any]:
    return {**world.backup_params("mongo-json-dir", "SlowLog"), "Begin": int(begin),
            "End": int(end)}


RULES: dict[str, tuple[Any, int, tuple[str, ...]]] = {
    # name: (params from the world, RetCode, words the Message must contain; a|b: either)
    "begin over 7 days ago": (
        lambda w: _shifted(w, time.time() - 7 * DAY - 600, time.time() - 7 * DAY + 600),
        230, ("Begin", "7|168|604800")),
    "end equal to begin": (lambda w: _shifted(w, time.time() - 600, time.time() - 600),
                           230, ("End",)),
    "end before begin": (lambda w: _shifted(w, time.time() - 600, time.time() - 1200),
                         230, ("End",)),
    "window over 24 hours": (lambda w: _shifted(w, time.time() - DAY - 60, time.time()),
                             230, ("End", "24|86400")),
    "slow log of a mongos": (lambda w: {**w.backup_params("mongo-json-dir", "SlowLog"),
                                        "NodeId": w.mongos_id}, 230, ("mongos",)),
    "node of another cluster": (lambda w: {**w.backup_params("mongo-json-dir", "SlowLog"),
                                           "NodeId": w.foreign_node_id}, 230, ("NodeId",)),
    "unknown log type": (lambda w: w.backup_params("mongo-json-dir", "AuditLog"),
                         230, ("LogType", "SlowLog", "ErrorLog")),
    "name with a space": (lambda w: w.backup_params("mongo-json-dir", "SlowLog", "my pkg"),
                          230, ("Name",)),
    "name of 65 characters": (lambda w: w.backup_params("mongo-json-dir", "SlowLog", "n" * 65),
                              230, ("Name",)),
    "no name": (lambda w: _without(w.backup_params("mongo-json-dir", "SlowLog"), "Name"),
                220, ("Name",)),
    "no begin": (lambda w: _without(w.backup_params("mongo-json-dir", "SlowLog"), "Begin"),
                 220, ("Begin",)),
    "no log type": (lambda w: _without(w.backup_params("mongo-json-dir", "SlowLog"), "LogType"),
                    220, ("LogType",)),
}


def _without(params: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != key}


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_violation_answers_its_code_and_a_message_naming_it(
    world: World, rule: str
) -> None:
    build_params, code, words = RULES[rule]
    refused = _refusal(world, build_params(world))
    assert refused.code == code, refused
    for word in words:
        assert any(w.lower() in refused.message.lower() for w in word.split("|")), (
            word, refused.message)


def test_log_type_aliases_and_identical_retries_give_the_same_package(world: World) -> None:
    client = world.client
    params = world.backup_params("mongo-legacy-dir", "ErrorLog")
    first = client.invoke("BackupUMongoDBLog", params)["PackageId"]
    for alias in ("Error_Log", "errorlog", "ERRORLOG"):
        retried = client.invoke("BackupUMongoDBLog", {**params, "LogType": alias})
        assert retried["PackageId"] == first, alias
    conflict = _refusal(world, {**params, "LogType": "SlowLog"})
    assert conflict.code == 1002 and params["Name"] in conflict.message, conflict
    scope = {"ClusterId": world.cluster_id, "NodeId": params["NodeId"]}
    assert wait_for_package(client, LIST, scope, first)["State"] == "Package_Success"


def test_another_projects_key_finds_neither_the_cluster_nor_its_packages(world: World) -> None:
    project = world.client.invoke("CreateProject", {"Name": "elsewhere"})["ProjectId"]
    stranger = KeyPair.of(world.client.invoke(
        "CreateAccessKey", {"ProjectId": [project], "Admin": False, "Description": "stranger"}))
    refused = _refusal(world, world.backup_params("mongo-json-dir", "SlowLog"), stranger)
    assert refused.code == 1001, refused
    with pytest.raises(RetCodeException) as listing:
        sdk(world.server, stranger).invoke(LIST, {"ClusterId": world.cluster_id})
    assert listing.value.code == 1001


def _package_cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    credentials = ["--endpoint", world.server.url, "--public-key", world.admin.public_key,
                   "--private-key", world.admin.private_key]
    return subprocess.run([str(DBLOGPACK), *credentials, "package", "mongodb", *args],
                          capture_output=True, text=True, timeout=180, check=False)


def test_package_cli_waits_for_the_package_then_downloads_it(
    world: World, tmp_path: Path
) -> None:
    params = world.backup_params("mongo-json-ssh", "SlowLog")
    out = tmp_path / "slow.tar.gz"
    done = _package_cli(world, "--cluster-id", world.cluster_id, "--node-id", params["NodeId"],
                        "--type", "slow", "--begin", str(params["Begin"]), "--end",
                        str(params["End"]), "--name", params["Name"], "--poll", "0.2", "--wait",
                        "--out", str(out))
    assert done.returncode == 0, done.stderr
    expected, count = world.nodes["mongo-json-ssh"].logs.expected(world.window, LogKind.SLOW)
    package = Package.open(out.read_bytes())
    assert package.logs == expected and package.manifest["totals"]["entries"] == count
    assert f"{count} entries" in done.stdout
    assert not list(tmp_path.glob("*.part"))


def test_package_cli_says_in_one_line_why_the_server_refused(world: World) -> None:
    params = world.backup_params("mongo-json-dir", "SlowLog")
    done = _package_cli(world, "--cluster-id", world.cluster_id, "--node-id", params["NodeId"],
                        "--type", "slow", "--begin", str(params["End"]), "--end",
                        str(params["Begin"]), "--wait")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "RetCode 230" in lines[0] and "RequestUUID" in lines[0], lines
