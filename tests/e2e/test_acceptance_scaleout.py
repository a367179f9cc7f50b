"""Acceptance (issue #3): scale-out — metadata on PostgreSQL, packages on S3, one `serve` that
builds nothing (workers = 0) and two `dblogpack worker` processes: fifty packages submitted at
once over HTTP all succeed, and each is built exactly once.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.acceptance import (
    NodeLogs,
    WorkerProcess,
    generate_node_logs,
    recent_window,
    s3_store_env,
)
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok, start_server
from tests.support.pgcluster import PgCluster
from tests.support.s3server import S3Server

from dblogpack.model import TimeWindow

NODES = 25  # two packages each (slow and error): within the per-node limit of 2
PACKAGES = 2 * NODES
BUCKET = "scaleout-packages"
DEADLINE_SECONDS = 180.0
BUILDS = re.compile(r"builds package (\S+) \(attempt")


@dataclass
class Fleet:
    server: ApiServer
    workers: list[WorkerProcess]
    api: ApiClient
    admin: KeyPair
    database: str
    cluster_id: str
    node_ids: list[str]
    logs: NodeLogs
    window: TimeWindow


@pytest.fixture(scope="module")
def fleet(
    pg_metadata_cluster: PgCluster, s3server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    database = f"scaleout_{secrets.token_hex(4)}"
    pg_metadata_cluster.execute(f"CREATE DATABASE {database}")
    s3server.create_bucket(BUCKET)
    env = {"DBLOGPACK_WORKERS": "0", **s3_store_env(
        s3server.endpoint_url, BUCKET, s3server.access_key, s3server.secret_key)}
    base = tmp_path_factory.mktemp("acc-scaleout")
    server = start_server(base / "data", env, pg_metadata_cluster.sqlalchemy_url(dbname=database))
    # The workers share the serve's data directory: one server secret opens the catalog.
    worker_env = {**env, "DBLOGPACK_WORKERS": "2",
                  "DBLOGPACK_DATABASE_URL": pg_metadata_cluster.sqlalchemy_url(dbname=database)}
    workers = [WorkerProcess(server.data_dir, worker_env, i).start() for i in range(2)]
    api = ApiClient(server)
    try:
        yield _registered(server, workers, api, database, base / "node")
    finally:
        api.close()
        for worker in workers:
            worker.stop()
        server.stop()


def _registered(
    server: ApiServer, workers: list[WorkerProcess], api: ApiClient, database: str, logs_dir: Path
) -> Fleet:
    logs_begin, logs_end, window = recent_window(time.time())
    logs = generate_node_logs(logs_dir, "mongo-json", logs_begin, logs_end, seed=61,
                              size=300_000)
    admin = server.admin
    cluster_id = ok(api.call("RegisterUMongoDBCluster", admin, {"Name": "fleet"}))["ClusterId"]
    node = {"ClusterId": cluster_id, "Role": "secondary", "SourceType": "dir",
            "LogDir": str(logs.directory), "LogPattern": "mongod.log*"}
    node_ids = [ok(api.call("RegisterUMongoDBNode", admin, node))["NodeId"] for _ in range(NODES)]
    return Fleet(server, workers, api, admin, database, cluster_id, node_ids, logs, window)


def _submit(fleet: Fleet, number: int) -> str:
    assert fleet.window.begin is not None and fleet.window.end is not None
    answer = fleet.api.call("BackupUMongoDBLog", fleet.admin, {
        "ClusterId": fleet.cluster_id, "NodeId": fleet.node_ids[number // 2],
        "Name": f"fleet-{number:02d}", "Begin": int(fleet.window.begin),
        "End": int(fleet.window.end), "LogType": ("SlowLog", "ErrorLog")[number % 2]})
    return str(ok(answer)["PackageId"])


def _states(fleet: Fleet) -> dict[str, str]:
    rows = ok(fleet.api.call("ListUMongoDBLogPackage", fleet.admin,
                             {"ClusterId": fleet.cluster_id, "Limit": 100}))["DataSet"]
    return {row["Id"]: row["State"] for row in rows}


def test_fifty_packages_submitted_at_once_are_each_built_exactly_once_by_two_workers(
    fleet: Fleet, pg_metadata_cluster: PgCluster, s3server: S3Server
) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda n: _submit(fleet, n), range(PACKAGES)))
    assert len(set(ids)) == PACKAGES

    deadline = time.monotonic() + DEADLINE_SECONDS
    states = _states(fleet)
    while any(states.get(i) == "Package_Running" for i in ids) and time.monotonic() < deadline:
        assert all(w.alive() for w in fleet.workers), "a worker process died"
        time.sleep(0.5)
        states = _states(fleet)
    assert {states.get(i) for i in ids} == {"Package_Success"}, states

    builds = pg_metadata_cluster.execute(
        "SELECT builds, count(*) FROM packages GROUP BY builds", dbname=fleet.database)
    assert builds == [(1, PACKAGES)]
    listed = s3server.client().list_objects_v2(Bucket=BUCKET)
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert len(keys) == PACKAGES and all(k.endswith(".tar.gz") for k in keys), keys
    assert not s3server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    for worker in fleet.workers:
        assert worker.stop() == 0, worker.log_path.read_text()[-2000:]
    # Each build attempt is logged by the worker that made it: one attempt per package, and
    # both processes took their share.
    attempts = [_build_attempts(worker) for worker in fleet.workers]
    assert all(attempts), [len(a) for a in attempts]
    assert sorted(i for built in attempts for i in built) == sorted(ids)


def _build_attempts(worker: WorkerProcess) -> list[str]:
    lines = worker.log_path.read_text().splitlines()
    found = [BUILDS.search(json.loads(line)["message"]) for line in lines if line.startswith("{")]
    return [match.group(1) for match in found if match is not None]
