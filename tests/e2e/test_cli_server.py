"""`dblogpack serve`, `keys create`, `call`, `pgsql` and `mongodb` as an operator runs them: real
processes, a real server on a free loopback port, answers read from stdout, stderr and exit codes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.pgcluster import PgCluster, free_port

from dblogpack.app import Services, open_services
from dblogpack.catalog.packages import PackageRecord
from dblogpack.model import LogKind, PackageSpec, PackageState, ResourceKind, TimeWindow
from dblogpack.settings import load_settings


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any DBLOGPACK_* of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBLOGPACK_")}
    return {**env, "DBLOGPACK_WORKERS": "0", **extra}


def dblogpack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dblogpack.cli", *args],
        env=env or clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )


@dataclass
class Server:
    data_dir: Path
    endpoint: str
    process: subprocess.Popen[str]
    output: Path

    @property
    def admin(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.data_dir / "admin-key.json").read_text())
        return loaded

    def client(
        self, *args: str, key: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A client command against this server, signing with `key` (default: the admin's)."""
        key = key or self.admin
        env = clean_env(
            DBLOGPACK_PUBLIC_KEY=key["PublicKey"], DBLOGPACK_PRIVATE_KEY=key["PrivateKey"]
        )
        return dblogpack("--endpoint", self.endpoint, *args, env=env)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=20)
        return self.output.read_text()


def start_server(data_dir: Path, *flags: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    output = data_dir.parent / f"serve-{port}.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dblogpack.cli", "--data-dir", str(data_dir), "serve",
             "--port", str(port), *flags],
            env=env or clean_env(), stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    server = Server(data_dir, f"http://127.0.0.1:{port}/", process, output)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dblogpack serve exited {process.returncode}:\n{output.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    pytest.fail(f"dblogpack serve never answered /healthz:\n{output.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("serve") / "data")
    yield started
    started.stop()


def answer_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_first_start_makes_a_private_data_directory_and_admin_key(server: Server) -> None:
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in server.data_dir.iterdir()}
    assert mode["admin-key.json"] == 0o600 and mode["server-secret"] == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert set(server.admin) == {"PublicKey", "PrivateKey", "ProjectId"}
    output = server.output.read_text()
    assert server.admin["PublicKey"] in output and "admin-key.json" in output
    # Captured output is not a terminal: the private key stays in the 0600 file only.
    assert server.admin["PrivateKey"] not in output


def test_operations_endpoints_answer(server: Server) -> None:
    base = server.endpoint.rstrip("/")
    health = {"status": "ok", "database": "ok", "store": "ok"}
    assert httpx.get(f"{base}/healthz", timeout=5).json() == health
    metrics = httpx.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200 and "python_info" in metrics.text


def test_call_prints_the_json_answer_and_exits_zero(server: Server) -> None:
    answer = answer_of(server.client("call", "ListUPgSQLInstance", "Limit=10"))
    assert answer["Action"] == "ListUPgSQLInstanceResponse" and answer["RetCode"] == 0
    assert answer["TotalCount"] >= 0 and answer["RequestUUID"]


def test_a_failed_call_exits_nonzero_with_the_message_and_request_uuid(server: Server) -> None:
    wrong = {**server.admin, "PrivateKey": "0" * 40}
    result = server.client("call", "ListUPgSQLInstance", key=wrong)
    assert result.returncode == 1 and result.stdout == ""
    assert "RetCode 171" in result.stderr and "RequestUUID" in result.stderr


def test_client_commands_without_a_full_key_pair_say_so(tmp_path: Path) -> None:
    half = clean_env(DBLOGPACK_PUBLIC_KEY="k")
    result = dblogpack("--data-dir", str(tmp_path), "call", "X", env=half)
    assert result.returncode == 2 and "give both" in result.stderr
    result = dblogpack("--data-dir", str(tmp_path), "pgsql", "list")
    assert result.returncode == 2 and "no key to sign with" in result.stderr


def test_an_unreachable_endpoint_is_reported(server: Server) -> None:
    env = clean_env(DBLOGPACK_PUBLIC_KEY="k", DBLOGPACK_PRIVATE_KEY="p")
    result = dblogpack("--endpoint", f"http://127.0.0.1:{free_port()}/", "call", "X", env=env)
    assert result.returncode == 2 and "cannot reach" in result.stderr


def test_keys_created_on_the_data_directory_work_at_once(server: Server) -> None:
    created = dblogpack("--data-dir", str(server.data_dir), "keys", "create", "--json",
                        "--description", "reader")
    plain = answer_of(created)
    assert plain["ProjectId"] == server.admin["ProjectId"] and len(plain["PrivateKey"]) == 40

    refused = server.client("call", "ListUPgSQLInstance", key=plain)
    assert refused.returncode == 1 and "RetCode 299" in refused.stderr
    admin = answer_of(dblogpack("--data-dir", str(server.data_dir), "keys", "create", "--admin",
                                "--json"))
    assert server.client("call", "ListUPgSQLInstance", key=admin).returncode == 0


def test_keys_create_refuses_an_unknown_project(server: Server) -> None:
    result = dblogpack("--data-dir", str(server.data_dir), "keys", "create", "--project",
                       "org-nope", "--json")
    assert result.returncode == 2 and "org-nope" in result.stderr


def test_repeated_call_parameters_travel_as_an_array(server: Server) -> None:
    first = answer_of(server.client("call", "CreateProject", "Name=first"))["ProjectId"]
    second = answer_of(server.client("call", "CreateProject", "Name=second"))["ProjectId"]
    key = answer_of(server.client(
        "call", "CreateAccessKey", f"ProjectId={first}", f"ProjectId={second}", "Admin=true"
    ))
    assert key["ProjectId"] == first
    for project in (first, second):
        listed = server.client("call", "ListUPgSQLInstance", f"ProjectId={project}", key=key)
        assert listed.returncode == 0, listed.stderr


def test_pgsql_instances_are_added_listed_and_removed(server: Server, tmp_path: Path) -> None:
    (tmp_path / "postgresql.log").write_text("2026-01-01 00:00:00 UTC [1] LOG:  ready\n")
    added = answer_of(server.client(
        "pgsql", "add", "--name", "orders", "--source-type", "dir", "--log-dir", str(tmp_path),
        "--log-pattern", "*.log", "--region", "cn-sh2",
    ))
    instance = added["InstanceID"]
    listed = answer_of(server.client("pgsql", "list", "--region", "cn-sh2"))
    assert [(r["InstanceID"], r["Name"], r["SourceType"]) for r in listed["DataSet"]] == [
        (instance, "orders", "dir")
    ]
    answer_of(server.client("pgsql", "remove", instance, "--region", "cn-sh2"))
    gone = server.client("pgsql", "remove", instance)
    assert gone.returncode == 1 and "RetCode 1001" in gone.stderr


def test_pgsql_add_refuses_a_source_that_does_not_answer(server: Server, tmp_path: Path) -> None:
    result = server.client("pgsql", "add", "--name", "ghost", "--source-type", "dir",
                           "--log-dir", str(tmp_path / "missing"))
    assert result.returncode == 1 and "RetCode 230" in result.stderr and "missing" in result.stderr


def test_mongodb_clusters_and_nodes_are_added_listed_and_removed(
    server: Server, tmp_path: Path
) -> None:
    cluster = answer_of(server.client("mongodb", "add-cluster", "--name", "rs0"))["ClusterId"]
    node = answer_of(server.client(
        "mongodb", "add-node", cluster, "--role", "primary", "--source-type", "dir",
        "--log-dir", str(tmp_path),
    ))["NodeId"]
    listed = answer_of(server.client("mongodb", "list"))
    mine = [c for c in listed["DataSet"] if c["ClusterId"] == cluster]
    assert [n["NodeId"] for n in mine[0]["Nodes"]] == [node]
    answer_of(server.client("mongodb", "remove", cluster))
    after = answer_of(server.client("mongodb", "list"))
    assert cluster not in {c["ClusterId"] for c in after["DataSet"]}


def test_serve_refuses_a_bad_configuration_in_words(tmp_path: Path) -> None:
    result = dblogpack("--data-dir", str(tmp_path), "serve",
                       env=clean_env(DBLOGPACK_PORT="eighty"))
    assert result.returncode == 2
    assert "DBLOGPACK_PORT: port must be an integer, got 'eighty'" in result.stderr
    unreachable = dblogpack("--data-dir", str(tmp_path), "serve", "--database-url",
                            f"postgresql+psycopg://u:secret-pw@127.0.0.1:{free_port()}/d")
    assert unreachable.returncode == 2 and "metadata database" in unreachable.stderr
    assert "secret-pw" not in unreachable.stderr + unreachable.stdout


def test_serve_on_postgresql_metadata_with_flags_over_environment(
    tmp_path: Path, pg_metadata_cluster: PgCluster
) -> None:
    name = f"serve_{uuid.uuid4().hex[:10]}"
    pg_metadata_cluster.execute(f'CREATE DATABASE "{name}"')
    env = clean_env(
        DBLOGPACK_DATABASE_URL=pg_metadata_cluster.sqlalchemy_url(dbname=name),
        DBLOGPACK_PORT="1",  # overridden by the --port flag start_server passes
    )
    server = start_server(tmp_path / "data", env=env)
    try:
        answer_of(server.client("call", "ListUPgSQLInstance"))
        assert not (tmp_path / "data" / "dblogpack.sqlite3").exists()
    finally:
        first_output = server.stop()
    again = start_server(tmp_path / "data", env=env)
    try:
        answer_of(again.client("call", "ListUPgSQLInstance"))
    finally:
        second_output = again.stop()
    assert "created the first admin key" in first_output
    assert "created the first admin key" not in second_output
    # Another machine whose data directory lacks the first server's secret is told so.
    stranger = dblogpack("--data-dir", str(tmp_path / "elsewhere"), "worker", env=env)
    assert stranger.returncode == 2 and "copy the server-secret" in stranger.stderr
    pg_metadata_cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# -- package workers ---------------------------------------------------------------------------

SAMPLE_LOG = "".join(
    f"2026-01-01 00:00:{i:02d}.000 UTC [42] LOG:  duration: {100 + i}.5 ms  statement: SELECT {i}\n"
    for i in range(12)
)


@contextmanager
def data_dir_services(data_dir: Path) -> Iterator[Services]:
    """The services of `data_dir` opened in this process, as a server there would open them."""
    services = open_services(load_settings({"data_dir": str(data_dir)}, environ={}))
    try:
        yield services
    finally:
        services.close()


def enqueue_package(data_dir: Path, instance: str, project: str, name: str) -> str:
    """Queue a package straight in the data directory's catalog, as the packaging actions will."""
    with data_dir_services(data_dir) as services:
        spec = PackageSpec(
            id=f"pkg-{uuid.uuid4().hex[:8]}", name=name, kind=ResourceKind.PGSQL,
            resource_id=instance, node_id=None, log_type=LogKind.ALL, window=TimeWindow(),
        )
        return services.jobs.enqueue(spec, project_id=project).id


def wait_for_package(data_dir: Path, package_id: str) -> tuple[PackageRecord, int]:
    """The finished package row and the size of its published object."""
    with data_dir_services(data_dir) as services:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = services.jobs.get(package_id)
            assert record is not None
            if record.state is not PackageState.RUNNING:
                assert record.state is PackageState.SUCCESS, record.message
                assert record.store_key is not None
                return record, services.store.size(record.store_key)
            time.sleep(0.2)
        pytest.fail(f"package {package_id} still running after 60 s")


def test_worker_processes_and_serve_build_queued_packages(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "postgresql-2026-01-01.log").write_text(SAMPLE_LOG)
    data_dir = tmp_path / "data"
    api = start_server(data_dir)  # DBLOGPACK_WORKERS=0: this serve builds nothing
    try:
        instance = answer_of(api.client(
            "pgsql", "add", "--name", "db", "--source-type", "dir", "--log-dir", str(logs),
        ))["InstanceID"]
        queued = enqueue_package(data_dir, instance, api.admin["ProjectId"], "by-worker")
        worker = subprocess.Popen(
            [sys.executable, "-m", "dblogpack.cli", "--data-dir", str(data_dir), "worker"],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            record, size = wait_for_package(data_dir, queued)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=60)
        assert worker.returncode == 0, errors
        assert record.entry_count == 12 and record.size == size > 0
    finally:
        api.stop()

    builder = start_server(data_dir, "--workers", "1")
    try:
        queued = enqueue_package(data_dir, instance, builder.admin["ProjectId"], "by-serve")
        record, size = wait_for_package(data_dir, queued)
        assert record.entry_count == 12 and size > 0
    finally:
        builder.stop()
