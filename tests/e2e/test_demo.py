"""`dblogpack serve --demo`, the `make run` tour, as a newcomer runs it: a real process on a free
port with its own data directory, a real PostgreSQL 15 started by the demo, packages built from
the demo's live logs, Ctrl-C (SIGINT) and SIGTERM stopping everything, a second start reusing all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok
from tests.support.pgcluster import free_port

TOUR_HEADLINE = "dblogpack demo is running"
DEMO_START_TIMEOUT = 60.0
PACKAGE_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any DBLOGPACK_* of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBLOGPACK_")}
    return {**env, **extra}


@dataclass
class DemoServer:
    """One `dblogpack serve --demo` process and the signed client talking to it."""

    data_dir: Path
    process: subprocess.Popen[bytes]
    output: Path
    api: ApiServer
    tour_at: float = 0.0  # when the tour was printed: the demo's feeders run from then

    @property
    def admin(self) -> KeyPair:
        return self.api.admin

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def call(self, action: str, params: dict[str, object] | None = None) -> dict[str, Any]:
        with ApiClient(self.api) as client:
            return ok(client.call(action, self.admin, params))

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=45)


def start_demo_server(data_dir: Path, *flags: str, env: dict[str, str] | None = None) -> DemoServer:
    """Start serve and wait for the tour to be printed; the test fails with serve's output."""
    port = free_port()
    output = data_dir.parent / f"demo-serve-{port}.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dblogpack.cli", "--data-dir", str(data_dir), "serve",
             "--port", str(port), *flags],
            env=env or clean_env(), stdout=sink, stderr=subprocess.STDOUT,
        )
    server = DemoServer(data_dir, process, output, ApiServer(data_dir, None, port=port))
    deadline = time.monotonic() + DEMO_START_TIMEOUT
    while TOUR_HEADLINE not in server.text():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                server.stop(signal.SIGTERM)
            pytest.fail(f"serve --demo printed no tour:\n{server.text()[-4000:]}", pytrace=False)
        time.sleep(0.2)
    server.tour_at = time.time()
    return server


def postgres_processes_of(data_dir: Path) -> list[str]:
    """Command lines of processes (servers, watchdogs) working on the demo's PostgreSQL."""
    found = subprocess.run(["pgrep", "-af", str(data_dir / "demo" / "pg")], capture_output=True,
                           text=True, check=False)
    return found.stdout.splitlines()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its 0700 parents keep out the postgres user the demo runs as.
    base = Path(tempfile.mkdtemp(prefix="dblogpack-demo-test-"))
    base.chmod(0o755)
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture(scope="module")
def demo(workdir: Path) -> Iterator[DemoServer]:
    server = start_demo_server(workdir / "data", "--demo")
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGTERM)


def the_demo_instance(demo: DemoServer) -> dict[str, Any]:
    rows = demo.call("ListUPgSQLInstance", {"Limit": 100})["DataSet"]
    return next(row for row in rows if row["Name"] == "demo-postgresql")


def the_demo_cluster(demo: DemoServer) -> dict[str, Any]:
    rows = demo.call("ListUMongoDBInstances", {"Limit": 100})["DataSet"]
    return next(row for row in rows if row["Name"] == "demo-mongodb")


def wait_for_success(demo: DemoServer, action: str, scope: dict[str, object],
                     package_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + PACKAGE_TIMEOUT
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rows = demo.call(action, {**scope, "Limit": 100})["DataSet"]
        info = next(row for row in rows if row["Id"] == package_id)
        if info["State"] not in ("Package_Running",):
            break
        time.sleep(0.3)
    assert info["State"] == "Package_Success", info
    return info


def test_the_demo_registers_a_postgresql_instance_read_over_sql(demo: DemoServer) -> None:
    instance = the_demo_instance(demo)
    assert instance["SourceType"] == "postgres"
    assert instance["InstanceID"] in demo.text()


def test_the_demo_registers_a_mongodb_cluster_of_three_nodes_read_from_directories(
    demo: DemoServer,
) -> None:
    cluster = the_demo_cluster(demo)
    assert sorted(node["Role"] for node in cluster["Nodes"]) == ["mongos", "primary", "secondary"]
    assert {node["SourceType"] for node in cluster["Nodes"]} == {"dir"}


def test_the_tour_names_the_console_the_endpoint_the_key_and_three_package_commands(
    demo: DemoServer,
) -> None:
    text = demo.text()
    assert f"{demo.api.url}console" in text and f"API endpoint  {demo.api.url}" in text
    assert f"DBLOGPACK_PUBLIC_KEY={demo.admin.public_key}" in text
    assert text.count(" package ") >= 3 and "--wait --out" in text
    # Captured output is not a terminal: the private key is read from the 0600 file instead.
    assert demo.admin.private_key not in text and "admin-key.json" in text


def test_a_slow_package_of_the_demo_instance_holds_the_workloads_statements(
    demo: DemoServer,
) -> None:
    instance_id = the_demo_instance(demo)["InstanceID"]
    now = int(time.time())
    files = demo.call("ListUPgSQLLog", {"InstanceID": instance_id, "BeginTime": now - 600,
                                        "EndTime": now + 1})["DataSet"]
    assert files, "the demo instance lists no log file"
    backup = demo.call("BackupUPgSQLLog", {
        "InstanceID": instance_id, "BackupName": "demo-slow", "LogType": "slow",
        "BackupFile": [row["Name"] for row in files]})
    info = wait_for_success(demo, "ListUPgSQLLogPackage", {"InstanceID": instance_id},
                            backup["BackupID"])
    assert info["EntryCount"] > 0


@pytest.mark.parametrize("log_type", ["SlowLog", "ErrorLog"])
def test_a_package_of_a_demo_node_for_the_last_minutes_holds_fed_entries(
    demo: DemoServer, log_type: str
) -> None:
    cluster = the_demo_cluster(demo)
    primary = next(n["NodeId"] for n in cluster["Nodes"] if n["Role"] == "primary")
    scope = {"ClusterId": cluster["ClusterId"], "NodeId": primary}
    deadline = time.monotonic() + 20
    # Entries arrive at random, a few a second: wait until one of this type has been fed.
    while not demo.call("GetUMongoDBLog", {**scope, "Begin": int(demo.tour_at) - 60,
                                           "LogType": log_type, "MaxLine": 1})["Log"]:
        assert time.monotonic() < deadline, f"no {log_type} entry fed to the primary in 20 s"
        time.sleep(0.5)
    now = int(time.time())
    package = demo.call("BackupUMongoDBLog", {
        "ClusterId": cluster["ClusterId"], "NodeId": primary, "Name": f"demo-{log_type}",
        "Begin": now - 300, "End": now + 1, "LogType": log_type})
    info = wait_for_success(demo, "ListUMongoDBLogPackage", {"ClusterId": cluster["ClusterId"]},
                            package["PackageId"])
    assert info["EntryCount"] > 0


def test_ctrl_c_stops_the_demo_postgresql_and_a_second_start_reuses_everything(
    demo: DemoServer, workdir: Path
) -> None:
    instance, cluster = the_demo_instance(demo), the_demo_cluster(demo)
    assert postgres_processes_of(demo.data_dir), "the demo PostgreSQL is not running"
    # 130: the shell's code for a command ended by Ctrl-C, after a clean shutdown.
    assert demo.stop(signal.SIGINT) in (0, 130), demo.text()[-3000:]
    assert "demo stopped" in demo.text()
    assert postgres_processes_of(demo.data_dir) == []

    again = start_demo_server(demo.data_dir, env=clean_env(DBLOGPACK_DEMO="1"))
    try:
        assert the_demo_instance(again) == instance
        assert the_demo_cluster(again) == cluster
        assert "created the first admin key" not in again.text()
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.text()[-3000:]
        assert "demo stopped" in again.text()
    assert postgres_processes_of(demo.data_dir) == []


def test_no_demo_starts_no_postgresql_and_registers_nothing(workdir: Path) -> None:
    data_dir = workdir / "plain"
    port = free_port()
    # The flag wins over the environment, as every setting's does.
    process = subprocess.Popen(
        [sys.executable, "-m", "dblogpack.cli", "--data-dir", str(data_dir), "serve",
         "--port", str(port), "--no-demo"],
        env=clean_env(DBLOGPACK_DEMO="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = DemoServer(data_dir, process, workdir / "unused", ApiServer(data_dir, None, port=port))
    try:
        deadline = time.monotonic() + 30
        while not server.api._healthy():
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # where a demo would have started by now
        assert server.call("ListUPgSQLInstance")["TotalCount"] == 0
        assert server.call("ListUMongoDBInstances")["TotalCount"] == 0
        assert not (data_dir / "demo").exists()
    finally:
        assert server.stop(signal.SIGTERM) == 0
