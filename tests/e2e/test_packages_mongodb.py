"""MongoDB packages through the HTTP API of a real `dblogpack serve` with in-process workers:
BackupUMongoDBLog for SlowLog and ErrorLog on a `dir` node whose 4.4+ JSON log was generated with
recent timestamps, listed until done, linked, downloaded, checked against the generator's record,
deleted; every rule of the window, the node and the name; tenants; and GetUMongoDBLog paging.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.apiserver import (
    Answer,
    ApiClient,
    ApiServer,
    KeyPair,
    ok,
    serve_for_test,
    wait_built,
)

from dblogpack.model import LogKind, TimeWindow
from dblogpack.synth import Mix, Plan, build, generate, read_spans, select
from dblogpack.synth.generate import GenerateResult

DAY = 86400
LIST = "ListUMongoDBLogPackage"


@dataclass
class Node:
    """A registered cluster with a primary and a mongos, both reading the generated log."""

    cluster_id: str
    primary: str
    mongos: str
    log_dir: Path
    logs: GenerateResult
    now: int

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.now - 3000, self.now - 600)

    def expected(self, kind: LogKind) -> tuple[int, bytes]:
        """Entries and member bytes a package of `window` and `kind` must hold."""
        record = self.logs.record
        chosen = select(record.files, record.blocks(), self.window, kind)
        data = b"".join(
            b"".join(read_spans(self.log_dir / name, spans))
            for name, spans in chosen.spans.items()
        )
        return chosen.entries, data


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    workers = {"DBLOGPACK_WORKERS": "2"}
    with serve_for_test(request, tmp_path_factory, workers, backend="sqlite") as api_server:
        yield api_server


@pytest.fixture(scope="module")
def node(server: ApiServer, client: ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Node:
    log_dir = tmp_path_factory.mktemp("mongo-node")
    now = int(time.time())
    plan = Plan(start=now - 3600, end=now - 60, size=600_000, seed=11, rotate_bytes=250_000,
                mix=Mix(slow=0.1, error=0.05, other=0.85))
    logs = generate(build("mongo-json", style="iso-utc"), log_dir / "mongod.log", plan)
    admin = server.admin
    cluster = ok(client.call("RegisterUMongoDBCluster", admin, {"Name": "orders"}))["ClusterId"]
    source = {"SourceType": "dir", "LogDir": str(log_dir), "LogPattern": "mongod.log*"}
    nodes = {
        role: ok(client.call("RegisterUMongoDBNode", admin,
                             {"ClusterId": cluster, "Role": role, **source}))["NodeId"]
        for role in ("primary", "mongos")
    }
    return Node(cluster, nodes["primary"], nodes["mongos"], log_dir, logs, now)


def backup(client: ApiClient, key: KeyPair, node: Node, **params: object) -> Answer:
    request: dict[str, object] = {
        "ClusterId": node.cluster_id, "NodeId": node.primary, "Name": "slow-1",
        "Begin": int(node.window.begin or 0), "End": int(node.window.end or 0),
        "LogType": "SlowLog",
    }
    request.update(params)
    return client.call("BackupUMongoDBLog", key, request)


def wait_done(client: ApiClient, key: KeyPair, cluster_id: str, package_id: str) -> dict[str, Any]:
    return wait_built(client, key, LIST, {"ClusterId": cluster_id, "Limit": 100}, package_id)


@pytest.fixture(scope="module")
def packages(client: ApiClient, server: ApiServer, node: Node) -> dict[LogKind, dict[str, Any]]:
    """A SlowLog and an ErrorLog package of the node, built."""
    admin = server.admin
    ids = {
        LogKind.SLOW: ok(backup(client, admin, node, Name="slow-1"))["PackageId"],
        LogKind.ERROR: ok(backup(client, admin, node, Name="error-1", LogType="ErrorLog"))[
            "PackageId"
        ],
    }
    return {kind: wait_done(client, admin, node.cluster_id, pid) for kind, pid in ids.items()}


def url_of(client: ApiClient, key: KeyPair, node: Node, package_id: str, **extra: object) -> Answer:
    return client.call("DescribeUMongoDBBackupURL", key,
                       {"ClusterId": node.cluster_id, "PackageId": package_id, **extra})


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.mark.parametrize("kind", [LogKind.SLOW, LogKind.ERROR])
def test_a_package_holds_exactly_the_entries_of_its_window_and_type(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]],
    kind: LogKind,
) -> None:
    row = packages[kind]
    entries, data = node.expected(kind)
    assert entries > 0
    assert row["State"] == "Package_Success", row
    assert row["PackageType"] == {LogKind.SLOW: "SlowLog", LogKind.ERROR: "ErrorLog"}[kind]
    assert (row["ClusterId"], row["NodeId"], row["Role"]) == (
        node.cluster_id, node.primary, "primary"
    )
    assert (row["Begin"], row["End"]) == (node.window.begin, node.window.end)
    assert row["EntryCount"] == entries and row["Progress"] == 100
    assert row["FinishTime"] >= row["CreateTime"] > 0 and row["ExpireTime"] > row["FinishTime"]

    link = ok(url_of(client, server.admin, node, row["Id"]))
    assert link["IntranetAddress"].endswith(f"/{row['Name']}.tar.gz")
    response = httpx.get(link["InternetAddress"], timeout=30)
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{row["Checksum"]}"'
    assert int(response.headers["content-length"]) == row["Size"] == len(response.content)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{row["Name"]}.tar.gz"'
    )
    files = members(response.content)
    manifest = json.loads(files["manifest.json"])
    assert manifest["totals"]["entries"] == entries
    assert manifest["package"]["id"] == row["Id"] and manifest["package"]["kind"] == "mongodb"
    packed = b"".join(files[f["member"]] for f in manifest["files"] if f["member"])
    assert packed == data


def test_the_same_request_again_returns_the_same_package(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]]
) -> None:
    again = ok(backup(client, server.admin, node, Name="slow-1"))
    assert again["PackageId"] == packages[LogKind.SLOW]["Id"]
    other = backup(client, server.admin, node, Name="slow-1", LogType="ErrorLog")
    assert other.ret_code == 1002 and "slow-1" in other.message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"Begin": -8 * DAY, "End": -8 * DAY + 600}, "more than 7 days"),
        ({"Begin": -3000, "End": -3000}, "End must be after Begin"),
        ({"Begin": -3000, "End": -3600}, "End must be after Begin"),
        ({"Begin": -6 * DAY, "End": -5 * DAY + 1}, "at most 86400 s (24 h)"),
        ({"LogType": "SlowQueries"}, "LogType must be SlowLog or ErrorLog"),
        ({"Name": "no spaces please"}, "Name must be 1 to 64 characters"),
        ({"Name": "x" * 65}, "Name must be 1 to 64 characters"),
        ({"NodeId": "udb-elsewhere"}, "is not a node of cluster"),
    ],
)
def test_a_request_breaking_a_rule_is_refused_saying_which_and_what_is_allowed(
    client: ApiClient, server: ApiServer, node: Node, change: dict[str, object], words: str
) -> None:
    # Begin and End are given as offsets from now.
    params = {k: node.now + v if k in ("Begin", "End") and isinstance(v, int) else v
              for k, v in change.items()}
    answer = backup(client, server.admin, node, **{"Name": "rule-check", **params})
    assert answer.ret_code == 230, answer.body
    assert words in answer.message


@pytest.mark.parametrize("missing", ["ClusterId", "NodeId", "Name", "Begin", "End", "LogType"])
def test_a_missing_parameter_is_named(
    client: ApiClient, server: ApiServer, node: Node, missing: str
) -> None:
    params: dict[str, object] = {
        "ClusterId": node.cluster_id, "NodeId": node.primary, "Name": "rule-check",
        "Begin": node.now - 3000, "End": node.now - 600, "LogType": "SlowLog",
    }
    del params[missing]
    answer = client.call("BackupUMongoDBLog", server.admin, params)
    assert answer.ret_code == 220, answer.body
    assert f"Missing parameter {missing}" in answer.message


def test_slow_log_of_a_mongos_is_refused_and_its_error_log_accepted(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]]
) -> None:
    refused = backup(client, server.admin, node, NodeId=node.mongos, Name="router-slow")
    assert refused.ret_code == 230 and "mongos" in refused.message
    accepted = backup(client, server.admin, node, NodeId=node.mongos, Name="router-errors",
                      LogType="error_log")
    package_id = ok(accepted)["PackageId"]
    row = wait_done(client, server.admin, node.cluster_id, package_id)
    assert (row["State"], row["Role"], row["PackageType"]) == (
        "Package_Success", "mongos", "ErrorLog"
    )


def test_another_project_sees_nothing_of_the_cluster_or_its_packages(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]]
) -> None:
    project = ok(client.call("CreateProject", server.admin, {"Name": "other"}))["ProjectId"]
    stranger = KeyPair.of(ok(client.call("CreateAccessKey", server.admin,
                                         {"ProjectId": project, "Admin": False})))
    package_id = packages[LogKind.SLOW]["Id"]
    for action, params in [
        (LIST, {"ClusterId": node.cluster_id}),
        ("DescribeUMongoDBBackupURL", {"ClusterId": node.cluster_id, "PackageId": package_id}),
        ("DeleteUMongoDBLogPackage", {"ClusterId": node.cluster_id, "PackageId": package_id}),
    ]:
        answer = client.call(action, stranger, params)
        assert answer.ret_code == 1001, (action, answer.body)
    assert ok(client.call(LIST, server.admin, {"ClusterId": node.cluster_id}))["TotalCount"] >= 2


def test_a_cluster_of_another_region_or_zone_is_not_found(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]]
) -> None:
    package_id = packages[LogKind.SLOW]["Id"]
    for placement in ({"Region": "us-west1"}, {"Zone": "cn-bj2-09"}):
        listed = client.call(LIST, server.admin, {"ClusterId": node.cluster_id, **placement})
        assert listed.ret_code == 1001, listed.body
        link = url_of(client, server.admin, node, package_id, **placement)
        assert link.ret_code == 1001, link.body
    same = {"Region": "cn-bj2", "Zone": "cn-bj2-01"}  # the server's defaults, used at registration
    assert ok(client.call(LIST, server.admin, {"ClusterId": node.cluster_id, **same}))["DataSet"]


def test_a_deleted_package_is_gone_from_the_list_and_its_link(
    client: ApiClient, server: ApiServer, node: Node
) -> None:
    admin = server.admin
    package_id = ok(backup(client, admin, node, Name="to-delete", LogType="ErrorLog"))["PackageId"]
    assert wait_done(client, admin, node.cluster_id, package_id)["State"] == "Package_Success"
    link = ok(url_of(client, admin, node, package_id, ValidTime=60))["InternetAddress"]
    assert httpx.get(link, timeout=30).status_code == 200

    params = {"ClusterId": node.cluster_id, "PackageId": package_id}
    ok(client.call("DeleteUMongoDBLogPackage", admin, params))
    rows = ok(client.call(LIST, admin, {"ClusterId": node.cluster_id, "Limit": 100}))["DataSet"]
    assert package_id not in {r["Id"] for r in rows}
    assert httpx.get(link, timeout=30).status_code == 404
    again = client.call("DeleteUMongoDBLogPackage", admin, params)
    assert again.ret_code == 1003 and "already deleted" in again.message
    assert url_of(client, admin, node, package_id).ret_code == 1003
    # The name is free again once its package is deleted.
    ok(backup(client, admin, node, Name="to-delete", LogType="ErrorLog", Begin=node.now - 2000))


def test_the_list_pages_with_offset_and_limit(
    client: ApiClient, server: ApiServer, node: Node, packages: dict[LogKind, dict[str, Any]]
) -> None:
    everything = ok(client.call(LIST, server.admin, {"ClusterId": node.cluster_id, "Limit": 100}))
    total = everything["TotalCount"]
    pages = [
        ok(client.call(LIST, server.admin,
                       {"ClusterId": node.cluster_id, "Offset": offset, "Limit": 1}))
        for offset in range(total)
    ]
    assert all(p["TotalCount"] == total and len(p["DataSet"]) == 1 for p in pages)
    assert [p["DataSet"][0]["Id"] for p in pages] == [r["Id"] for r in everything["DataSet"]]
    only_mongos = ok(client.call(LIST, server.admin,
                                 {"ClusterId": node.cluster_id, "NodeId": node.mongos}))
    assert all(r["NodeId"] == node.mongos for r in only_mongos["DataSet"])


def get_log(client: ApiClient, key: KeyPair, node: Node, **params: object) -> dict[str, Any]:
    request: dict[str, object] = {
        "ClusterId": node.cluster_id, "NodeId": node.primary, "LogType": "ErrorLog",
        "Begin": node.window.begin, "End": node.window.end,
    }
    request.update(params)
    return ok(client.call("GetUMongoDBLog", key, request))


def test_get_log_returns_max_line_lines_and_continues_from_next_time(
    client: ApiClient, server: ApiServer, node: Node
) -> None:
    entries, data = node.expected(LogKind.ERROR)
    assert entries > 12
    expected_lines = data.decode().splitlines(keepends=True)
    first = get_log(client, server.admin, node, MaxLine=5)
    assert (first["IsTruncate"], first["LineCount"], first["MaxLine"]) == (True, 5, 5)
    assert first["Log"] == "".join(expected_lines[:5])
    second = get_log(client, server.admin, node, MaxLine=7, Begin=first["NextTime"])
    assert second["Log"] == "".join(expected_lines[5:12])
    whole = get_log(client, server.admin, node, MaxLine=100_000)
    assert whole["MaxLine"] == 10_000 and whole["IsTruncate"] is False
    assert whole["Log"] == data.decode() and whole["NextTime"] == node.window.end
