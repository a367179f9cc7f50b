"""pg-stderr: PostgreSQL's text log, framed by its `log_line_prefix`.

An entry is a prefixed line of a primary level, its TAB continuation lines and
the DETAIL/HINT/CONTEXT/STATEMENT/QUERY/LOCATION lines that follow it from the
same process (same %p, else same %c). Malformed input is never fatal: bytes
before a buffer's first entry become an "unparseable" warning; an unprefixed
line after an entry is taken as part of that entry (kept byte-for-byte); a
follow-up line of another process starts an entry of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cached_property

from dblogpack.formats.base import ScanResult
from dblogpack.formats.framing import find_all, find_any, last_match_start
from dblogpack.formats.pg_count import FOLLOW_UP_LEVELS, EntryCount
from dblogpack.formats.pg_message import detail_text, first_line_text
from dblogpack.formats.pg_prefix import (
    DEFAULT_PREFIX,
    CompiledPrefix,
    compile_prefix,
    probe,
    unnamed,
)
from dblogpack.formats.scanner import (
    Candidate,
    EntryScanner,
    window_bounds,
)
from dblogpack.formats.timestamps import LocalSecondsCache, load_zone
from dblogpack.model import EntryDetail, FormatConfig, LogKind, Query, TimeWindow

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.pg_errors import ErrorScan
    from dblogpack.formats.pg_slow import SlowScan
    from dblogpack.formats.pg_times import StampSpan

_FOLLOW_UP = rb"(?:DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION):  "
_ANY_LEVEL = rb"[A-Z]+[1-5]?:  "

_NON_TAB_LINE = re.compile(rb"\n(?!\t)")
_DURATION = re.compile(rb"duration: (\d+(?:\.\d+)?) ms")
# Lines _last_primary_newline tries one by one before searching a window.
_BACK_LINES = 32
# Where the zone abbreviation starts in a timestamp's text (%n has none: it is epoch seconds).
_ZONE_AT = {"ts_m": 24, "ts_t": 20, "ts_n": None}
# Longer slow entries (plans, huge statements) are not grouped: their keys would copy them.
_MAX_KEY = 4096
# A continuation line's TAB, dropped from a statement's text (detail_text).
UNTAB = (b"\n\t", b"\n")


class PgStderrFormat(EntryScanner):
    """PostgreSQL stderr log with a given `log_line_prefix`, times read in `log_timezone`."""

    name = "pg-stderr"

    def __init__(self, config: FormatConfig) -> None:
        self.prefix: CompiledPrefix = compile_prefix(config.log_line_prefix or DEFAULT_PREFIX)
        self._seconds = LocalSecondsCache(load_zone(config.timezone))
        readers: dict[str, Callable[[bytes], float]] = {
            "ts_m": self._time_m,
            "ts_t": self._time_t,
            "ts_n": float,
        }
        self._read_time = readers[self.prefix.timestamp_group]
        self._line = self.prefix.line
        self._primary = probe(self.prefix.pattern) + b"(?!" + _FOLLOW_UP + b")" + _ANY_LEVEL
        self._next_primary = re.compile(b"\n(?=" + self._primary + b")")
        guard = self.prefix.guard
        if guard is not None and re.match(guard, b"\t"):
            guard = None
        self._guarded_line = None if guard is None else re.compile(rb"\n(?=" + guard + b")")

    # Built on first use, with the modules of the slow and error scans: their patterns take
    # ~15 ms to compile, which an all-entries package of a small window (a whole process in tens
    # of ms) does not need.
    @cached_property
    def _slow(self) -> SlowScan:
        from dblogpack.formats.pg_slow import SlowScan, slow_pattern

        return SlowScan(self, slow_pattern(self.prefix, self._ends), self._span)

    @cached_property
    def _errors(self) -> ErrorScan:
        from dblogpack.formats.pg_errors import ErrorScan, error_pattern

        return ErrorScan(self, error_pattern(self.prefix, self._ends), self._span)

    def prepare(self, query: Query) -> None:
        if query.kind is not LogKind.ALL:
            self._batch_scan(query.kind)

    def _batch_scan(self, kind: LogKind) -> SlowScan | ErrorScan:
        return self._slow if kind is LogKind.SLOW else self._errors

    @cached_property
    def _span(self) -> StampSpan:
        from dblogpack.formats.pg_times import StampSpan

        return StampSpan(self._seconds, _ZONE_AT[self.prefix.timestamp_group], self._read_time)

    @cached_property
    def _ends(self) -> bytes:
        # When a TAB line may parse as a prefixed one, the general search finds every end.
        if self._guarded_line is None:
            return b""
        from dblogpack.formats.pg_batch import end_pattern

        return end_pattern(self.prefix, self._primary)

    @cached_property
    def _next_statement(self) -> re.Pattern[bytes]:
        return re.compile(b"\n" + unnamed(self.prefix.pattern) + rb"STATEMENT:  ")

    @cached_property
    def _statement_lead(self) -> re.Pattern[bytes]:
        from dblogpack.formats.pg_slow import LEAD  # the statement lead the slow scan matches

        return re.compile(LEAD)

    @cached_property
    def _slow_line(self) -> re.Pattern[bytes]:
        # The atomic group commits to the parse `_line.match` finds first, so a slow line is
        # read (prefix, level and duration) in one match with exactly that line's meaning.
        return re.compile(
            b"(?>" + self._line.pattern + rb")duration: (?P<duration>\d+(?:\.\d+)?) ms"
        )

    # ---- primitives ------------------------------------------------------------------------

    def _start_at_or_after(self, buf: bytes, pos: int, hi: int) -> int | None:
        if pos < hi and (pos == 0 or buf[pos - 1] == 10) and self._starts_entry(buf, pos):
            return pos
        found = self._next_primary.search(buf, pos)
        return found.start() + 1 if found is not None and found.start() + 1 < hi else None

    def _last_start_before(self, buf: bytes, hi: int) -> int | None:
        found = self._last_primary_newline(buf, hi)
        if found is not None:
            return found + 1
        return 0 if hi > 0 and self._starts_entry(buf, 0) else None

    def _last_primary_newline(self, buf: bytes, hi: int) -> int | None:
        """The last newline in buf[:hi] before a primary line (read no further than `hi`).

        It is nearly always among the last lines, tried one by one (every chunk asks); past
        _BACK_LINES of them, one backward regex search over widening windows."""
        match, newline = self._next_primary.match, hi
        for _ in range(_BACK_LINES):
            newline = buf.rfind(b"\n", 0, newline)
            if newline < 0:
                return None
            if match(buf, newline, hi):
                return newline
        return last_match_start(self._next_primary, buf, 0, hi)

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        head = self._line.match(buf, start)
        return None if head is None else self._timestamp(head)

    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        return self._end_after(buf, start, self._process(self._line.match(buf, start)), hi)

    def _end_after(self, buf: bytes, start: int, process: bytes | None, hi: int) -> int:
        """End of the entry at `start`: where the next entry starts.

        TAB continuations, unprefixed lines and follow-ups of `process` in between
        belong to the entry.
        """
        newline = buf.find(b"\n", start, hi)
        if newline < 0 or newline + 1 >= hi:
            return hi
        if self._next_primary.match(buf, newline):
            return newline + 1  # one line, then another entry: the common case
        pos = start
        while True:
            found = _NON_TAB_LINE.search(buf, pos, hi)
            if found is None or found.start() + 1 >= hi:
                return hi
            line = found.start() + 1
            if self._next_primary.match(buf, found.start()):
                return line
            head = self._line.match(buf, line)
            if head is not None and self._process(head) != process:
                return line  # a follow-up line of another process starts its own entry
            pos = line

    def _count_entries(self, buf: bytes, lo: int, hi: int) -> int:
        return self._entry_count.count(buf, lo, hi)

    @cached_property
    def _entry_count(self) -> EntryCount:
        return EntryCount(self.prefix, self._guarded_line, self._next_primary, self._starts_entry)

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        if kind is LogKind.SLOW:
            return self._slow_candidates(buf, window, lo, hi)
        return self._error_candidates(buf, window, lo, hi)

    def _scan_kind(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        self._batch_scan(query.kind).scan(buf, first, query, result)

    def _slow_key(self, buf: bytes, head: re.Match[bytes], end: int, coded: bool) -> bytes | None:
        """What follows `duration: N ms` (statement and follow-up lines), plus the SQLSTATE
        when the prefix has one: all the summary reads besides time and duration."""
        if end - head.end() > _MAX_KEY:
            return None
        key = buf[head.end() : end]
        return (head["sqlstate"] or b"-----") + key if coded else key

    def _slow_candidates(
        self, buf: bytes, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        # The generic form of the slow scan (pg_slow, which the scan itself uses, for speed).
        from dblogpack.formats.pg_slow import NEEDLE

        earliest, latest = window_bounds(window)
        coded = "sqlstate" in self._slow_line.groupindex
        for at in find_all(buf, NEEDLE, lo, hi):
            start = buf.rfind(b"\n", lo, at) + 1 or lo
            head = self._slow_line.match(buf, start)
            if head is not None and head.start("level") == at:
                ts = self._timestamp(head)
                if ts is not None and earliest <= ts < latest:
                    end = self._end_after(buf, start, self._process(head), hi)
                    key = self._slow_key(buf, head, end, coded)
                    yield start, end, ts, float(head["duration"]), key

    @staticmethod
    def _error_key(head: re.Match[bytes], coded: bool) -> bytes:
        """An error entry has no duration, so its summary reads only its level and SQLSTATE
        (and the first message of each, which its group's first entry gives)."""
        level: bytes = head["level"]
        return level + b" " + (head["sqlstate"] or b"") if coded else level

    def _error_candidates(
        self, buf: bytes, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        from dblogpack.formats.pg_errors import LEVEL_TAGS

        earliest, latest = window_bounds(window)
        coded = "sqlstate" in self._line.groupindex
        for at in find_any(buf, LEVEL_TAGS, lo, hi):
            start, head = self._head_at_level(buf, lo, at)
            if head is None:
                continue
            ts = self._timestamp(head)
            if ts is not None and earliest <= ts < latest:
                end = self._end_after(buf, start, self._process(head), hi)
                yield start, end, ts, None, self._error_key(head, coded)

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        # The message starts with `duration: `, so the first one is on the first line.
        at = buf.find(b"duration: ", start, end)
        found = _DURATION.match(buf, at) if at >= 0 else None
        return float(found[1]) if found is not None else None

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        head = self._line.match(buf, start)
        assert head is not None  # selected entries start with a prefixed line
        body = head.end()
        message_end = _message_end(buf, body, end)
        statement = self._statement(buf, body, message_end, end)
        code = head.groupdict().get("sqlstate")
        sqlstate = code.decode("ascii", "replace") if code else None
        return entry_detail(buf, body, end, ts, duration, head["level"], statement, sqlstate)

    # ---- helpers ----------------------------------------------------------------------------

    def _starts_entry(self, buf: bytes, pos: int) -> bool:
        """A primary line starts an entry; so does a follow-up line of another process."""
        head = self._line.match(buf, pos)
        if head is None:
            return False
        if head["level"].decode() not in FOLLOW_UP_LEVELS:
            return True
        return pos > 0 and self._process(head) != self._previous_process(buf, pos)

    def _timestamp(self, head: re.Match[bytes]) -> float | None:
        text = head[self.prefix.timestamp_group]
        try:
            return self._read_time(text)
        except ValueError:
            return None

    def _time_m(self, text: bytes) -> float:
        """%m has a fixed layout: `YYYY-MM-DD HH:MM:SS.mmm ZONE`."""
        return (self._seconds.seconds(text[:19], text[24:]) * 1000 + int(text[20:23])) / 1000

    def _time_t(self, text: bytes) -> float:
        """%t: `YYYY-MM-DD HH:MM:SS ZONE`."""
        return float(self._seconds.seconds(text[:19], text[20:]))

    def _process(self, head: re.Match[bytes] | None) -> bytes | None:
        group = self.prefix.process_group
        return None if head is None or group is None else head[group]

    def _previous_process(self, buf: bytes, pos: int) -> bytes | None:
        """Process of the nearest prefixed line before `pos` (unprefixed lines are skipped)."""
        line_end = pos - 1
        while line_end > 0:
            line_start = buf.rfind(b"\n", 0, line_end) + 1
            head = self._line.match(buf, line_start)
            if head is not None:
                return self._process(head)
            line_end = line_start - 1
        return None

    def _head_at_level(self, buf: bytes, lo: int, at: int) -> tuple[int, re.Match[bytes] | None]:
        """The prefixed line whose level word sits at `at`, if the word at `at` is one."""
        start = buf.rfind(b"\n", lo, at) + 1 or lo
        head = self._line.match(buf, start)
        if head is None or head.start("level") != at:
            return start, None
        return start, head

    def _statement(self, buf: bytes, body: int, message_end: int, end: int) -> str | None:
        lead = self._statement_lead.search(buf, body, message_end)
        if lead is not None:
            return detail_text(buf, lead.end(), message_end, UNTAB)
        found = self._next_statement.search(buf, body, end)
        if found is None:
            return None
        return detail_text(buf, found.end(), _message_end(buf, found.end(), end), UNTAB)


def entry_detail(
    buf: bytes, body: int, end: int, ts: float, duration: float | None, level: bytes,
    statement: str | None, code: str | None,
) -> EntryDetail:
    """An entry's details from its parsed parts; its message is the first line from `body`."""
    return EntryDetail(
        timestamp=ts,
        severity=level.decode(),
        duration_ms=duration,
        statement=statement,
        code=code,
        message=first_line_text(buf, body, end),
    )


def _message_end(buf: bytes, pos: int, end: int) -> int:
    """End of a message: the first newline not followed by a TAB continuation."""
    found = _NON_TAB_LINE.search(buf, pos, end)
    if found is not None:
        return found.start()
    return end - 1 if end > pos and buf[end - 1] == 10 else end

