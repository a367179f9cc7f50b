"""Operating a real `dblogpack serve`: /metrics moves as calls are answered and packages built,
/healthz names what is broken, JSON log lines carry the RequestUUID (and the package id), admins
read the audit trail, and the CLI prints clean JSON when piped and an example in every --help.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.acceptance import WorkerProcess
from tests.support.apiserver import (
    DBLOGPACK,
    Answer,
    ApiClient,
    ApiServer,
    KeyPair,
    ok,
    start_server,
)
from tests.support.apiserver import wait_built as wait_final
from tests.support.pgcluster import free_port

from dblogpack.cli import build_parser
from dblogpack.cli.examples import command_parsers
from dblogpack.synth import Mix, Plan, build, generate

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    data_dir = tmp_path_factory.mktemp("operations") / "data"
    with start_server(data_dir, {"DBLOGPACK_WORKERS": "1"}) as api_server:
        yield api_server


@pytest.fixture(scope="module")
def client(server: ApiServer) -> Iterator[ApiClient]:
    with ApiClient(server) as api_client:
        yield api_client


@pytest.fixture(scope="module")
def cluster(
    server: ApiServer, client: ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """(ClusterId, NodeId) of a primary whose recent 4.4+ JSON log holds slow queries."""
    log_dir = tmp_path_factory.mktemp("operations-node")
    now = int(time.time())
    plan = Plan(start=now - 3600, end=now - 60, size=300_000, seed=4, rotate_bytes=150_000,
                mix=Mix(slow=0.2, error=0.05, other=0.75))
    generate(build("mongo-json", style="iso-utc"), log_dir / "mongod.log", plan)
    cluster_id = ok(client.call("RegisterUMongoDBCluster", server.admin, {"Name": "ops"}))[
        "ClusterId"]
    node_id = ok(client.call("RegisterUMongoDBNode", server.admin, {
        "ClusterId": cluster_id, "Role": "primary", "SourceType": "dir",
        "LogDir": str(log_dir), "LogPattern": "mongod.log*"}))["NodeId"]
    return cluster_id, node_id


@pytest.fixture(scope="module")
def user(server: ApiServer, client: ApiClient) -> KeyPair:
    """A key without admin rights."""
    return KeyPair.of(ok(client.call("CreateAccessKey", server.admin, {"Description": "user"})))


def scrape(server: ApiServer) -> Samples:
    response = httpx.get(server.url + "metrics", timeout=10)
    assert response.status_code == 200
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def backup(client: ApiClient, server: ApiServer, cluster: tuple[str, str], name: str) -> Answer:
    now = int(time.time())
    return client.call("BackupUMongoDBLog", server.admin, {
        "ClusterId": cluster[0], "NodeId": cluster[1], "Name": name,
        "Begin": now - 3600, "End": now, "LogType": "SlowLog"})


def wait_built(client: ApiClient, server: ApiServer, cluster_id: str, package_id: str) -> Any:
    row = wait_final(client, server.admin, "ListUMongoDBLogPackage",
                     {"ClusterId": cluster_id, "Limit": 100}, package_id)
    assert row["State"] == "Package_Success", row
    return row


def log_lines(server: ApiServer) -> list[dict[str, Any]]:
    """serve's JSON log lines (its stdout, in the same file, says other things in words)."""
    return [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]


# -- /metrics -----------------------------------------------------------------------------------


def test_metrics_count_calls_by_action_and_retcode_and_time_them(
    server: ApiServer, client: ApiClient, user: KeyPair
) -> None:
    before = scrape(server)
    ok(client.call("ListUMongoDBInstances", server.admin))
    ok(client.call("ListUMongoDBInstances", server.admin))
    forged = KeyPair(server.admin.public_key, "0" * 40, server.admin.project_id)
    assert client.call("ListUMongoDBInstances", forged).ret_code == 171
    assert client.call("ListUMongoDBInstances", user).ret_code == 299
    assert client.call("NoSuchAction", server.admin).ret_code == 161
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "dblogpack_api_requests_total"
    assert moved(requests, action="ListUMongoDBInstances", ret_code="0") == 2
    assert moved(requests, action="ListUMongoDBInstances", ret_code="171") == 1
    assert moved(requests, action="ListUMongoDBInstances", ret_code="299") == 1
    # A name the caller made up is never a label value of its own.
    assert moved(requests, action="(unknown)", ret_code="161") == 1
    assert not any("NoSuchAction" in str(labels) for _, labels in after)
    latency = "dblogpack_api_request_duration_seconds"
    assert moved(f"{latency}_count", action="ListUMongoDBInstances") == 4
    assert moved(f"{latency}_bucket", action="ListUMongoDBInstances", le="+Inf") == 4
    assert moved(f"{latency}_sum", action="ListUMongoDBInstances") > 0


def test_a_built_package_moves_bytes_durations_and_package_states(
    server: ApiServer, client: ApiClient, cluster: tuple[str, str]
) -> None:
    before = scrape(server)
    package_id = ok(backup(client, server, cluster, "metrics-1"))["PackageId"]
    info = wait_built(client, server, cluster[0], package_id)
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dblogpack_package_bytes_written_total") == info["Size"] > 0
    # The node's whole hour was read to select the slow queries.
    assert moved("dblogpack_package_bytes_scanned_total") >= 100_000
    assert moved("dblogpack_job_duration_seconds_count", outcome="success") == 1
    assert value(after, "dblogpack_packages", state="Package_Success") >= 1
    assert value(after, "dblogpack_packages", state="Package_Running") == 0
    assert value(after, "dblogpack_queue_depth") == 0


def test_queued_packages_a_worker_process_with_its_own_metrics_and_a_broken_store(
    tmp_path: Path,
) -> None:
    with (
        start_server(tmp_path / "data", {"DBLOGPACK_WORKERS": "0"}) as idle,
        ApiClient(idle) as idle_client,
    ):
        node_dir = tmp_path / "logs"
        node_dir.mkdir()
        (node_dir / "mongod.log").write_text("")
        cluster_id = ok(idle_client.call("RegisterUMongoDBCluster", idle.admin,
                                         {"Name": "idle"}))["ClusterId"]
        node_id = ok(idle_client.call("RegisterUMongoDBNode", idle.admin, {
            "ClusterId": cluster_id, "Role": "primary", "SourceType": "dir",
            "LogDir": str(node_dir)}))["NodeId"]
        package_id = ok(backup(idle_client, idle, (cluster_id, node_id), "waiting-1"))[
            "PackageId"]
        samples = scrape(idle)
        worker_metrics = build_with_a_worker_process(idle, idle_client, cluster_id, package_id)
        health = httpx.get(idle.url + "healthz", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok", "store": "ok"}
        store = idle.data_dir / "packages"
        shutil.rmtree(store)
        store.write_text("a file where the package directory should be")
        unhealthy = wait_for_status(idle, 503)
    assert value(samples, "dblogpack_queue_depth") == 1
    assert value(samples, "dblogpack_packages", state="Package_Running") == 1
    # The worker process counted the package it built and sees the shared catalog.
    size, worker_samples = worker_metrics
    assert value(worker_samples, "dblogpack_package_bytes_written_total") == size > 0
    assert value(worker_samples, "dblogpack_job_duration_seconds_count", outcome="success") == 1
    assert value(worker_samples, "dblogpack_packages", state="Package_Success") == 1
    assert value(worker_samples, "dblogpack_queue_depth") == 0
    # The metadata database still answers: the report names the store, and says why.
    assert unhealthy["status"] == "unavailable"
    assert unhealthy["database"] == "ok"
    assert str(store) in unhealthy["store"] and "Not a directory" in unhealthy["store"]


def build_with_a_worker_process(
    server: ApiServer, client: ApiClient, cluster_id: str, package_id: str
) -> tuple[int, Samples]:
    """Run `dblogpack worker` with metrics_port until it built `package_id`: (Size, its metrics)."""
    port = free_port()
    worker = WorkerProcess(server.data_dir, {"DBLOGPACK_METRICS_PORT": str(port)}, 0).start()
    try:
        info = wait_built(client, server, cluster_id, package_id)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        worker.stop()
    assert response.status_code == 200, worker.log_path.read_text()
    return info["Size"], parse(response.text)


def wait_for_status(server: ApiServer, status: int) -> Any:
    """/healthz's report once it answers `status` (a good store probe is trusted a few s)."""
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(server.url + "healthz", timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response.json()
        time.sleep(0.25)


# -- logs ---------------------------------------------------------------------------------------


def test_log_lines_carry_the_request_uuid_and_worker_lines_the_package_id(
    server: ApiServer, client: ApiClient, cluster: tuple[str, str]
) -> None:
    answer = backup(client, server, cluster, "logs-1")
    package_id, request_uuid = ok(answer)["PackageId"], answer.body["RequestUUID"]
    assert answer.headers["X-UCLOUD-REQUEST-UUID"] == request_uuid
    wait_built(client, server, cluster[0], package_id)

    lines = log_lines(server)
    of_request = [line for line in lines if line.get("request_uuid") == request_uuid]
    # The call's own line, and the service's line written in the call's worker thread.
    assert {line["logger"] for line in of_request} >= {"dblogpack.api", "dblogpack.jobs"}
    queued = next(line for line in of_request if line["logger"] == "dblogpack.jobs")
    assert queued["package_id"] == package_id
    building = [line for line in lines if line.get("package_id") == package_id
                and "request_uuid" not in line]
    assert any("builds package" in line["message"] for line in building), building
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


# -- audit --------------------------------------------------------------------------------------


def test_admins_read_the_audit_trail_newest_first_with_filters(
    server: ApiServer, client: ApiClient, user: KeyPair, cluster: tuple[str, str]
) -> None:
    refused = client.call("ListAuditRecords", user)
    assert refused.ret_code == 299, refused.body
    assert "ListAuditRecords" in refused.message
    ok(client.call("ListUPgSQLLogPackage", user, {"Limit": 5}))

    mine = ok(client.call("ListAuditRecords", server.admin,
                          {"TargetPublicKey": user.public_key, "Limit": 10}))
    assert mine["TotalCount"] >= 2
    newest, refused_record = mine["DataSet"][0], mine["DataSet"][1]
    assert newest["Action"] == "ListUPgSQLLogPackage" and newest["RetCode"] == 0
    assert refused_record["Action"] == "ListAuditRecords" and refused_record["RetCode"] == 299
    assert refused_record["RequestUUID"] == refused.body["RequestUUID"]
    assert refused_record["PublicKey"] == user.public_key
    assert newest["Time"] >= refused_record["Time"] > time.time() - 600

    registrations = ok(client.call("ListAuditRecords", server.admin,
                                   {"TargetAction": "RegisterUMongoDBCluster"}))["DataSet"]
    assert registrations and all(r["Action"] == "RegisterUMongoDBCluster" for r in registrations)
    assert all(r["ResourceId"] and r["RetCode"] == 0 for r in registrations)
    assert cluster[0] in {r["ResourceId"] for r in registrations}
    future = ok(client.call("ListAuditRecords", server.admin,
                            {"BeginTime": int(time.time()) + 3600}))
    assert future["TotalCount"] == 0 and future["DataSet"] == []
    page = ok(client.call("ListAuditRecords", server.admin, {"Offset": 1, "Limit": 1}))
    assert len(page["DataSet"]) == 1 and page["TotalCount"] > 1


# -- CLI ----------------------------------------------------------------------------------------


def cli(server: ApiServer, key: KeyPair, *args: str) -> subprocess.CompletedProcess[str]:
    """`dblogpack` run as a user would from a script: output piped, credentials in env."""
    env = {**os.environ, "DBLOGPACK_ENDPOINT": server.url,
           "DBLOGPACK_PUBLIC_KEY": key.public_key, "DBLOGPACK_PRIVATE_KEY": key.private_key}
    return subprocess.run([str(DBLOGPACK), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_call_piped_prints_plain_json_and_errors_as_one_line_with_the_request_uuid(
    server: ApiServer, cluster: tuple[str, str], user: KeyPair
) -> None:
    done = cli(server, server.admin, "call", "ListUMongoDBInstances", "Limit=10")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout  # no colour codes
    answer = json.loads(done.stdout)
    assert answer["RetCode"] == 0
    assert cluster[0] in {row["ClusterId"] for row in answer["DataSet"]}

    failed = cli(server, server.admin, "call", "BackupUMongoDBLog", f"ClusterId={cluster[0]}")
    assert failed.returncode == 1 and failed.stdout == ""
    error = failed.stderr.strip()
    assert "\n" not in error
    assert error.startswith("dblogpack call: RetCode 220") and "NodeId" in error
    uuid = error.rsplit("RequestUUID ", 1)[1].rstrip(")")
    assert len(uuid) == 36

    audit = cli(server, server.admin, "audit", "--action", "BackupUMongoDBLog", "--limit", "3")
    assert audit.returncode == 0, audit.stderr
    assert json.loads(audit.stdout)["DataSet"][0]["RequestUUID"] == uuid
    refused = cli(server, user, "audit")
    assert refused.returncode == 1 and refused.stderr.startswith("dblogpack audit: RetCode 299")


def test_every_command_help_ends_with_an_example() -> None:
    commands = list(command_parsers(build_parser()))
    assert {"", "serve", "call", "audit", "keys create", "mongodb add-node",
            "package pgsql", "pack"} <= {path for path, _ in commands}
    for path, parser in commands:
        text = parser.format_help()
        assert "example" in text.lower(), f"dblogpack {path} --help has no example"
        examples = [line.split() for line in text.splitlines()
                    if line.strip().startswith("dblogpack ")]
        # The example runs this very command: its own words follow `dblogpack` (and flags).
        assert any(set(path.split()) <= set(words) for words in examples), (
            f"no example of dblogpack {path}: {examples}")


def test_help_imports_no_server_or_network_library() -> None:
    # `dblogpack --help` must stay instant: the heavy libraries load inside the commands.
    heavy = ("sqlalchemy", "starlette", "uvicorn", "httpx", "rich", "boto3", "prometheus_client",
             "pydantic", "asyncssh", "psycopg")
    probe = ("import sys; from dblogpack.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_local_file_problem_is_one_line_without_a_traceback() -> None:
    # /proc refuses new directories even to root: the data directory cannot be made.
    done = subprocess.run([str(DBLOGPACK), "--data-dir", "/proc/1/dblogpack", "keys", "create"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "dblogpack keys: /proc/1/dblogpack: No such file or directory"
