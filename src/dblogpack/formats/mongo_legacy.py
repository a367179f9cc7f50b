"""mongo-legacy: MongoDB <= 4.2 text log, `<time> <severity> <component> [<context>] <message>`.

Times are iso8601-local (`…T10:00:00.123+0800`), iso8601-utc (`…Z`) or ctime
(`Wed Jan  1 10:00:00.123`). A ctime has no year and no zone: the zone is
FormatConfig.timezone (None = UTC) and the year is the latest one, not after
the current year, in which that date falls on the printed weekday (the
calendar repeats every 28 years, so a log less than 5 years old is always
dated right). A line without a time continues the entry before it; bytes
before a buffer's first entry are an "unparseable" warning.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date, datetime

from dblogpack.formats.framing import find_any
from dblogpack.formats.scanner import Candidate, LineStartScanner, window_bounds
from dblogpack.formats.timestamps import (
    IsoSecondsCache,
    load_zone,
    local_to_epoch,
    with_fraction,
)
from dblogpack.model import EntryDetail, FormatConfig, LogKind, TimeWindow

SLOW_COMPONENTS = (b"COMMAND", b"WRITE", b"QUERY")
# Time (up to 29 bytes), severity and padded component fit in this many bytes.
_HEAD_REACH = 48
_SLOW_COMPONENT = re.compile(rb" (?:COMMAND|WRITE|QUERY) +\[")

_ISO = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
_CTIME = rb"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?"
_TAIL = rb" [A-Z]\d? +[A-Za-z_-]+ +\["
_HEAD = re.compile(
    rb"(?P<ts>" + _ISO + rb"|" + _CTIME + rb") (?P<sev>[A-Z]\d?) +(?P<comp>[A-Za-z_-]+) +"
    rb"\[(?P<ctx>[^\]\n]*)\] ?"
)
_NEXT_START = re.compile(rb"\n(?=(?:" + _ISO + rb"|" + _CTIME + rb")" + _TAIL + rb")")
_ERROR_NEEDLES = (b" W ", b" E ", b" F ")
# Every match of _SLOW_COMPONENT holds one of these.
_SLOW_NEEDLES = (b" COMMAND ", b" WRITE ", b" QUERY ")
_TRAILING_MS = re.compile(rb" (\d+)ms\r?$")
_MS_REACH = 32  # bytes of a line's tail that hold its duration, but for absurd ones
_CODE = re.compile(r"\b(?:code|errCode):\s?(\d+)")
_STATEMENT_END = re.compile(r" (?:planSummary|keysExamined|docsExamined|numYields|nreturned):")
_MONTHS = {
    m: i + 1 for i, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
}
_WEEKDAYS = {d: i for i, d in enumerate(b"Mon Tue Wed Thu Fri Sat Sun".split())}
_CALENDAR_CYCLE_YEARS = 28


class MongoLegacyFormat(LineStartScanner):
    """MongoDB legacy text log; slow = COMMAND/WRITE/QUERY lines ending in `<N>ms`."""

    name = "mongo-legacy"
    _line_start = _HEAD
    _next_start = _NEXT_START

    def __init__(self, config: FormatConfig) -> None:
        self._zone = load_zone(config.timezone)
        self._iso = IsoSecondsCache()
        self._ctime: dict[bytes, int] = {}
        self._current_year = time.gmtime().tm_year

    # ---- primitives ------------------------------------------------------------------------

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        head = _HEAD.match(buf, start)
        return None if head is None else self._time(head["ts"])

    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        # Most entries are one line: the next entry is tried at the first newline before the
        # search runs on (the search would find it there first).
        newline = buf.find(b"\n", start, hi)
        if newline < 0:
            return hi
        if _NEXT_START.match(buf, newline, hi) is not None:
            return newline + 1
        found = _NEXT_START.search(buf, newline + 1, hi)
        return hi if found is None else found.start() + 1

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        earliest, latest = window_bounds(window)
        slow = kind is LogKind.SLOW
        lines = self._slow_lines(buf, lo, hi) if slow else _error_lines(buf, lo, hi)
        for start, at in lines:
            head = _HEAD.match(buf, start)
            if head is None:
                continue
            if slow and head["comp"] not in SLOW_COMPONENTS:
                continue
            if not slow and head.start("sev") != at + 1:
                continue
            ts = self._time(head["ts"])
            if ts is not None and earliest <= ts < latest:
                yield start, self._entry_end(buf, start, hi), ts, None, None

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        newline = buf.find(b"\n", start, end)
        stop = end if newline < 0 else newline
        # At most one place of a line matches (the space before its last digits): looked for in
        # the line's tail first, the whole line only when the tail holds no match.
        found = _TRAILING_MS.search(buf, max(start, stop - _MS_REACH), stop)
        if found is None:
            found = _TRAILING_MS.search(buf, start, stop)
        return float(found[1]) if found is not None else None

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        head = _HEAD.match(buf, start)
        assert head is not None  # selected entries start with a head
        message = buf[head.end() : end].rstrip(b"\r\n").decode("utf-8", "replace")
        # The search tries every word boundary (4 us a slow entry): only messages holding
        # "code:" or "errCode:" (both hold "ode:") can match.
        code = _CODE.search(message) if "ode:" in message else None
        return EntryDetail(
            timestamp=ts,
            severity=head["sev"].decode(),
            duration_ms=duration,
            statement=_statement(message) if duration is not None else None,
            code=code[1] if code is not None else None,
            message=message,
        )

    # ---- helpers ----------------------------------------------------------------------------

    def _slow_lines(self, buf: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """(start, hit) of the lines naming a slow component in their head and ending in
        `<digits>ms` (the buffer's own end counts as a line end), in order.

        Lines are found by the components' names (~1,800 hits a 4 MiB chunk of the bench's
        legacy log, three stringzilla passes) rather than by `ms` line ends (~5,500, four in
        five of them replication lines): 4.9 -> 2.5 ms a chunk for the hits and the head test.
        """
        last = -1
        for at in find_any(buf, _SLOW_NEEDLES, lo, hi):
            start = buf.rfind(b"\n", lo, at) + 1 or lo
            if start == last:
                continue  # a later name on the same line
            last = start
            if at - start >= _HEAD_REACH:
                continue  # the first name on this line lies past its head
            newline = buf.find(b"\n", at, hi)
            stop = hi if newline < 0 else newline
            if (
                stop - 2 > lo
                and buf.startswith(b"ms", stop - 2, stop)
                and 48 <= buf[stop - 3] <= 57
                and _names_slow_component(buf, start)
            ):
                yield start, at

    def _time(self, text: bytes) -> float | None:
        try:
            if text[4:5] == b"-":
                return self._iso.parse(text)
            return with_fraction(self._ctime_seconds(text[:19]), text[20:])
        except (ValueError, KeyError):
            return None

    def _ctime_seconds(self, text: bytes) -> int:
        value = self._ctime.get(text)
        if value is None:
            value = self._ctime_compute(text)
            if len(self._ctime) > 65536:
                self._ctime.clear()
            self._ctime[text] = value
        return value

    def _ctime_compute(self, text: bytes) -> int:
        weekday, month, day = _WEEKDAYS[text[0:3]], _MONTHS[text[4:7]], int(text[8:10])
        clock = (int(text[11:13]), int(text[14:16]), int(text[17:19]))
        for year in range(self._current_year, self._current_year - _CALENDAR_CYCLE_YEARS, -1):
            try:
                if date(year, month, day).weekday() != weekday:
                    continue
            except ValueError:
                continue  # 29 Feb of a common year
            datetime(year, month, day, *clock)  # validates the clock
            return local_to_epoch((year, month, day, *clock), self._zone, "")
        raise ValueError(f"no year has {text!r}")


def _error_lines(buf: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """(start, hit) of the lines holding a severity needle, one pair a hit."""
    for at in find_any(buf, _ERROR_NEEDLES, lo, hi):
        yield buf.rfind(b"\n", lo, at) + 1 or lo, at


def _names_slow_component(buf: bytes, start: int) -> bool:
    """Whether a slow component's name appears where a line's head can hold it."""
    return _SLOW_COMPONENT.search(buf, start, start + _HEAD_REACH) is not None


def _statement(message: str) -> str:
    """The operation's shape: the message without its trailing statistics and duration."""
    cut = _STATEMENT_END.search(message)
    text = message[: cut.start()] if cut is not None else message.rsplit(" ", 1)[0]
    return text.strip()
