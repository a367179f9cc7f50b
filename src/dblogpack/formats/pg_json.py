"""pg-json: PostgreSQL 15+ jsonlog, one JSON object a line.

Keys are written in a fixed order (`timestamp`, …, `error_severity`,
`state_code`, `message`, …, `statement`, …); a string value is JSON-escaped,
so a key seen with its quotes is a real key. Non-JSON lines are warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from dblogpack.formats.framing import find_all
from dblogpack.formats.json_lines import JsonLinesScanner, load_document
from dblogpack.formats.pg_message import (
    duration_and_key,
    duration_ms,
    group_key,
    logged_statement,
)
from dblogpack.formats.scanner import Candidate, window_bounds
from dblogpack.formats.timestamps import LocalSecondsCache, load_zone, with_fraction
from dblogpack.model import EntryDetail, FormatConfig, LogKind, TimeWindow

_TIME = re.compile(rb'\{"timestamp":"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{3}))? ([^"\n]*)"')
_SLOW_NEEDLE = b'"message":"duration: '
_SEVERITY = re.compile(
    rb'"error_severity":"(?P<sev>[A-Z0-9]+)"(?:,"state_code":"(?P<code>[0-9A-Z]{5})")?,"message":"'
)
_MESSAGE_KEY = len(b'"message":"')
# A slow entry's `duration: N ms` lies within this many bytes from its message's key.
_DURATION_REACH = 48
_ERROR_NEEDLE = re.compile(rb'"error_severity":"(?:WARNING|ERROR|FATAL|PANIC)"')


class PgJsonFormat(JsonLinesScanner):
    """PostgreSQL jsonlog; times read in `log_timezone` like every PostgreSQL format."""

    name = "pg-json"
    marker = b'{"timestamp":"'

    def __init__(self, config: FormatConfig) -> None:
        super().__init__()
        self._seconds = LocalSecondsCache(load_zone(config.timezone))

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        found = _TIME.match(buf, start)
        if found is None:
            return None
        try:
            seconds = self._seconds.seconds(found[1], found[3])
        except ValueError:
            return None
        return with_fraction(seconds, found[2] or b"")

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        earliest, latest = window_bounds(window)
        slow = kind is LogKind.SLOW
        hits = (
            find_all(buf, _SLOW_NEEDLE, lo, hi)
            if slow
            else (found.start() for found in _ERROR_NEEDLE.finditer(buf, lo, hi))
        )
        for at in hits:
            start = buf.rfind(b"\n", lo, at) + 1 or lo
            severity = self._log_severity(buf, start, at) if slow else None
            if slow and severity is None:
                continue
            ts = self._timestamp_at(buf, start)
            if ts is None or not earliest <= ts < latest:
                continue
            end = self._entry_end(buf, start, hi)
            if severity is not None:
                message, stop = at + _MESSAGE_KEY, min(end, at + _DURATION_REACH)
                known, key = duration_and_key(buf, severity.start(), message, stop, end)
                if known is None:  # no duration to read: _duration_ms would find none either
                    continue
                yield start, end, ts, known, key
            else:
                # Entries alike from their severity to their line's end share one parse.
                yield start, end, ts, None, group_key(buf, at, end)

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        at = buf.find(b'"message":"', start, end)
        return duration_ms(buf, at, min(end, at + _DURATION_REACH)) if at >= 0 else None

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        document = load_document(self._line_text(buf, start, end)) or {}
        message = str(document.get("message", ""))
        statement = document.get("statement")
        return EntryDetail(
            timestamp=ts,
            severity=str(document.get("error_severity", "?")),
            duration_ms=duration,
            statement=str(statement) if statement is not None else logged_statement(message),
            code=_code(document.get("state_code")),
            message=message,
        )

    @staticmethod
    def _log_severity(buf: bytes, start: int, at: int) -> re.Match[bytes] | None:
        """The severity of the entry whose `"message":"duration: ` is at `at`, when it is a
        LOG entry's message (None otherwise)."""
        severity = _SEVERITY.search(buf, start, at + _MESSAGE_KEY)
        if severity is None or severity.end() != at + _MESSAGE_KEY or severity["sev"] != b"LOG":
            return None
        return severity


def _code(state_code: object) -> str | None:
    return str(state_code) if state_code else None
