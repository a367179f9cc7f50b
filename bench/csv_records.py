"""`python -m bench.csv_records`: pg-csv's record pass against the line count it replaced.

A 4 MiB chunk of csvlog records as PostgreSQL writes them (a quarter slow statements whose
quoted text spans two lines, a quarter errors, the rest connection lines), the best of 20
calls: the regex count of lines starting like a record (which miscounts a quoted line that reads
like one), the compiled record pass, and a whole all-entries scan of the chunk (docs/engine.md,
"pg-csv's records").
"""

from __future__ import annotations

import re
import time

from rich.console import Console
from rich.table import Table

from bench.primitives import CHUNK, _best_ms
from dblogpack.formats import build
from dblogpack.formats.pg_csv import _TS, record_starts
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

_MESSAGES = [
    ("LOG", "00000", "duration: {i}.000 ms  statement: SELECT 'a\nb', {i}"),
    ("ERROR", "42P01", 'relation "x{i}" does not exist'),
    ("LOG", "00000", "connection received: host=[local]"),
    ("LOG", "00000", "connection authorized: user=u database=d"),
]


def pg_time(unix_ms: int) -> str:
    """A UTC time as log_line_prefix's %m and csvlog's log_time write it."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_ms // 1000))
    return f"{stamp}.{unix_ms % 1000:03d} UTC"


def csvlog_record(
    ts: str, pid: int, severity: str, code: str, message: str, query: str | None = None
) -> str:
    """One csvlog record as PostgreSQL 14-17 writes it (26 columns; text fields quoted, quotes
    doubled), with a `query` column when given."""

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return (
        f'{ts},"u","d",{pid},"[local]",1.{pid:x},1,"SELECT",{ts},3/0,0,{severity},{code},'
        f'{quoted(message)},,,,,,{"" if query is None else quoted(query)},,,'
        '"psql","client backend",,0\n'
    )


def csvlog_chunk() -> bytes:
    records, size, i = [], 0, 0
    while size < CHUNK:
        ts = pg_time((1714564800 + i // 100) * 1000 + i % 1000)
        severity, code, message = _MESSAGES[i % len(_MESSAGES)]
        record = csvlog_record(ts, i, severity, code, message.format(i=i)).encode()
        records.append(record)
        size, i = size + len(record), i + 1
    return b"".join(records)


# What pg-csv counted before its record pass: the lines starting like a record.
_LINE_STARTS = re.compile(rb"\n(?=" + _TS + rb",)")


def main() -> None:
    chunk = csvlog_chunk()
    csv = build(FormatConfig("pg-csv"))
    everything = Query(TimeWindow(None, None), LogKind.ALL)
    rows = [
        ("regex count of lines starting like a record", lambda: _LINE_STARTS.findall(chunk)),
        ("compiled record pass (csv_record_starts)", lambda: record_starts(chunk, 0, len(chunk))),
        ("all-entries scan of the chunk", lambda: csv.scan(chunk, everything, "f", 0)),
    ]
    table = Table(title=f"pg-csv, {len(chunk) >> 20} MiB chunk, best of 20")
    table.add_column("pass")
    table.add_column("ms", justify="right")
    for name, call in rows:
        table.add_row(name, f"{_best_ms(call):.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
