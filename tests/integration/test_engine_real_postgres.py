"""The engine on real PostgreSQL 15 output: a package holds exactly the recorded entries, whole.

What must be in a package comes from the workload's own record (markers and client-side time
brackets), and the expected bytes from a simple reference framing written here, never from the
engine. Checked for stderr, csvlog and jsonlog, read over SQL (least-privileged role), from the
files on disk, and through `dblogpack pack`.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.pgcluster import (
    PGBADGER_LOG_LINE_PREFIX,
    PgCluster,
    PgClusterError,
    managed_logging_settings,
)
from tests.support.pgframing import FRAMING as REFERENCE_FRAMING
from tests.support.pgframing import csv_records
from tests.support.pgworkload import Event, WorkloadRecord, run_workload

from dblogpack import pipeline
from dblogpack.model import FormatConfig, LogKind, PackageSpec, ResourceKind, TimeWindow
from dblogpack.sources.base import LogSource
from dblogpack.sources.local import DirSource
from dblogpack.sources.pgsql import REQUIRED_GRANTS, PostgresSource

DESTINATIONS = {
    "stderr": (".log", "pg-stderr"),
    "csvlog": (".csv", "pg-csv"),
    "jsonlog": (".json", "pg-json"),
}
MIN_DURATION_MS = 300.0  # between the workload's short (110 ms) and long (350 ms) sleeps
# Windows as indexes into the workload's boundaries (whole seconds in quiet gaps). The middle
# phase has phases on both sides, and the workload ends each phase in files the collector keeps
# across the gap, so both its edges cut through a file of every destination.
WINDOWS = {"every-phase": (0, -1), "middle-phase": (1, 2), "last-phase": (2, 3)}
MARKER = re.compile(rb"wl:(\d+)\b")
DURATION = re.compile(rb"duration: (\d+(?:\.\d+)?) ms")


@dataclass
class LoggedRun:
    """A cluster that ran the recorded workload, and how its logs are written."""

    cluster: PgCluster
    record: WorkloadRecord
    reader_dsn: str

    @property
    def prefix(self) -> str:
        return self.cluster.settings["log_line_prefix"]

    @property
    def timezone(self) -> str:
        return self.cluster.settings["log_timezone"]

    def files(self, destination: str) -> list[Path]:
        suffix = DESTINATIONS[destination][0]
        return sorted(self.cluster.log_dir.glob(f"postgresql-*{suffix}"))

    def window(self, name: str) -> TimeWindow:
        first, last = WINDOWS[name]
        return TimeWindow(self.record.boundaries[first], self.record.boundaries[last])

    def format(self, destination: str) -> FormatConfig:
        name = DESTINATIONS[destination][1]
        prefix = self.prefix if destination == "stderr" else None
        return FormatConfig(name, log_line_prefix=prefix, timezone=self.timezone)


def _recorded(cluster: PgCluster, reader: str, phases: int) -> LoggedRun:
    record = run_workload(cluster, phases)
    dsn = cluster.create_role(reader, "reader-pw", *REQUIRED_GRANTS)
    return LoggedRun(cluster, record, dsn)


@pytest.fixture(scope="module")
def default_run(pg_logging_cluster: PgCluster) -> LoggedRun:
    """The shared logging cluster (`%m [%p] %q%u@%d `, UTC) after the workload."""
    return _recorded(pg_logging_cluster, "engine_reader", phases=3)


@pytest.fixture(scope="module")
def pgbadger_run() -> Iterator[LoggedRun]:
    """A second cluster logging with pgBadger's prefix (`%t`: whole seconds) in New York time."""
    settings = managed_logging_settings(
        log_line_prefix=PGBADGER_LOG_LINE_PREFIX, log_timezone="America/New_York"
    )
    cluster = PgCluster(tempfile.mkdtemp(prefix="dblogpack-pg-badger-"), settings=settings)
    try:
        cluster.start()
    except PgClusterError as exc:
        pytest.fail(f"could not start the pgBadger-style PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield _recorded(cluster, "badger_reader", phases=3)
    finally:
        cluster.destroy()


# -- the reference: what a package must hold, by the record and simple framing -------------


def complete_csv_records(data: bytes) -> list[bytes]:
    records = csv_records(data)
    assert sum(map(len, records)) == len(data), "csvlog ends inside a quoted field"
    return records


FRAMING: dict[str, Callable[[bytes], list[bytes]]] = {
    **REFERENCE_FRAMING, "csvlog": complete_csv_records
}


def markers_in(data: bytes) -> set[int]:
    return {int(m) for m in MARKER.findall(data)}


def reference_entries(
    run: LoggedRun, destination: str, events: list[Event]
) -> dict[str, list[bytes]]:
    """`logs/<name>` → the file's entries carrying an expected event's marker, in file order."""
    wanted = {e.number for e in events}
    members: dict[str, list[bytes]] = {}
    for path in run.files(destination):
        chosen = [e for e in FRAMING[destination](path.read_bytes()) if markers_in(e) & wanted]
        if chosen:
            members[f"logs/{path.name}"] = chosen
    found = markers_in(b"".join(b"".join(entries) for entries in members.values()))
    # The reference itself: the server must have logged every recorded event.
    assert found == wanted, f"server log lacks recorded events {sorted(wanted - found)}"
    return members


def expected_members(run: LoggedRun, destination: str, events: list[Event]) -> dict[str, bytes]:
    return {m: b"".join(e) for m, e in reference_entries(run, destination, events).items()}


def logged_duration_ms(entry: bytes) -> float:
    found = DURATION.search(entry)
    assert found is not None, f"not a duration entry: {entry[:200]!r}"
    return float(found.group(1))


# -- reading a package ----------------------------------------------------------------------


@dataclass
class Package:
    manifest: dict[str, Any]
    logs: dict[str, bytes]

    @classmethod
    def open(cls, data: bytes) -> Package:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {}
            for info in tar.getmembers():
                handle = tar.extractfile(info)
                assert handle is not None, f"{info.name} is not a regular file"
                members[info.name] = handle.read()
        manifest = json.loads(members.pop("manifest.json"))
        return cls(manifest, {k: v for k, v in members.items() if k.startswith("logs/")})


def pack(
    run: LoggedRun,
    source: LogSource,
    fmt: FormatConfig,
    log_type: str,
    window: TimeWindow,
    files: list[Path] | None = None,
    min_duration_ms: float | None = None,
) -> Package:
    spec = PackageSpec(
        id="pkg-test",
        name=f"{log_type}-package",
        kind=ResourceKind.PGSQL,
        resource_id="upgsql-test",
        node_id=None,
        log_type=LogKind(log_type),
        window=window,
        files=None if files is None else tuple(p.name for p in files),
        min_duration_ms=min_duration_ms,
    )
    out = io.BytesIO()
    pipeline.run(spec, source, fmt, out, workers=2, compresslevel=1)
    return Package.open(out.getvalue())


def assert_exact(
    package: Package, run: LoggedRun, destination: str, log_type: str, window: TimeWindow
) -> None:
    events = run.record.expected(log_type, window.begin, window.end)
    assert events, "a window without expected entries tests nothing"
    expected = expected_members(run, destination, events)
    assert package.manifest["totals"]["entries"] == len(events)
    assert sorted(package.logs) == sorted(expected)
    for member, content in expected.items():
        assert package.logs[member] == content, f"{member} differs from the server's entries"
    # Fragments quote identifiers: csvlog doubles the quotes, jsonlog escapes them.
    text = b"".join(package.logs.values()).decode().replace('\\"', '"').replace('""', '"')
    for event in events:
        for fragment in event.fragments:
            assert fragment in text, f"{event} is not whole: {fragment!r} missing"


# -- the specifications ---------------------------------------------------------------------


@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_the_windows_cross_rotated_files_and_cut_through_them(
    default_run: LoggedRun, destination: str
) -> None:
    """The scenario is real: several files per window, and window edges inside a file."""
    window = default_run.window("every-phase")
    members = reference_entries(
        default_run, destination, default_run.record.expected("all", window.begin, window.end)
    )
    assert len(members) >= 3
    middle = default_run.window("middle-phase")
    for edge in (middle.begin, middle.end):
        before = {e.number for e in default_run.record.events if e.answered < edge}
        after = {e.number for e in default_run.record.events if e.sent > edge}
        split_files = [
            m
            for m, entries in members.items()
            if markers_in(b"".join(entries)) & before and markers_in(b"".join(entries)) & after
        ]
        assert split_files, f"no file holds entries on both sides of the window edge {edge}"


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("log_type", ["slow", "error", "all"])
@pytest.mark.parametrize("destination", list(DESTINATIONS))
class TestPackagesOfARealServer:
    def test_read_over_sql_as_a_least_privileged_role(
        self, default_run: LoggedRun, destination: str, log_type: str, window: str
    ) -> None:
        files = default_run.files(destination)
        with PostgresSource(default_run.reader_dsn) as source:
            package = pack(
                default_run,
                source,
                default_run.format(destination),
                log_type,
                default_run.window(window),
                files,
            )
        assert_exact(package, default_run, destination, log_type, default_run.window(window))

    def test_read_from_the_files_on_disk(
        self, default_run: LoggedRun, destination: str, log_type: str, window: str
    ) -> None:
        suffix = DESTINATIONS[destination][0]
        source = DirSource(default_run.cluster.log_dir, f"postgresql-*{suffix}")
        package = pack(
            default_run,
            source,
            default_run.format(destination),
            log_type,
            default_run.window(window),
        )
        assert_exact(package, default_run, destination, log_type, default_run.window(window))


@pytest.mark.parametrize("log_type", ["slow", "error"])
@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_pgbadger_prefix_and_a_non_utc_timezone_as_the_server_reports_them(
    pgbadger_run: LoggedRun, destination: str, log_type: str
) -> None:
    window = pgbadger_run.window("middle-phase")
    with PostgresSource(pgbadger_run.reader_dsn) as source:
        # What a registration without LogLinePrefix/LogTimezone can learn from the server.
        shown = source.logging_settings()
        assert shown is not None, "the postgres source always reports the server's settings"
        fmt = FormatConfig(
            DESTINATIONS[destination][1],
            log_line_prefix=shown.log_line_prefix if destination == "stderr" else None,
            timezone=shown.log_timezone,
        )
        package = pack(pgbadger_run, source, fmt, log_type, window, pgbadger_run.files(destination))
    assert_exact(package, pgbadger_run, destination, log_type, window)


@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_min_duration_keeps_only_statements_at_least_that_slow(
    default_run: LoggedRun, destination: str
) -> None:
    window = default_run.window("every-phase")
    with PostgresSource(default_run.reader_dsn) as source:
        package = pack(
            default_run,
            source,
            default_run.format(destination),
            "slow",
            window,
            default_run.files(destination),
            min_duration_ms=MIN_DURATION_MS,
        )
    events = default_run.record.expected("slow", window.begin, window.end)
    # Membership by the duration the server itself logged, so a statement slowed down by a
    # busy machine cannot make the test flaky.
    expected = {}
    for member, entries in reference_entries(default_run, destination, events).items():
        kept = [e for e in entries if logged_duration_ms(e) >= MIN_DURATION_MS]
        if kept:
            expected[member] = kept
    kept_events = markers_in(b"".join(b"".join(e) for e in expected.values()))
    assert kept_events >= {e.number for e in events if e.floor_ms >= MIN_DURATION_MS}
    assert kept_events < {e.number for e in events}
    assert package.logs == {m: b"".join(e) for m, e in expected.items()}
    assert package.manifest["totals"]["entries"] == len(kept_events)


@pytest.mark.parametrize("log_type", ["slow", "error"])
def test_auto_detects_each_destinations_format_in_one_package(
    default_run: LoggedRun, log_type: str
) -> None:
    window = default_run.window("middle-phase")
    fmt = FormatConfig("auto", log_line_prefix=default_run.prefix, timezone=default_run.timezone)
    files = [p for d in DESTINATIONS for p in default_run.files(d)]
    with PostgresSource(default_run.reader_dsn) as source:
        package = pack(default_run, source, fmt, log_type, window, files)
    events = default_run.record.expected(log_type, window.begin, window.end)
    expected: dict[str, bytes] = {}
    for destination in DESTINATIONS:
        expected.update(expected_members(default_run, destination, events))
    assert package.manifest["totals"]["entries"] == 3 * len(events)
    assert package.logs == expected


@pytest.mark.parametrize("run_name", ["default_run", "pgbadger_run"])
@pytest.mark.parametrize("log_type", ["slow", "error"])
@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_offline_pack_command_on_the_servers_files(
    request: pytest.FixtureRequest, run_name: str, destination: str, log_type: str, tmp_path: Path
) -> None:
    run: LoggedRun = request.getfixturevalue(run_name)
    window = run.window("middle-phase")
    fmt = run.format(destination)
    out = tmp_path / "package.tar.gz"
    argv = [
        str(Path(sys.executable).with_name("dblogpack")), "pack", *map(str, run.files(destination)),
        "--type", log_type, "--begin", f"{window.begin:.0f}", "--end", f"{window.end:.0f}",
        "--format", fmt.name, "--timezone", run.timezone, "--out", str(out),
    ]  # fmt: skip
    if fmt.log_line_prefix is not None:
        argv += ["--log-line-prefix", fmt.log_line_prefix]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert_exact(Package.open(out.read_bytes()), run, destination, log_type, window)
