"""An entry of many megabytes (a bulk INSERT logged whole): past the chunk it is cut in, it is
read a chunk at a time, once; a summary reads its statement and message from their head, in
memory that does not grow with it, and counts it as its whole statement would be."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from tests.unit.test_formats_window import BASE_MS, csv_record, pg_time, synthetic_log
from tests.unit.test_scan_chunks import LONG_SLOW, ReadSizes, scan_file

from dblogpack import chunkreads, scanpool
from dblogpack.formats import build
from dblogpack.formats.pg_csv import csv_detail
from dblogpack.model import DETAIL_CHARS, FormatConfig, LogKind, Query, TimeWindow
from dblogpack.sqlshape import FINGERPRINT_CHARS, fingerprint_sql

EVERYTHING = TimeWindow(None, None)
ONE_LINE = {
    **LONG_SLOW,
    "pg-stderr": lambda ms, i: f"{pg_time(ms)} [{i}] LOG:  duration: {i}.000 ms  statement: "
    "INSERT INTO t VALUES " + "(1, 'abc'), " * 30_000 + "(2, 'z')\n",
}


@pytest.mark.parametrize("name", ["mongo-json", "mongo-legacy", "pg-stderr"])
def test_the_chunks_after_a_cut_inside_one_line_are_read_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A one-line entry of ~350 KB among short ones, chunks of 16 KiB growing to 64 KiB: its
    # bytes past the cut were read in chunks doubling from 16 to 64 KiB each time, read again
    # at each doubling (~1.9x the file in all); no line starts in them, so no entry does.
    data, entries = synthetic_log(name, count=400)
    at, ms = entries[200][0], entries[200][2]
    data = data[:at] + ONE_LINE[name](ms, 200).encode() + data[at:]
    path = tmp_path / "a.log"
    path.write_bytes(data)
    monkeypatch.setattr(chunkreads, "MAX_CHUNK", 64 * 1024)
    monkeypatch.setattr(scanpool, "MAX_CHUNK", 64 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    reads = ReadSizes(monkeypatch)
    scanned = scan_file(path, name, Query(EVERYTHING, LogKind.ALL))

    assert (list(scanned.spans), scanned.entries, scanned.warnings) == ([(0, len(data))], 401, [])
    assert sum(reads.sizes) < 1.3 * len(data)


def long_statement() -> str:
    return "INSERT INTO t VALUES " + "(1, 'abcdefghij', 2.5), " * 400_000 + "(0, 'z', 0)"


def pg_stderr_log(statement: str) -> bytes:
    short = f"{pg_time(BASE_MS)} [7] LOG:  duration: 2.000 ms  statement: SELECT 1\n"
    long = f"{pg_time(BASE_MS + 1)} [7] LOG:  duration: 5000.000 ms  statement: {statement}\n"
    return (short + long).encode()


def pg_csv_log(statement: str) -> bytes:
    message = f"duration: 5000.000 ms  statement: {statement}"
    return (csv_record(BASE_MS, "duration: 2.000 ms  statement: SELECT 1") +
            csv_record(BASE_MS + 1, message, i=1)).encode()


@pytest.mark.parametrize(("name", "log"), [("pg-stderr", pg_stderr_log), ("pg-csv", pg_csv_log)])
def test_a_slow_statement_of_megabytes_is_summarised_from_its_head(name: str, log: object) -> None:
    statement = long_statement()  # 10 MB
    buf = log(statement)  # type: ignore[operator]
    log_format = build(FormatConfig(name, "%m [%p] "))
    tracemalloc.start()
    try:
        result = log_format.scan(buf, Query(EVERYTHING, LogKind.SLOW, details=True), "a.log", 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The statement was copied, decoded and copied again: several times its size.
    assert peak < len(buf) // 4
    assert result.entries == 2
    (long,) = [group for group in result.details if group.first.duration_ms == 5000.0]
    read = long.first.statement or ""
    assert read == statement[: len(read)]  # its head: all a summary reads of it
    assert FINGERPRINT_CHARS <= len(read) <= DETAIL_CHARS
    assert len(long.first.message) <= DETAIL_CHARS
    assert fingerprint_sql(long.first.statement) == fingerprint_sql(statement)


def test_a_csv_record_cut_inside_its_message_is_known_slow_from_its_head() -> None:
    # A chunk cut inside a record longer than the longest chunk (or a file cut there): its
    # message's quote does not close, yet its duration starts the message.
    statement = long_statement()
    cut = pg_csv_log(statement)[: 1 << 20]
    result = build(FormatConfig("pg-csv")).scan(
        cut, Query(EVERYTHING, LogKind.SLOW, details=True), "postgresql.csv", 0
    )

    assert result.entries == 2
    assert result.spans[-1][1] == len(cut)  # selected up to the cut, to be carried on past it
    (long,) = [group for group in result.details if group.first.duration_ms == 5000.0]
    read = long.first.statement or ""
    assert read == statement[: len(read)] and len(read) >= FINGERPRINT_CHARS


def test_a_cut_csv_records_details_are_what_the_csv_module_reads_of_it() -> None:
    record = csv_record(BASE_MS, "duration: 5.000 ms  statement: SELECT 'a\"\"b'\nFROM t").encode()
    for cut in range(record.index(b"statement: SELECT"), record.index(b"FROM t") + 6):
        data = record[:cut]  # a file cut inside the message
        result = build(FormatConfig("pg-csv")).scan(
            data, Query(EVERYTHING, LogKind.SLOW, details=True), "postgresql.csv", 0
        )
        (group,) = result.details
        detail = group.first
        assert detail == csv_detail(data, 0, len(data), detail.timestamp, detail.duration_ms)
