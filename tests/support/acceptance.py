"""Helpers of the packaging acceptance tests: servers with package workers, the official SDK,
waiting for a package, downloading it, and generated MongoDB node logs with their record.

What a package must hold is computed from the generator's record (or the PostgreSQL workload's),
never from the engine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.apiserver import DBLOGPACK, ApiServer, KeyPair
from tests.support.processes import terminate
from ucloud.client import Client

from dblogpack.model import LogKind, TimeWindow
from dblogpack.synth import Plan, Record, build, generate, read_spans, select

PACKAGE_TIMEOUT = 120.0
POLL_SECONDS = 0.25
FINAL_STATES = {"Package_Success", "Package_Failed", "Package_Deleted", "Package_DeleteFailed"}
# Big enough to rotate into several files, small enough to build in a fraction of a second.
NODE_LOG_BYTES = 1_500_000
NODE_ROTATE_BYTES = 400_000


def sdk(server: ApiServer, key: KeyPair, *, private_key: str | None = None) -> Client:
    """The official ucloud-sdk-python3 client, configured as a user would against `server`
    (signing with `private_key` instead of the key's own, if given)."""
    return Client({"base_url": server.url, "public_key": key.public_key,
                   "private_key": private_key or key.private_key, "region": "cn-bj2",
                   "project_id": key.project_id, "max_retries": 0, "timeout": 30})


def wait_for_package(
    client: Client, action: str, scope: dict[str, Any], package_id: str,
    timeout: float = PACKAGE_TIMEOUT,
) -> dict[str, Any]:
    """Poll the package list action until `package_id` reaches a final state; its PackageInfo."""
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        listed = client.invoke(action, {**scope, "Offset": 0, "Limit": 100})
        info = next((row for row in listed["DataSet"] if row["Id"] == package_id), {})
        if info.get("State") in FINAL_STATES:
            return info
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"package {package_id} not final after {timeout}s: {info}")


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.content


@dataclass
class Package:
    """A downloaded package: its manifest, its summary and its log members."""

    manifest: dict[str, Any]
    summary: dict[str, Any]
    logs: dict[str, bytes]

    @classmethod
    def open(cls, data: bytes) -> Package:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members: dict[str, bytes] = {}
            for info in tar.getmembers():
                handle = tar.extractfile(info)
                assert handle is not None, f"{info.name} is not a regular file"
                members[info.name] = handle.read()
        logs = {name[len("logs/"):]: body for name, body in members.items()
                if name.startswith("logs/")}
        return cls(json.loads(members["manifest.json"]), json.loads(members["summary.json"]), logs)


@dataclass
class NodeLogs:
    """A MongoDB node's generated log directory and the record of every entry written."""

    directory: Path
    format: str
    files: list[str]
    record: Record

    def expected(self, window: TimeWindow, kind: LogKind) -> tuple[dict[str, bytes], int]:
        """Per file, the exact bytes a package of `window` and `kind` holds; and the entry count."""
        selection = select(self.files, self.record.blocks(), window, kind)
        members = {
            name: b"".join(read_spans(self.directory / name, spans))
            for name, spans in selection.spans.items()
        }
        return members, selection.entries


def generate_node_logs(
    directory: Path, fmt: str, begin: float, end: float, seed: int, size: int = NODE_LOG_BYTES
) -> NodeLogs:
    """`mongod.log` (rotated as mongod does) in `fmt` (mongo-json | mongo-legacy), [begin, end)."""
    directory.mkdir(parents=True, exist_ok=True)
    style = "iso-utc" if fmt == "mongo-json" else "iso8601-utc"
    record = Record()
    plan = Plan(start=begin, end=end, size=size, seed=seed, rotate_bytes=NODE_ROTATE_BYTES)
    result = generate(build(fmt, style=style), directory / "mongod.log", plan, record)
    for path in directory.iterdir():
        path.chmod(0o644)  # the ssh source logs in as an unprivileged user
    return NodeLogs(directory, fmt, record.files, result.record)


def recent_window(now: float) -> tuple[float, float, TimeWindow]:
    """Logs over the last two hours (ending ten minutes ago) and a 70-minute window inside them."""
    logs_begin, logs_end = float(int(now) - 7200), float(int(now) - 600)
    return logs_begin, logs_end, TimeWindow(float(int(now) - 6000), float(int(now) - 1800))


def s3_store_env(endpoint_url: str, bucket: str, access_key: str, secret_key: str,
                 prefix: str = "packages") -> dict[str, str]:
    """Settings (as environment) of a serve or worker publishing to an S3-compatible bucket."""
    return {
        "DBLOGPACK_STORE_URL": f"s3://{bucket}/{prefix}?endpoint_url={endpoint_url}",
        "DBLOGPACK_S3_ACCESS_KEY_ID": access_key,
        "DBLOGPACK_S3_SECRET_ACCESS_KEY": secret_key,
    }


@dataclass
class WorkerProcess:
    """A `dblogpack worker` process on a data directory, its output in a file beside it."""

    data_dir: Path
    env: dict[str, str]
    index: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"worker-{self.index}.log"

    def start(self) -> WorkerProcess:
        argv = [str(DBLOGPACK), "--data-dir", str(self.data_dir), "worker"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env})
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (the worker hands unfinished packages back), then its exit status."""
        if self.process is None:
            return None
        terminate(self.process, timeout=40, kill_timeout=10)
        return self.process.returncode
