"""Acceptance (issue #3): a PostgreSQL 15 logging like a managed instance, after a recorded
workload, packaged through the official SDK against a running `dblogpack serve` — over SQL with
the least-privileged role, and from its log directory with a `dir` source.

A package must hold exactly the entries of the workload's recorded events in the window: found
in the server's own files by their markers with a simple reference framing, never by the engine.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.acceptance import Package, download, sdk, wait_for_package
from tests.support.apiserver import DBLOGPACK, ApiServer, start_server
from tests.support.pgcluster import PgCluster
from tests.support.pgframing import FRAMING
from tests.support.pgworkload import Event, WorkloadRecord, run_workload
from ucloud.client import Client
from ucloud.core.exc import RetCodeException

from dblogpack.sources.pgsql import REQUIRED_GRANTS

LIST = "ListUPgSQLLogPackage"
SUFFIX = {"stderr": ".log", "csvlog": ".csv", "jsonlog": ".json"}
PACKAGE_TYPE = {"slow": "SlowLog", "error": "ErrorLog", "all": "All"}
MARKER = re.compile(rb"wl:(\d+)\b")
# Every destination starts an entry with the `%m` time, in UTC here.
ENTRY_TIME = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC")


@dataclass
class Instance:
    instance_id: str
    source: str  # postgres | dir


@dataclass
class LoggedCluster:
    cluster: PgCluster
    record: WorkloadRecord
    server: ApiServer
    client: Client
    instances: dict[str, Instance]

    def window(self, name: str) -> tuple[int, int]:
        edges = {"every-phase": (0, -1), "last-phase": (-2, -1)}[name]
        return int(self.record.boundaries[edges[0]]), int(self.record.boundaries[edges[1]])


@pytest.fixture(scope="module")
def logged(
    pg_logging_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoggedCluster]:
    """The logging cluster after a two-phase workload, registered twice in a serve with workers:
    over SQL as a role holding exactly the documented grants, and as its log directory."""
    record = run_workload(pg_logging_cluster, phases=2)
    role = f"acceptance_reader_{secrets.token_hex(3)}"
    dsn = pg_logging_cluster.create_role(role, secrets.token_hex(8), *REQUIRED_GRANTS)
    server = start_server(tmp_path_factory.mktemp("acc-pg") / "data", {"DBLOGPACK_WORKERS": "2"})
    try:
        client = sdk(server, server.admin)
        sources = {
            "postgres": {"SourceType": "postgres", "DSN": dsn},
            "dir": {"SourceType": "dir", "LogDir": str(pg_logging_cluster.log_dir),
                    "LogPattern": "postgresql-*", "LogTimezone": "UTC"},
        }
        instances = {
            via: Instance(str(client.invoke("RegisterUPgSQLInstance", {
                "Name": f"pg-{via}", **source})["InstanceID"]), via)
            for via, source in sources.items()
        }
        yield LoggedCluster(pg_logging_cluster, record, server, client, instances)
    finally:
        server.stop()


def _entry_time(entry: bytes) -> float:
    found = ENTRY_TIME.search(entry)
    assert found is not None, entry[:200]
    stamp = datetime.strptime(found.group(1).decode(), "%Y-%m-%d %H:%M:%S.%f")
    return stamp.replace(tzinfo=UTC).timestamp()


def expected_members(
    log_dir: Path, destination: str, events: list[Event], window: tuple[int, int]
) -> dict[str, bytes]:
    """Per file, the entries carrying an expected event's marker, time inside the window.

    The time test keeps out entries of other workloads run on the shared cluster (same markers).
    """
    wanted = {e.number for e in events}
    members: dict[str, bytes] = {}
    found: set[int] = set()
    for path in sorted(log_dir.glob(f"postgresql-*{SUFFIX[destination]}")):
        chosen = [
            entry for entry in FRAMING[destination](path.read_bytes())
            if {int(m) for m in MARKER.findall(entry)} & wanted
            and window[0] <= _entry_time(entry) < window[1]
        ]
        if chosen:
            members[path.name] = b"".join(chosen)
            found |= {int(m) for entry in chosen for m in MARKER.findall(entry)} & wanted
    assert found == wanted, f"the server did not log events {sorted(wanted - found)}"
    return members


# -- the acceptance flow --------------------------------------------------------------------

CASES = [
    ("postgres", "stderr", "slow", "every-phase"),
    ("postgres", "jsonlog", "error", "last-phase"),
    ("dir", "stderr", "slow", "last-phase"),
    ("dir", "csvlog", "error", "every-phase"),
]


@pytest.mark.parametrize(("via", "destination", "log_type", "window_name"), CASES)
def test_a_package_holds_exactly_what_the_workload_logged_in_the_window(
    logged: LoggedCluster, via: str, destination: str, log_type: str, window_name: str
) -> None:
    client, instance = logged.client, logged.instances[via]
    begin, end = logged.window(window_name)
    events = logged.record.expected(log_type, begin, end)
    expected = expected_members(logged.cluster.log_dir, destination, events, (begin, end))

    listed = client.invoke("ListUPgSQLLog", {"InstanceID": instance.instance_id,
                                             "BeginTime": begin, "EndTime": end})["DataSet"]
    names = [row["Name"] for row in listed if row["Name"].endswith(SUFFIX[destination])]
    assert set(expected) <= set(names), (sorted(expected), names)
    for row in listed:
        on_disk = logged.cluster.log_dir / row["Name"]
        assert row["Size"] == on_disk.stat().st_size, row
        assert row["BeginTime"] <= row["EndTime"] and row["BeginTime"] < end, row

    params = {"InstanceID": instance.instance_id, "BackupName": f"acc-{via}-{destination}",
              "BackupFile": names, "LogType": log_type, "BeginTime": begin, "EndTime": end}
    backup_id = client.invoke("BackupUPgSQLLog", params)["BackupID"]
    info = wait_for_package(client, LIST, {"InstanceID": instance.instance_id}, backup_id)
    assert info["State"] == "Package_Success", info
    assert (info["InstanceID"], info["PackageType"], info["EntryCount"]) == (
        instance.instance_id, PACKAGE_TYPE[log_type], len(events))

    url = client.invoke("GetUPgSQLLogPackageURL", {"InstanceID": instance.instance_id,
                                                   "BackupID": backup_id, "ValidTime": 300})
    package = Package.open(download(url["BackupPath"]))
    assert package.logs == expected
    assert package.manifest["totals"]["entries"] == len(events)
    assert package.manifest["package"]["log_type"] == log_type
    assert {f["name"] for f in package.manifest["files"] if f["entries"]} == set(expected)
    _assert_whole_entries(package, events)


def _assert_whole_entries(package: Package, events: list[Event]) -> None:
    # csvlog doubles a quote, jsonlog escapes it: compare the text as the server meant it.
    text = b"".join(package.logs.values()).decode().replace('""', '"').replace('\\"', '"')
    for event in events:
        for fragment in event.fragments:
            assert fragment in text, f"entry of {event.marker} cut short: no {fragment!r}"


@pytest.mark.parametrize("file_name", ["postgresql-1999-01-01_000000.log", "../../etc/passwd"])
def test_a_backup_file_the_instance_does_not_have_is_refused_by_name(
    logged: LoggedCluster, file_name: str
) -> None:
    begin, end = logged.window("every-phase")
    with pytest.raises(RetCodeException) as refused:
        logged.client.invoke("BackupUPgSQLLog", {
            "InstanceID": logged.instances["postgres"].instance_id, "BackupName": "missing",
            "BackupFile": [file_name], "LogType": "slow", "BeginTime": begin, "EndTime": end})
    assert refused.value.code == 230, refused.value
    assert "BackupFile" in refused.value.message
    assert str(logged.cluster.data_dir) not in refused.value.message


def test_the_log_listing_of_an_empty_window_is_empty(logged: LoggedCluster) -> None:
    listed = logged.client.invoke("ListUPgSQLLog", {
        "InstanceID": logged.instances["postgres"].instance_id,
        "BeginTime": int(time.time()) - 400 * 86400, "EndTime": int(time.time()) - 399 * 86400})
    assert listed["DataSet"] == []


def test_package_cli_packages_every_listed_file_of_the_window_and_downloads_it(
    logged: LoggedCluster, tmp_path: Path
) -> None:
    begin, end = logged.window("last-phase")
    events = logged.record.expected("slow", begin, end)
    admin, out = logged.server.admin, tmp_path / "slow.tar.gz"
    done = subprocess.run(
        [str(DBLOGPACK), "--endpoint", logged.server.url, "--public-key", admin.public_key,
         "--private-key", admin.private_key, "package", "pgsql", "--instance-id",
         logged.instances["postgres"].instance_id, "--type", "slow", "--begin", str(begin),
         "--end", str(end), "--poll", "0.2", "--wait", "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    package = Package.open(out.read_bytes())
    # Without --file every destination is packaged: each event is logged in all three.
    assert package.manifest["totals"]["entries"] == 3 * len(events)
    for destination in SUFFIX:
        expected = expected_members(logged.cluster.log_dir, destination, events, (begin, end))
        assert {n: b for n, b in package.logs.items() if n.endswith(SUFFIX[destination])} == (
            expected)
