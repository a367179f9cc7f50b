"""The reference framing of a real PostgreSQL server's log files: where each entry ends, by the
simplest rules, independent of dblogpack's own framers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SEVERITY = re.compile(
    rb"^.*? (LOG|ERROR|WARNING|FATAL|PANIC|NOTICE|INFO|DEBUG[1-5]?|DETAIL|HINT|CONTEXT|STATEMENT"
    rb"|QUERY|LOCATION):  "
)
BELONGS_TO_PREVIOUS = {b"DETAIL", b"HINT", b"CONTEXT", b"STATEMENT", b"QUERY", b"LOCATION"}


def stderr_entries(data: bytes) -> list[bytes]:
    """Entries of a stderr log: a line, its TAB continuations and its DETAIL/HINT/... lines."""
    entries: list[bytes] = []
    for line in data.splitlines(keepends=True):
        severity = SEVERITY.match(line)
        continues = line.startswith(b"\t") or (
            severity is not None and severity.group(1) in BELONGS_TO_PREVIOUS
        )
        if continues and entries:
            entries[-1] += line
        else:
            entries.append(line)
    return entries


def csv_records(data: bytes) -> list[bytes]:
    """Records of a csvlog: lines joined until the quotes balance (doubled quotes keep parity).

    An unfinished last record (the quotes never balance) is left out.
    """
    records: list[bytes] = []
    pending = b""
    for line in data.splitlines(keepends=True):
        pending += line
        if pending.count(b'"') % 2 == 0:
            records.append(pending)
            pending = b""
    return records


def json_records(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


FRAMING: dict[str, Callable[[bytes], list[bytes]]] = {
    "stderr": stderr_entries,
    "csvlog": csv_records,
    "jsonlog": json_records,
}
