"""API figures of one `dblogpack serve` on the embedded default (SQLite, file store), on loopback:
signed ListUMongoDBLogPackage calls per second and p99 latency from concurrent clients, and
packages per minute built from 100 MB node logs (generated with recent timestamps).
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.rows import DBLOGPACK, Context, Row, RowResult
from dblogpack.api.signing import signed
from dblogpack.model import LogKind, TimeWindow
from dblogpack.synth import MongoJsonFormat, Plan, Record, generate, select

CLIENTS = 8
LIST_TARGET_PER_S = 200.0
LIST_TARGET_P99_S = 0.1
NODE_LOG_BYTES = 100_000_000
PACKAGES_TARGET_PER_MIN = 30.0
READY_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Server:
    """A `dblogpack serve` process and the admin key its first start created."""

    process: subprocess.Popen[bytes]
    url: str
    public_key: str
    private_key: str

    def call(self, http: httpx.Client, action: str, params: dict[str, object]) -> dict[str, Any]:
        form = signed({"Action": action, **params}, self.public_key, self.private_key)
        answer: dict[str, Any] = http.post(self.url, data=form).json()
        if answer.get("RetCode") != 0:
            raise RuntimeError(f"{action}: {answer}")
        return answer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(data_dir: Path) -> Iterator[Server]:
    """`serve` on its defaults but the rate limit (off: the clients would measure the limiter)."""
    port = _free_port()
    argv = [DBLOGPACK, "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1",
            "--port", str(port), "--rate-limit", "0", "--log-level", "WARNING"]
    log = (data_dir.parent / "serve.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_ready(process, url, data_dir.parent / "serve.log")
        key = json.loads((data_dir / "admin-key.json").read_text())
        yield Server(process, url, key["PublicKey"], key["PrivateKey"])
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dblogpack serve exited: {log.read_text()[-1000:]}")
        try:
            if httpx.get(url + "healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise RuntimeError(f"dblogpack serve not ready in {READY_TIMEOUT_S:.0f} s")


def _register_nodes(
    server: Server, http: httpx.Client, log_dir: Path, count: int
) -> tuple[str, list[str]]:
    cluster = server.call(http, "RegisterUMongoDBCluster", {"Name": "bench"})["ClusterId"]
    nodes = [
        server.call(http, "RegisterUMongoDBNode", {
            "ClusterId": cluster, "Role": "secondary", "SourceType": "dir",
            "LogDir": str(log_dir), "LogPattern": "mongod.log*"})["NodeId"]
        for _ in range(count)
    ]
    return cluster, nodes


# -- signed list calls per second ----------------------------------------------------------


def _list_client(server: Server, params: dict[str, object], until: float,
                 latencies: list[float], failures: list[str]) -> None:
    with httpx.Client(timeout=30) as http:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                server.call(http, "ListUMongoDBLogPackage", params)
            except (RuntimeError, httpx.HTTPError) as exc:
                failures.append(str(exc))
                return
            latencies.append(time.perf_counter() - started)


def list_calls(ctx: Context) -> RowResult:
    seconds = 3.0 if ctx.quick else 10.0
    result = RowResult(
        "api-list", f"signed ListUMongoDBLogPackage, {CLIENTS} concurrent clients, "
        f"{seconds:.0f} s", "-", f"≥ {LIST_TARGET_PER_S:.0f} calls/s, "
        f"p99 < {LIST_TARGET_P99_S * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="dblogpack-bench-api-") as base:
        logs = _node_logs(Path(base) / "node", 200_000)
        with serving(Path(base) / "data") as server, httpx.Client(timeout=60) as http:
            cluster, nodes = _register_nodes(server, http, logs.directory, 1)
            _fill_list(server, http, cluster, nodes[0], logs.window)
            params: dict[str, object] = {"ClusterId": cluster, "Limit": 20}
            latencies: list[float] = []
            failures: list[str] = []
            with ctx.console.status(f"api-list: {CLIENTS} clients for {seconds:.0f} s"):
                until = time.perf_counter() + seconds
                threads = [threading.Thread(target=_list_client,
                                            args=(server, params, until, latencies, failures))
                           for _ in range(CLIENTS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
    return _list_result(result, latencies, failures, seconds)


def _fill_list(
    server: Server, http: httpx.Client, cluster: str, node: str, window: TimeWindow
) -> None:
    """Two finished packages, so each list answer carries real PackageInfo rows."""
    assert window.begin is not None and window.end is not None
    ids = [server.call(http, "BackupUMongoDBLog", {
        "ClusterId": cluster, "NodeId": node, "Name": f"listed-{kind}",
        "Begin": int(window.begin), "End": int(window.end), "LogType": kind})["PackageId"]
        for kind in ("SlowLog", "ErrorLog")]
    _wait_all(server, http, cluster, ids, 120.0)


def _list_result(
    result: RowResult, latencies: list[float], failures: list[str], seconds: float
) -> RowResult:
    if failures or not latencies:
        result.note = failures[0] if failures else "no call completed"
        return result
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    rate = len(latencies) / seconds
    result.a_seconds = statistics.median(ordered)
    result.a_runs = [p99]
    result.passed = rate >= LIST_TARGET_PER_S and p99 < LIST_TARGET_P99_S
    result.check = f"{len(latencies)} calls, all RetCode 0"
    result.note = (f"{rate:.0f} calls/s, p50 {result.a_seconds * 1000:.1f} ms, "
                   f"p99 {p99 * 1000:.1f} ms")
    return result


# -- packages per minute from 100 MB node logs ---------------------------------------------


@dataclass(slots=True)
class NodeLogs:
    directory: Path
    files: list[str]
    record: Record
    window: TimeWindow  # the whole span of the logs, within the 7-day and 24-hour rules

    def expected_entries(self, kind: LogKind) -> int:
        return select(self.files, self.record.blocks(), self.window, kind).entries


def _node_logs(directory: Path, size: int) -> NodeLogs:
    """`mongod.log` of `size` bytes over the last six hours (ending ten minutes ago)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    plan = Plan(start=now - 6 * 3600, end=now - 600, size=size, seed=15)
    record = Record()
    generate(MongoJsonFormat("iso-utc"), directory / "mongod.log", plan, record)
    return NodeLogs(directory, record.files, record, TimeWindow(plan.start, now - 599))


def _wait_all(
    server: Server, http: httpx.Client, cluster: str, ids: list[str], timeout: float
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = server.call(http, "ListUMongoDBLogPackage", {"ClusterId": cluster, "Limit": 100})
        infos = {row["Id"]: row for row in rows["DataSet"] if row["Id"] in ids}
        if all(infos.get(i, {}).get("State") not in (None, "Package_Running") for i in ids):
            return infos
        if time.monotonic() > deadline:
            raise RuntimeError(f"packages not finished in {timeout:.0f} s")
        time.sleep(0.1)


def packages_per_minute(ctx: Context) -> RowResult:
    count = 4 if ctx.quick else 12
    result = RowResult(
        "api-packages", f"packages per minute of one serve (2 workers), {count} packages "
        f"from {NODE_LOG_BYTES // 1_000_000} MB node logs", "-",
        f"≥ {PACKAGES_TARGET_PER_MIN:.0f} packages/min")
    base = Path(tempfile.mkdtemp(prefix="dblogpack-bench-api-"))
    try:
        with ctx.console.status("api-packages: generating 100 MB of mongod.log"):
            logs = _node_logs(base / "node", NODE_LOG_BYTES)
        with serving(base / "data") as server, httpx.Client(timeout=60) as http:
            # One node per pair of packages: the per-node limit (2) never refuses a submission.
            cluster, nodes = _register_nodes(server, http, logs.directory, (count + 1) // 2)
            with ctx.console.status(f"api-packages: building {count} packages"):
                started = time.perf_counter()
                ids = {_submit(server, http, cluster, nodes[n // 2], logs.window, n): n % 2
                       for n in range(count)}
                infos = _wait_all(server, http, cluster, list(ids), 600.0)
                elapsed = time.perf_counter() - started
    except RuntimeError as exc:
        result.note = str(exc)
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return _packages_result(result, logs, ids, infos, elapsed)


def _submit(server: Server, http: httpx.Client, cluster: str, node: str, window: TimeWindow,
            number: int) -> str:
    assert window.begin is not None and window.end is not None
    return str(server.call(http, "BackupUMongoDBLog", {
        "ClusterId": cluster, "NodeId": node, "Name": f"bench-{number}",
        "Begin": int(window.begin), "End": int(window.end),
        "LogType": ("SlowLog", "ErrorLog")[number % 2]})["PackageId"])


def _packages_result(result: RowResult, logs: NodeLogs, ids: dict[str, int],
                     infos: dict[str, dict[str, Any]], elapsed: float) -> RowResult:
    expected = {0: logs.expected_entries(LogKind.SLOW), 1: logs.expected_entries(LogKind.ERROR)}
    wrong = [i for i, kind in ids.items() if infos[i]["State"] != "Package_Success"
             or infos[i]["EntryCount"] != expected[kind]]
    per_minute = len(ids) / elapsed * 60
    result.a_seconds = elapsed / len(ids)
    result.passed = not wrong and per_minute >= PACKAGES_TARGET_PER_MIN
    result.check = ("every EntryCount as recorded" if not wrong
                    else f"{len(wrong)} packages failed or miscounted: {infos[wrong[0]]}")
    result.note = f"{per_minute:.0f} packages/min ({len(ids)} in {elapsed:.1f} s)"
    return result


ROWS: list[tuple[str, Row]] = [("api-list", list_calls), ("api-packages", packages_per_minute)]
