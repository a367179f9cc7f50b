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
from dblogpack.formats.pg_message import duration_ms, logged_statement
from dblogpack.formats.scanner import Candidate, window_bounds
from dblogpack.formats.timestamps import LocalSecondsCache, load_zone, with_fraction
from dblogpack.model import EntryDetail, FormatConfig, LogKind, TimeWindow

_TIME = re.compile(rb'\{"timestamp":"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{3}))? ([^"\n]*)"')
_SLOW_NEEDLE = b'"message":"duration: '
_SEVERITY = re.compile(
    rb'"error_severity":"(?P<sev>[A-Z0-9]+)"(?:,"state_code":"(?P<code>[0-9A-Z]{5})")?,"message":"'
)
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
            if slow and not self._is_log_message(buf, start, at):
                continue
            ts = self._timestamp_at(buf, start)
            if ts is not None and earliest <= ts < latest:
                yield start, self._entry_end(buf, start, hi), ts, None, None

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        at = buf.find(b'"message":"', start, end)
        return duration_ms(buf, at, min(end, at + 48)) if at >= 0 else None

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
    def _is_log_message(buf: bytes, start: int, at: int) -> bool:
        """The `"message":"duration: ` at `at` is the message of a LOG entry."""
        severity = _SEVERITY.search(buf, start, at + 11)
        return severity is not None and severity.end() == at + 11 and severity["sev"] == b"LOG"


def _code(state_code: object) -> str | None:
    return str(state_code) if state_code else None
