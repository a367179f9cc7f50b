"""A recorded PostgreSQL workload: the slow statements, errors, warnings and FATALs it caused, when.

Every event carries a unique marker `wl:<n>` that the server writes into its log entry, and the
client-side time bracket [sent, answered]. Phases are separated by quiet gaps that contain a whole
second, so windows with those edges decide membership by the record alone (even for `%t`). Each
phase ends in log files the collector keeps across the gap, so every boundary after a phase falls
inside a file of each destination.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import psycopg
from tests.support.pgcluster import PgCluster

WORKLOAD_DB = "wl_db"
WORKLOAD_APP = "wl-app"
SLOW_SLEEP_S = 0.11  # over the cluster's 100 ms log_min_duration_statement, by a margin
LONG_SLEEP_S = 0.35  # well over SLOW_SLEEP_S, for MinDuration filters
GAP_MARGIN_S = 0.12  # quiet time kept on each side of a phase boundary
SUFFIXES = {"stderr": ".log", "csvlog": ".csv", "jsonlog": ".json"}  # by log_destination
LOGGED_WITHIN_S = 30.0  # the collector writes an entry within this, however loaded the machine
CLOSING_TRIES = 4  # the third warning is sure to be under the size (Workload._end_in_open_files)


class EventKind(StrEnum):
    SLOW = "slow"  # a completed statement slower than log_min_duration_statement
    ERROR = "error"
    WARNING = "warning"
    FATAL = "fatal"
    FAST = "fast"  # completed under the threshold: never logged


@dataclass(frozen=True, slots=True)
class Event:
    """One thing the workload did, and the text its log entry must carry whole."""

    number: int
    kind: EventKind
    sent: float
    answered: float
    # Text found only in the later lines of the entry (DETAIL, HINT, a statement's last line):
    # a package that cut the entry short lacks it.
    fragments: tuple[str, ...] = ()
    floor_ms: float = 0.0  # the least duration the server can log for it (slow statements)

    @property
    def marker(self) -> str:
        return marker(self.number)

    def within(self, begin: float | None, end: float | None) -> bool:
        """Whether the event lies in [begin, end); edges inside its bracket are a test bug."""
        for edge in (begin, end):
            if edge is not None and self.sent <= edge <= self.answered:
                raise AssertionError(f"window edge {edge} falls inside event {self}")
        return (begin is None or self.sent > begin) and (end is None or self.answered < end)


# Several test modules run workloads against the one session cluster: numbering goes on across
# runs, so a marker names one event of the whole session, never an event of an earlier run.
_MARKER_NUMBERS = itertools.count(1)


def marker(number: int) -> str:
    return f"wl:{number}"


@dataclass(slots=True)
class WorkloadRecord:
    """What the workload did; `boundaries` are whole seconds in quiet gaps, first before all."""

    events: list[Event] = field(default_factory=list)
    boundaries: list[float] = field(default_factory=list)

    def expected(self, log_type: str, begin: float | None, end: float | None) -> list[Event]:
        """Events whose entries a `slow`, `error` or `all` package of [begin, end) must hold.

        `all` is every logged event: inside the phases the server logs nothing else.
        """
        errors = {EventKind.ERROR, EventKind.WARNING, EventKind.FATAL}
        kinds = {"slow": {EventKind.SLOW}, "error": errors, "all": {EventKind.SLOW, *errors}}[
            log_type
        ]
        return [e for e in self.events if e.kind in kinds and e.within(begin, end)]


class Workload:
    """Drives a cluster through phases of mixed events, recording each one."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.record = WorkloadRecord()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def run(self, phases: int = 3) -> WorkloadRecord:
        """Set up, then run `phases` phases, each followed by a gap holding a whole-second edge."""
        self._setup()
        try:
            self._gap()
            for phase in range(phases):
                self._phase(phase)
                self._gap()
        finally:
            self.connection.close()
        return self.record

    @property
    def connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.cluster.dsn(dbname=WORKLOAD_DB),
                autocommit=True,
                application_name=WORKLOAD_APP,
            )
        return self._conn

    # -- phases ----------------------------------------------------------

    def _setup(self) -> None:
        if not self.cluster.execute("SELECT 1 FROM pg_database WHERE datname = %s", [WORKLOAD_DB]):
            self.cluster.execute(f"CREATE DATABASE {WORKLOAD_DB}")
        self.connection.execute(b"CREATE TABLE IF NOT EXISTS wl_kv (k text UNIQUE, pad text)")

    def _phase(self, phase: int) -> None:
        for step in range(3):
            self._slow_sleep()
            self._fast()
            self._slow_multiline(lines=20 + 10 * step)
            self._slow_real_query()
            if step % 2 == 0:
                self._unique_violation()
                self._raise_with_hint()
            else:
                self._division_by_zero()
                self._raise_warning()
            self._fast()
        self._slow_long()
        self._fatal_unknown_database()
        self._fatal_wrong_password()
        self._error_multiline()
        self._end_in_open_files()

    def _end_in_open_files(self) -> None:
        """Log warnings until the last one lies, for every destination, in a file under the size.

        After each read from its pipe the collector rotates each destination whose file has
        reached log_rotation_size to a file named by the current second (the same file when
        it already has that name). A phase ending in a full file loses it at the next phase's
        first read, which often holds only the csvlog copy of the first entry (the server
        sends csvlog, jsonlog, stderr): no file of that destination would span the boundary.
        A file under the size stays open until the next phase's first entry has joined it,
        whatever the load. A full file is left at the first read in a later second, so the
        warning after the next whole second, or the one after it, lands in a new file.
        """
        limit = self._rotation_size_bytes()
        if limit == 0:
            return  # no size rotation: a file is only left when the server restarts
        for _ in range(CLOSING_TRIES):
            self._raise_warning()
            sizes = self._sizes_of_files_holding(self.record.events[-1])
            if all(size < limit for size in sizes.values()):
                return
            time.sleep(math.floor(time.time()) + 1.05 - time.time())
        raise AssertionError(f"log files stay at log_rotation_size ({limit} B) or more: {sizes}")

    def _rotation_size_bytes(self) -> int:
        sql = b"SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'log_rotation_size'"
        row = self.connection.execute(sql).fetchone()
        assert row is not None and isinstance(row[0], int)
        return row[0]

    def _sizes_of_files_holding(self, event: Event) -> dict[str, int]:
        """Per destination, the size of the file holding the event's entry once it is written."""
        destinations = self.cluster.settings["log_destination"].split(",")
        entry = re.compile(rb"%s\b[^\n]*\n" % event.marker.encode())
        deadline = time.monotonic() + LOGGED_WITHIN_S
        sizes: dict[str, int] = {}
        while time.monotonic() < deadline:
            for destination in destinations:
                size = _size_of_file_holding(self.cluster, SUFFIXES[destination], entry)
                if size is not None:
                    sizes[destination] = size
            if len(sizes) == len(destinations):
                return sizes
            time.sleep(0.01)
        raise AssertionError(f"the server did not log {event} within {LOGGED_WITHIN_S} s: {sizes}")

    def _gap(self) -> None:
        """Stay quiet across a whole second; that second becomes a boundary."""
        boundary = float(math.ceil(time.time() + GAP_MARGIN_S))
        time.sleep(max(0.0, boundary + GAP_MARGIN_S - time.time()))
        self.record.boundaries.append(boundary)

    # -- events ----------------------------------------------------------

    def _slow_sleep(self) -> None:
        n = self._take()
        self._statement(n, EventKind.SLOW, f"SELECT pg_sleep({SLOW_SLEEP_S}) /* {marker(n)} */")

    def _slow_long(self) -> None:
        n = self._take()
        sql = f"SELECT pg_sleep({LONG_SLEEP_S}) /* {marker(n)} */"
        self._statement(n, EventKind.SLOW, sql, floor_ms=LONG_SLEEP_S * 1000)

    def _slow_multiline(self, lines: int) -> None:
        n = self._take()
        padding = "\n".join(f"       , {i} AS padding_column_{i:03d}" for i in range(lines))
        sql = (
            f"SELECT /* {marker(n)} */ pg_sleep({SLOW_SLEEP_S})\n{padding}\n"
            f"  FROM generate_series(1, 1) AS g /* end {marker(n)} */"
        )
        self._statement(n, EventKind.SLOW, sql, (f"end {marker(n)}",))

    def _slow_real_query(self) -> None:
        n = self._take()
        sql = (
            f"WITH floor AS (SELECT pg_sleep({SLOW_SLEEP_S})) /* {marker(n)} */ "
            "SELECT sum(g), count(*) FROM generate_series(1, 20000) AS g, floor"
        )
        self._statement(n, EventKind.SLOW, sql)

    def _fast(self) -> None:
        n = self._take()
        self._statement(n, EventKind.FAST, f"SELECT {n} AS fast /* {marker(n)} */")

    def _unique_violation(self) -> None:
        n = self._take()
        key = marker(n)
        self.connection.execute(b"INSERT INTO wl_kv (k) VALUES (%s)", [key])
        sql = f"INSERT INTO wl_kv (k) VALUES ('{key}') /* {key} */"
        self._statement(n, EventKind.ERROR, sql, (f"Key (k)=({key}) already exists",))

    def _raise_with_hint(self) -> None:
        n = self._take()
        sql = (
            f"DO $$ BEGIN RAISE EXCEPTION 'failure {marker(n)}' "
            f"USING HINT = 'hint of {marker(n)}'; END $$ /* {marker(n)} */"
        )
        self._statement(n, EventKind.ERROR, sql, (f"hint of {marker(n)}",))

    def _division_by_zero(self) -> None:
        n = self._take()
        self._statement(n, EventKind.ERROR, f"SELECT 1 / 0 AS boom /* {marker(n)} */")

    def _error_multiline(self) -> None:
        n = self._take()
        sql = f"SELECT 1 /* {marker(n)} */\n  , 2 / 0\n  , 3 /* end {marker(n)} */"
        self._statement(n, EventKind.ERROR, sql, (f"end {marker(n)}",))

    def _raise_warning(self) -> None:
        n = self._take()
        sql = f"DO $$ BEGIN RAISE WARNING 'careful {marker(n)}'; END $$"
        self._statement(n, EventKind.WARNING, sql)

    def _fatal_unknown_database(self) -> None:
        n = self._take()
        self._failed_connect(n, self.cluster.dsn(dbname=marker(n)), ())

    def _fatal_wrong_password(self) -> None:
        n = self._take()
        dsn = self.cluster.dsn(user=marker(n), password="not-the-password")
        self._failed_connect(n, dsn, (f'Role "{marker(n)}" does not exist',))

    # -- recording -------------------------------------------------------

    def _take(self) -> int:
        return next(_MARKER_NUMBERS)

    def _statement(
        self,
        n: int,
        kind: EventKind,
        sql: str,
        fragments: Iterable[str] = (),
        floor_ms: float = 0.0,
    ) -> None:
        sent = time.time()
        failed = False
        try:
            self.connection.execute(sql.encode())
        except psycopg.Error:
            failed = True
        answered = time.time()
        if failed != (kind is EventKind.ERROR):
            raise AssertionError(f"workload statement {n} ({kind}) failed={failed}: {sql!r}")
        floor_ms = floor_ms or (SLOW_SLEEP_S * 1000 if kind is EventKind.SLOW else 0.0)
        self.record.events.append(Event(n, kind, sent, answered, tuple(fragments), floor_ms))

    def _failed_connect(self, n: int, dsn: str, fragments: tuple[str, ...]) -> None:
        sent = time.time()
        try:
            psycopg.connect(dsn, connect_timeout=10).close()
        except psycopg.OperationalError:
            answered = time.time()
        else:
            raise AssertionError(f"workload connection {n} was meant to fail: {dsn}")
        self.record.events.append(Event(n, EventKind.FATAL, sent, answered, fragments))


def _size_of_file_holding(cluster: PgCluster, suffix: str, entry: re.Pattern[bytes]) -> int | None:
    """The size of the log file holding a whole (newline-ended) `entry`; None while none does."""
    for path in sorted(cluster.log_dir.glob(f"postgresql-*{suffix}"), reverse=True):
        data = path.read_bytes()
        if entry.search(data):
            return len(data)
    return None


def run_workload(cluster: PgCluster, phases: int = 3) -> WorkloadRecord:
    """Run the standard recorded workload on a cluster logging with `managed_logging_settings`."""
    return Workload(cluster).run(phases)
