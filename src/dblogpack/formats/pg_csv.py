"""pg-csv: PostgreSQL csvlog, one CSV record per entry; quoted fields may span lines.

Column sets: PostgreSQL 12 writes 23 columns (log_time … application_name),
13 adds backend_type (24), 14-17 add leader_pid and query_id (26). The first
23 are the same in every set; this module reads up to the 20th, `query`.

A record starts at a line beginning `<log_time>,` outside quotes. Every buffer
this format is handed (a chunk to scan or frame, a file's head or tail, a probe
while bisecting or cutting pieces for workers) has its records found by reading
their fields from its first line that reads like one (`record_starts`), so a
line of a quoted message that reads like a record's start (a logged statement
quoting a csvlog line) stays inside its record. A buffer read from anywhere (a
probe, a file's tail) starts at its first record that reads whole and ends in
it: a quoted csvlog line, read as a record, breaks the quoting (its quotes are
doubled). A probe that holds nothing else reads no record, and the selector
reads a longer one, up to its bound (selector.Margins.probe_max). Bytes before
a buffer's first record are an "unparseable" warning; a stray line between
records is kept with the record before it.
"""

from __future__ import annotations

import csv
import io
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from copy import copy

from dblogpack.formats.framing import Buffer, as_bytes, find_all, find_any
from dblogpack.formats.pg_message import (
    detail_text,
    duration_and_key,
    duration_ms,
    group_key,
    logged_statement,
)
from dblogpack.formats.scanner import Candidate, EntryScanner, window_bounds
from dblogpack.formats.timestamps import LocalSecondsCache, load_zone, with_fraction
from dblogpack.model import DETAIL_CHARS, EntryDetail, FormatConfig, LogKind, Query, TimeWindow

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.base import ScanResult

_SEVERITY_COLUMN, _CODE_COLUMN, _MESSAGE_COLUMN, _QUERY_COLUMN = 11, 12, 13, 19

_TS = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:]+"
# A record's log_time, read: its seconds, milliseconds and zone.
_TIME_FIELDS = rb"(?P<sec>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(?P<ms>\d{3}) (?P<zone>[A-Za-z0-9+\-:]+)"
_FIELD = rb'(?:"[^"]*+(?:""[^"]*+)*+"|[^,"\n]*+)'
# A record up to its message: time, ten fields, severity and SQLSTATE; then the message.
_LEAD_FIELDS = (
    _TIME_FIELDS + rb"," + (_FIELD + rb",") * 10 + rb"(?P<sev>[A-Z0-9]*),(?P<code>[0-9A-Z]{5})?,"
)
_LEAD = re.compile(_LEAD_FIELDS)
_FIELD_RE = re.compile(_FIELD)
# From the end of the message to the end of the query column: detail, hint, internal_query,
# internal_query_pos, context, then query.
_TO_QUERY = re.compile((rb"," + _FIELD) * 5 + rb",(?P<query>" + _FIELD + rb")")
_TIME = re.compile(_TIME_FIELDS + rb",")
_RECORD_START = re.compile(_TS + rb",")
_UNQUOTED_END = re.compile(rb'[,\n"]')
# A quoted field's doubled quote, one quote in its text (detail_text).
_UNQUOTE = (b'""', b'"')
_SLOW_NEEDLE = b',"duration: '
# `"duration: N ms`: the longest reading of a duration at a message's start.
_DURATION_REACH = 48
_ERROR_NEEDLES = (b",WARNING,", b",ERROR,", b",FATAL,", b",PANIC,")


class PgCsvFormat(EntryScanner):
    """PostgreSQL csvlog of any supported version; times read in `log_timezone`.

    The public methods read the buffer's records first (`_reading`, once a buffer); the
    primitives the scanner's selection and bisection call look them up by bisection.
    """

    name = "pg-csv"

    # The offsets of the records of the buffer being read: set on a `_reading` of it alone.
    _starts: Sequence[int] | None = None
    # The buffer complete_length read last, with its records: a chunk is framed, then its whole
    # records are scanned, and reading them once saves 3.0 ms of a 4 MiB chunk's ~6 (all entries).
    _framed: tuple[bytes, Sequence[int]] | None = None
    # The lead columns and the message's end of the candidate last found: the entry whose
    # details are asked for next.
    _read: tuple[re.Match[bytes], int] | None = None

    def __init__(self, config: FormatConfig) -> None:
        self._seconds = LocalSecondsCache(load_zone(config.timezone))

    def complete_length(self, buf: Buffer) -> int:
        data = as_bytes(buf)
        # The last record may be cut: it is whole only once the next one starts.
        starts = record_starts(data, 0, len(data))
        self._framed = (data, starts)
        return starts[-1] if starts else 0

    def next_entry(self, buf: Buffer, pos: int) -> tuple[int, float] | None:
        data = as_bytes(buf)
        if self._starts is None:  # a probe of the planner's (a scan's bisection has its chunk's)
            # From 0: a file's head, or a chunk, which begin at a record when one starts there.
            return self._probing(data, starts_at_record=pos == 0).next_entry(data, pos)
        return super().next_entry(data, pos)

    def last_timestamp(self, buf: Buffer) -> float | None:
        data = as_bytes(buf)
        if self._starts is None:  # a file's tail
            return self._probing(data).last_timestamp(data)
        return super().last_timestamp(data)

    def scan(self, buf: Buffer, query: Query, file: str, base_offset: int) -> ScanResult:
        data = as_bytes(buf)
        if self._starts is None:
            return self._reading(data).scan(data, query, file, base_offset)
        return super().scan(data, query, file, base_offset)

    def _reading(self, data: bytes) -> PgCsvFormat:
        """This format reading `data` alone, its records found."""
        starts = self._framed_starts(data)
        reading = copy(self)
        reading._starts = starts
        return reading

    def _probing(self, data: bytes, starts_at_record: bool = False) -> PgCsvFormat:
        """This format reading `data` read from anywhere in a file (a probe, a file's tail), from
        its first record that reads whole and ends inside it: csvlog quotes its text fields, so
        a csvlog line quoted inside a statement, read as a record, breaks the quoting (its
        quotes are doubled) and is passed over, not taken for the file's entry at that point
        (its time may be any). One that `data` cuts off may break its quoting past the cut.
        When none does, it reads no records: the selector reads a longer probe, up to its
        bound, past which it takes none to be there (a range wider, never narrower).
        `starts_at_record`: `data` begins at a record when one starts at its first byte."""
        reading = self._reading(data)
        starts = reading._records
        if starts_at_record and starts and starts[0] == 0:
            return reading
        for index, start in enumerate(starts):
            if _ends_inside(data, start):
                reading._starts = starts[index:]
                return reading
        reading._starts = starts[:0]
        return reading

    def _framed_starts(self, data: bytes) -> Sequence[int]:
        """The records of `data`: those complete_length found last when `data` is that buffer or
        its whole records (a prefix ending at one of its record starts, as a framed chunk is),
        else read anew. A framed chunk is so read with the bytes after it in view: a record
        cut off inside a quoted field whose next quote lies past the chunk ends at the next
        record start, as in the whole buffer (read alone, the chunk would end it at its end)."""
        framed, self._framed = self._framed, None
        if framed is not None:
            whole, starts = framed
            if data is whole:
                return starts
            end = bisect_left(starts, len(data))
            if end < len(starts) and starts[end] == len(data) and whole.startswith(data):
                return starts[:end]
        return record_starts(data, 0, len(data))

    # ---- primitives ------------------------------------------------------------------------

    @property
    def _records(self) -> Sequence[int]:
        if self._starts is None:
            raise RuntimeError("pg-csv reads a buffer's records first (PgCsvFormat._reading)")
        return self._starts

    def _start_at_or_after(self, buf: bytes, pos: int, hi: int) -> int | None:
        starts = self._records
        at = bisect_left(starts, pos)
        return starts[at] if at < len(starts) and starts[at] < hi else None

    def _last_start_before(self, buf: bytes, hi: int) -> int | None:
        starts = self._records
        at = bisect_left(starts, hi)
        return starts[at - 1] if at else None

    def _count_entries(self, buf: bytes, lo: int, hi: int) -> int:
        return bisect_left(self._records, hi) - bisect_left(self._records, lo)

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        found = _TIME.match(buf, start)
        return None if found is None else self._time_of(found)

    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        # Up to the next record: its stray lines belong to this one.
        starts = self._records
        at = bisect_right(starts, start)
        return min(starts[at], hi) if at < len(starts) else hi

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        earliest, latest = window_bounds(window)
        slow = kind is LogKind.SLOW
        starts = self._records
        hits = (
            find_all(buf, _SLOW_NEEDLE, lo, hi) if slow else find_any(buf, _ERROR_NEEDLES, lo, hi)
        )
        # The record last read and its lead columns (None: it has none). Read once a record: a
        # long statement may hold thousands of hits, and reading its message for each one cost
        # time quadratic in its length.
        judged, lead = -1, None
        for at in hits:
            index = bisect_right(starts, at) - 1
            if index < 0 or starts[index] < lo:
                continue
            start = starts[index]
            if index != judged:
                judged, lead = index, _LEAD.match(buf, start, hi)
            # The hit counts where it begins the record's message (slow, of a LOG entry) or its
            # severity (error).
            if lead is None or at + 1 != (lead.end() if slow else lead.start("sev")):
                continue
            if slow and lead["sev"] != b"LOG":
                continue
            ts = self._time_of(lead)
            if ts is None or not earliest <= ts < latest:
                continue
            end = min(starts[index + 1], hi) if index + 1 < len(starts) else hi
            message_end = _message_end(buf, lead, hi)
            self._read = lead, message_end  # _detail reads the entry's fields from them
            if slow:
                message = lead.end()
                stop = _duration_stop(message, message_end, end)
                known, key = duration_and_key(buf, lead.start("sev"), message, stop, end)
                if known is None:  # no duration to read: _duration_ms would find none either
                    continue
                yield start, end, ts, known, key
            else:
                # Entries alike from their severity to their record's end share one parse.
                yield start, end, ts, None, group_key(buf, lead.start("sev"), end)

    def _time_of(self, found: re.Match[bytes]) -> float | None:
        """The time of a match of _TIME or _LEAD (its `sec`, `ms` and `zone` groups)."""
        try:
            return with_fraction(self._seconds.seconds(found["sec"], found["zone"]), found["ms"])
        except ValueError:
            return None

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        lead = _LEAD.match(buf, start)
        if lead is None or not buf.startswith(b'"duration: ', lead.end()):
            return None
        message = lead.end()
        return duration_ms(buf, message, _duration_stop(message, _message_end(buf, lead, end), end))

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        read = self._read
        lead: re.Match[bytes] | None
        if read is not None and read[0].string is buf and read[0].start() == start:
            lead, message_end = read
        else:
            lead = _LEAD.match(buf, start, end)
            message_end = -1 if lead is None else _message_end(buf, lead, end)
        if lead is None:  # quoting these patterns do not read: the csv module's reading
            return csv_detail(buf, start, end, ts, duration)
        if _cut_inside_message(buf, lead, message_end):  # its head: all details hold of it
            message = _field_text(buf, message_end, end, closed=False)
            query = ""
        else:
            rest = _TO_QUERY.match(buf, message_end, end)
            if rest is None:
                return csv_detail(buf, start, end, ts, duration)
            message = _field_text(buf, lead.end(), message_end)
            query = _field_text(buf, *rest.span("query"))
        return EntryDetail(
            timestamp=ts,
            severity=lead["sev"].decode() or "?",
            duration_ms=duration,
            statement=query or logged_statement(message),
            code=lead["code"].decode() if lead["code"] else None,
            message=message,
        )


def _cut_inside_message(buf: bytes, lead: re.Match[bytes], message_end: int) -> bool:
    """Whether the record's message opens a quote that does not close in the buffer: a record
    longer than the longest chunk, cut inside its message (or a file cut there)."""
    return message_end == lead.end() and buf.startswith(b'"', message_end)


def _duration_stop(message: int, message_end: int, end: int) -> int:
    """Where a slow record's `duration: N ms` is looked for up to: its message's end, or, for a
    message whose quote does not close before `end` (see _cut_inside_message), the bytes a
    duration takes after its start. Such a record's time and type come from its head: it is
    selected as slow, and carried on past the cut, as pg-stderr's is."""
    return message_end if message_end > message else min(end, message + _DURATION_REACH)


def _message_end(buf: bytes, lead: re.Match[bytes], hi: int) -> int:
    """Where the message field after a record's lead columns ends (before `hi`)."""
    found = _FIELD_RE.match(buf, lead.end(), hi)
    assert found is not None  # a field may be empty: the pattern matches everywhere
    return found.end()


def _field_text(buf: bytes, lo: int, hi: int, closed: bool = True) -> str:
    """The text of the CSV field buf[lo:hi] for an entry's details (see detail_text): unquoted
    ("" a quote). `closed=False`: a quoted field cut at `hi`, with no closing quote to drop."""
    if hi - lo >= 2 and buf[lo] == _QUOTE:
        return detail_text(buf, lo + 1, hi - closed, _UNQUOTE)
    return detail_text(buf, lo, hi)


def csv_detail(buf: bytes, start: int, end: int, ts: float, duration: float | None) -> EntryDetail:
    """A record's details as the csv module reads it: the reference of PgCsvFormat._detail, and
    what it falls back on for a record its patterns do not read."""
    fields = _record_fields(buf[start:end])
    message = _column(fields, _MESSAGE_COLUMN)[:DETAIL_CHARS]
    return EntryDetail(
        timestamp=ts,
        severity=_column(fields, _SEVERITY_COLUMN) or "?",
        duration_ms=duration,
        statement=_column(fields, _QUERY_COLUMN)[:DETAIL_CHARS] or logged_statement(message),
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


def record_starts_reference(buf: bytes, lo: int, hi: int) -> list[int]:
    """The offsets of the csvlog records starting in buf[lo:hi], `lo` read as a line start: the
    reference of the compiled pass (and what runs where the extension is not built).

    A record starts at a line that reads `<log_time>,` (the bytes before the first such line
    belong to none). Its fields are read up to the newline that ends it: a quoted field ("" a
    quote inside it, newlines too) ends at a quote followed by a comma or newline; an unquoted
    one at a comma or newline, and holds no quote. The lines after it up to one that reads
    `<log_time>,` belong to it (stray lines, read without quotes). A record whose quoting
    breaks these rules (a record cut off in a quoted field, then the next written after it)
    ends at the first line after its start that reads `<log_time>,`; one the range ends first
    ends with the range.
    """
    starts: list[int] = []
    start = _record_start_from(buf, lo, hi)
    while start is not None:
        starts.append(start)
        end = _record_end(buf, start, hi)
        if end is None:
            newline = buf.find(b"\n", start, hi)
            start = None if newline < 0 else _record_start_from(buf, newline + 1, hi)
        else:
            start = _record_start_from(buf, end, hi)
    return starts


def _record_start_from(buf: bytes, pos: int, hi: int) -> int | None:
    """The first line start at or after `pos` (itself read as one) that reads `<log_time>,`."""
    while pos < hi:
        if _RECORD_START.match(buf, pos, hi):
            return pos
        newline = buf.find(b"\n", pos, hi)
        if newline < 0:
            return None
        pos = newline + 1
    return None


def _record_end(buf: bytes, start: int, hi: int) -> int | None:
    """Where the record at `start` ends (after its newline; `hi` when the range ends first);
    None when its quoting breaks the rules."""
    pos = start
    while pos < hi:
        if buf[pos] == _QUOTE:
            close = _closing_quote(buf, pos, hi)
            if close + 1 >= hi:
                return hi
            if buf[close + 1] == _COMMA:
                pos = close + 2
                continue
            return close + 2 if buf[close + 1] == _NEWLINE else None
        found = _UNQUOTED_END.search(buf, pos, hi)
        if found is None:
            return hi
        pos = found.start()
        if buf[pos] == _QUOTE:
            return None
        if buf[pos] == _NEWLINE:
            return pos + 1
        pos += 1
    return hi


def _ends_inside(buf: bytes, start: int) -> bool:
    """Whether the record at `start` reads whole and ends with its newline inside `buf`."""
    end = _record_end(buf, start, len(buf))
    if end is None:
        return False
    if end < len(buf):
        return True
    # Ending at the buffer's end, it ends there only if a byte after it would not be read.
    record = buf[start:] + b"\x01"
    return _record_end(record, 0, len(record)) == len(record) - 1


def _closing_quote(buf: bytes, opening: int, hi: int) -> int:
    """The quote that closes the field opened at `opening` ("" is a quote inside it); `hi` when
    the range ends first."""
    close = opening
    while True:
        close = buf.find(b'"', close + 1, hi)
        if close < 0:
            return hi
        if close + 1 < hi and buf[close + 1] == _QUOTE:
            close += 1
            continue
        return close


_QUOTE, _COMMA, _NEWLINE = b'"'[0], b","[0], b"\n"[0]


def _compiled_record_starts(buf: bytes, lo: int, hi: int) -> Sequence[int]:
    return memoryview(csv_record_starts(buf, lo, hi)).cast("q")


try:
    from dblogpack.formats._scan import csv_record_starts
except ImportError:  # a source tree whose extension is not built
    record_starts: Callable[[bytes, int, int], Sequence[int]] = record_starts_reference
else:
    record_starts = _compiled_record_starts
