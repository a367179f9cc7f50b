"""pg-csv: PostgreSQL csvlog, one CSV record per entry; quoted fields may span lines.

Column sets: PostgreSQL 12 writes 23 columns (log_time … application_name),
13 adds backend_type (24), 14-17 add leader_pid and query_id (26). The first
14 columns, all this module reads, are the same in every set. A record
starts at a line beginning `<log_time>,`; a quoted field line that happens to
begin that way would be misread, which csvlog's own content never produces.
Bytes before a buffer's first record are an "unparseable" warning; a stray
line between records is kept with the record before it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from dblogpack.formats.framing import (
    Buffer,
    as_bytes,
    csv_record_end,
    find_all,
    find_any,
)
from dblogpack.formats.pg_message import duration_ms, logged_statement
from dblogpack.formats.scanner import Candidate, LineStartScanner, window_bounds
from dblogpack.formats.timestamps import LocalSecondsCache, load_zone, with_fraction
from dblogpack.model import EntryDetail, FormatConfig, LogKind, TimeWindow

_SEVERITY_COLUMN, _CODE_COLUMN, _MESSAGE_COLUMN, _QUERY_COLUMN = 11, 12, 13, 19

_TS = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:]+"
_FIELD = rb'(?:"[^"]*+(?:""[^"]*+)*+"|[^,"\n]*+)'
_HEAD = re.compile(
    rb"(?P<ts>"
    + _TS
    + rb"),"
    + (_FIELD + rb",") * 10
    + rb"(?P<sev>[A-Z0-9]*),(?P<code>[0-9A-Z]{5})?,(?P<message>"
    + _FIELD
    + rb")"
)
_TIME = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) ([A-Za-z0-9+\-:]+),")
_NEXT_START = re.compile(rb"\n(?=" + _TS + rb",)")
_SLOW_NEEDLE = b',"duration: '
_ERROR_NEEDLES = (b",WARNING,", b",ERROR,", b",FATAL,", b",PANIC,")


class PgCsvFormat(LineStartScanner):
    """PostgreSQL csvlog of any supported version; times read in `log_timezone`."""

    name = "pg-csv"
    _line_start = _TIME
    _next_start = _NEXT_START

    def __init__(self, config: FormatConfig) -> None:
        self._seconds = LocalSecondsCache(load_zone(config.timezone))

    def complete_length(self, buf: Buffer) -> int:
        data = as_bytes(buf)
        start = self._last_start_before(data, len(data))
        # A record start must lie outside quotes, counted from the buffer's first record.
        while start is not None and start > 0 and data.count(b'"', 0, start) % 2:
            start = self._last_start_before(data, start)
        return start or 0

    def _last_entry_start(self, buf: bytes) -> int | None:
        # A line of a quoted field may look like a record's start, and only counting the quotes
        # before it tells (complete_length does, once a chunk): the window's end is bisected.
        return None

    # ---- primitives ------------------------------------------------------------------------

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        found = _TIME.match(buf, start)
        if found is None:
            return None
        try:
            return with_fraction(self._seconds.seconds(found[1], found[3]), found[2])
        except ValueError:
            return None

    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        end = csv_record_end(buf, start, hi)
        if end is None:
            return hi
        # Stray lines up to the next record belong to this one, as in the other text formats.
        following = self._start_at_or_after(buf, end, hi)
        return hi if following is None else following

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        earliest, latest = window_bounds(window)
        slow = kind is LogKind.SLOW
        hits = (
            find_all(buf, _SLOW_NEEDLE, lo, hi) if slow else find_any(buf, _ERROR_NEEDLES, lo, hi)
        )
        for at in hits:
            start = buf.rfind(b"\n", lo, at) + 1 or lo
            head = _HEAD.match(buf, start)
            if head is None:
                continue
            if slow and (head.start("message") != at + 1 or head["sev"] != b"LOG"):
                continue
            if not slow and head.start("sev") != at + 1:
                continue
            ts = self._timestamp_at(buf, start)
            if ts is not None and earliest <= ts < latest:
                # A slow hit's message starts with `"duration: `: read it from this match.
                message = head.start("message"), head.end("message")
                known = duration_ms(buf, *message) if slow else None
                yield start, self._entry_end(buf, start, hi), ts, known, None

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        head = _HEAD.match(buf, start)
        if head is None or not buf.startswith(b'"duration: ', head.start("message")):
            return None
        return duration_ms(buf, head.start("message"), head.end("message"))

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        fields = _record_fields(buf[start:end])
        message = _column(fields, _MESSAGE_COLUMN)
        return EntryDetail(
            timestamp=ts,
            severity=_column(fields, _SEVERITY_COLUMN) or "?",
            duration_ms=duration,
            statement=_column(fields, _QUERY_COLUMN) or logged_statement(message),
            code=_column(fields, _CODE_COLUMN) or None,
            message=message,
        )


def _column(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _record_fields(record: bytes) -> list[str]:
    """One csvlog record's fields (decoded with replacement: bytes are never trusted)."""
    text = record.decode("utf-8", "replace")
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return []
