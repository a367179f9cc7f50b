"""Cancelling a queued package through the official SDK against a real `dblogpack serve`, on
SQLite and on PostgreSQL metadata: Delete…LogPackage of a package no worker has claimed answers
0, the package is Package_Deleted at once (unlisted, its name and its node's slot free again);
`dblogpack package --wait` on it ends with one clear line; and a `dblogpack worker` started
afterwards builds what is left in the queue, never a cancelled package. The serve runs no
workers, so the packages stay queued until the test starts one.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.support.acceptance import generate_node_logs, recent_window, sdk, wait_for_package
from tests.support.apiserver import DBLOGPACK, ApiServer, serve_for_test
from tests.support.processes import terminate
from ucloud.client import Client
from ucloud.core.exc import RetCodeException

from dblogpack.synth import Plan, build, generate

MONGO_LIST = "ListUMongoDBLogPackage"
PG_LIST = "ListUPgSQLLogPackage"
PG_START = 1714564800  # 2024-05-01T12:00:00Z: PostgreSQL packages have no age limit


@dataclass
class World:
    server: ApiServer
    client: Client
    cluster_id: str
    node_id: str
    instance_id: str
    pg_file: str
    window: tuple[int, int]
    # Package ids the tests leave queued (to be built) and cancelled (never to be built).
    queued: dict[str, dict[str, Any]]
    cancelled: dict[str, dict[str, Any]]

    def mongodb(self, name: str) -> str:
        begin, end = self.window
        return str(self.client.invoke("BackupUMongoDBLog", {
            "ClusterId": self.cluster_id, "NodeId": self.node_id, "Name": name,
            "Begin": begin, "End": end, "LogType": "ErrorLog",
        })["PackageId"])

    def pgsql(self, name: str) -> str:
        return str(self.client.invoke("BackupUPgSQLLog", {
            "InstanceID": self.instance_id, "BackupName": name, "BackupFile": [self.pg_file],
            "LogType": "error",
        })["BackupID"])

    def listed(self, action: str, scope: dict[str, Any]) -> dict[str, dict[str, Any]]:
        answer = self.client.invoke(action, {**scope, "Limit": 100})
        return {row["Id"]: row for row in answer["DataSet"]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A serve without workers; a MongoDB node and a PostgreSQL instance reading generated logs."""
    with serve_for_test(request, tmp_path_factory) as server:
        client = sdk(server, server.admin)
        logs_begin, logs_end, window = recent_window(time.time())
        mongo_dir = tmp_path_factory.mktemp("cancel-mongo")
        generate_node_logs(mongo_dir, "mongo-json", logs_begin, logs_end, seed=21, size=200_000)
        cluster_id = str(client.invoke("RegisterUMongoDBCluster", {"Name": "c"})["ClusterId"])
        node_id = str(client.invoke("RegisterUMongoDBNode", {
            "ClusterId": cluster_id, "Role": "primary", "SourceType": "dir",
            "LogDir": str(mongo_dir), "LogPattern": "mongod.log*",
        })["NodeId"])
        pg_dir = tmp_path_factory.mktemp("cancel-pg")
        generate(build("pg-stderr", log_line_prefix="%m [%p] "), pg_dir / "postgresql.log",
                 Plan(start=PG_START, end=PG_START + 3600, size=100_000, seed=22))
        instance_id = str(client.invoke("RegisterUPgSQLInstance", {
            "Name": "p", "SourceType": "dir", "LogDir": str(pg_dir), "LogPattern": "*.log",
        })["InstanceID"])
        assert window.begin is not None and window.end is not None
        yield World(server, client, cluster_id, node_id, instance_id, "postgresql.log",
                    (int(window.begin), int(window.end)), {}, {})


def _refused(call: Any, *args: Any) -> RetCodeException:
    with pytest.raises(RetCodeException) as refused:
        call(*args)
    return refused.value


def test_a_queued_mongodb_package_is_cancelled_at_once(world: World) -> None:
    scope = {"ClusterId": world.cluster_id}
    first, second = world.mongodb("night-1"), world.mongodb("night-2")
    assert world.listed(MONGO_LIST, scope)[first]["Progress"] == 0
    assert _refused(world.mongodb, "night-3").code == 1004  # the node's two slots are taken
    answer = world.client.invoke("DeleteUMongoDBLogPackage", {**scope, "PackageId": first})
    assert answer["RetCode"] == 0
    assert first not in world.listed(MONGO_LIST, scope)
    link = _refused(world.client.invoke, "DescribeUMongoDBBackupURL",
                    {**scope, "PackageId": first})
    assert link.code == 1003 and "Package_Deleted" in link.message
    again = _refused(world.client.invoke, "DeleteUMongoDBLogPackage",
                     {**scope, "PackageId": first})
    assert again.code == 1003 and "already deleted" in again.message
    renewed = world.mongodb("night-1")  # its name and its node's slot are free again
    assert renewed != first
    world.cancelled[first] = scope
    world.queued.update({second: scope, renewed: scope})


def test_a_queued_pgsql_package_is_cancelled_at_once(world: World) -> None:
    scope = {"InstanceID": world.instance_id}
    cancelled, kept = world.pgsql("wrong-window"), world.pgsql("right-window")
    answer = world.client.invoke("DeleteUPgSQLLogPackage", {**scope, "BackupID": cancelled})
    assert answer["RetCode"] == 0
    assert set(world.listed(PG_LIST, scope)) == {kept}
    link = _refused(world.client.invoke, "GetUPgSQLLogPackageURL",
                    {**scope, "BackupID": cancelled})
    assert link.code == 1003 and "Package_Deleted" in link.message
    world.cancelled[cancelled] = scope
    world.queued[kept] = scope


def test_package_wait_ends_with_a_clear_line_when_the_package_is_cancelled(
    world: World
) -> None:
    server, scope = world.server, {"InstanceID": world.instance_id}
    env = {**os.environ, "DBLOGPACK_ENDPOINT": server.url,
           "DBLOGPACK_PUBLIC_KEY": server.admin.public_key,
           "DBLOGPACK_PRIVATE_KEY": server.admin.private_key}
    waiting = subprocess.Popen(
        [str(DBLOGPACK), "package", "pgsql", "--instance-id", world.instance_id, "--type",
         "error", "--file", world.pg_file, "--name", "cli-waits", "--wait", "--poll", "0.2",
         "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not (ids := [i for i, row in world.listed(PG_LIST, scope).items()
                           if row["Name"] == "cli-waits"]):
            assert waiting.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        world.client.invoke("DeleteUPgSQLLogPackage", {**scope, "BackupID": ids[0]})
        _, stderr = waiting.communicate(timeout=30)
    finally:
        terminate(waiting, timeout=10)
    assert waiting.returncode == 1
    # Which line depends on the poll that sees it: the package listed as being deleted, or
    # no longer listed once the sweeper is done with it.
    assert (
        f"package {ids[0]} was deleted, or cancelled: it is Package_Delet" in stderr
        or f"package {ids[0]} is not listed any more: it was deleted, or cancelled" in stderr
    ), stderr
    world.cancelled[ids[0]] = scope


def test_a_worker_builds_what_is_left_and_never_a_cancelled_package(world: World) -> None:
    # A pair of its own, so that run alone it still has one package to build and one to skip;
    # cancelled first, as the instance's two slots may already hold right-window.
    scope = {"InstanceID": world.instance_id}
    cancelled = world.pgsql("never-built")
    world.client.invoke("DeleteUPgSQLLogPackage", {**scope, "BackupID": cancelled})
    world.cancelled[cancelled] = scope
    world.queued[world.pgsql("left-for-worker")] = scope
    server = world.server
    env = {**os.environ, "DBLOGPACK_WORKERS": "1", "DBLOGPACK_LOG_LEVEL": "INFO"}
    if server.database_url:
        env["DBLOGPACK_DATABASE_URL"] = server.database_url
    log = server.data_dir.parent / "cancel-worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([str(DBLOGPACK), "--data-dir", str(server.data_dir), "worker"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        for package_id, scope in world.queued.items():
            action = MONGO_LIST if "ClusterId" in scope else PG_LIST
            info = wait_for_package(world.client, action, scope, package_id, timeout=60)
            assert info["State"] == "Package_Success", (info, log.read_text())
    finally:
        terminate(worker, timeout=30)
    worker_log = log.read_text()
    stored = {path.parent.parent.name for path in server.data_dir.rglob("*.tar.gz")}
    for package_id in world.cancelled:
        assert package_id not in worker_log and package_id not in stored
    assert set(world.queued) <= stored
