"""mongo-json: MongoDB 4.4+ structured log, one JSON document a line.

Slow entries are `"id":51803` ("Slow query"; 51801 "Applied op" is not one),
errors have `"s"` of W, E or F. `t.$date` is ISO 8601 with an offset or
`{"$numberLong": "<epoch ms>"}`. Non-JSON lines are warnings (json_lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from dblogpack.formats.base import ScanResult
from dblogpack.formats.framing import find_all, find_any
from dblogpack.formats.json_lines import JsonLinesScanner, dump_json, load_document
from dblogpack.formats.mongo_slow import SlowQueries
from dblogpack.formats.mongo_slow_lines import CODE, MASK_DIGITS, NEEDLE, last_duration
from dblogpack.formats.scanner import Candidate, window_bounds
from dblogpack.formats.timestamps import IsoSecondsCache, with_fraction
from dblogpack.model import EntryDetail, FormatConfig, LogKind, Query, TimeWindow

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import Any

# Three stringzilla passes (0.35 ms each a 4 MiB chunk) beat the one regex pass `s":"[WEF]"`
# (2.6 ms); a hit that is not the head's own "s" fails the head check. Without the leading quote,
# as the regex had it: no needle overlaps another or itself, so the hits are the regex's matches.
_ERROR_NEEDLES = (b's":"W"', b's":"E"', b's":"F"')
_HEAD = re.compile(
    rb'\{"t":\{"\$date":(?:"(?P<sec>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?'
    rb'(?P<off>[^"\n]*)"|\{"\$numberLong":"(?P<ms>-?\d+)"\})\},\s*'
    rb'"s":"(?P<s>[A-Z]\d?)",\s*"c":"(?P<c>[^"\n]*)",\s*"id":(?P<id>\d+),'
)
_TIME = re.compile(rb'\{"t":\{"\$date":(?:"([^"\n]+)"|\{"\$numberLong":"(-?\d+)"\})')
_INTEGER = re.compile(rb"-?\d+")
_KEYS_LIMIT = 4096  # error keys are a few hundred bytes: a megabyte or two


class MongoJsonFormat(JsonLinesScanner):
    """MongoDB structured log; times carry their own offset, so no zone is needed."""

    name = "mongo-json"
    marker = b'{"t":{"$date":'

    def __init__(self, config: FormatConfig) -> None:
        super().__init__()
        self._iso = IsoSecondsCache()
        self._slow = SlowQueries(self._detail, self._head_time, self._iso.seconds)
        # error key → whether its lines share severity and code, None: met once (see _error_key)
        self._error_keys: dict[bytes, bool | None] = {}

    def _scan_kind(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        # Slow queries are selected in batches (mongo_slow); errors are few: the generic loop,
        # their candidates keyed so that alike ones are parsed once (_error_key).
        if query.kind is LogKind.SLOW:
            self._slow.scan(buf, first, query, result)
        else:
            super()._scan_kind(buf, first, query, result)

    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        found = _TIME.match(buf, start)
        return None if found is None else self._time(found[1], found[2])

    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        earliest, latest = window_bounds(window)
        slow = kind is LogKind.SLOW
        group = "id" if slow else "s"
        hits = (
            find_all(buf, NEEDLE, lo, hi)
            if slow
            else (found - 1 for found in find_any(buf, _ERROR_NEEDLES, lo, hi))
        )
        for at in hits:
            start = buf.rfind(b"\n", lo, at) + 1 or lo
            head = _HEAD.match(buf, start)
            if head is None or head.start(group) != at + 5:
                continue  # the words sit inside attr, not in the entry's own fields
            ts = self._head_time(head)
            if ts is not None and earliest <= ts < latest:
                end = self._entry_end(buf, start, hi)
                yield start, end, ts, None, None if slow else self._error_key(buf, head, end)

    def _error_key(self, buf: bytes, head: re.Match[bytes], end: int) -> bytes | None:
        """Severity, error code and the line after its id with digits masked, when lines with
        this key share severity and code (all an error summary reads but time and message).

        Lines of one key hold the same bytes but for digits; once one of them shows that its
        code is the number after its only `"code":` (or that it has none), so do all. A key is
        learnt when met a second time: a line met once costs one parse, as it would alone.
        """
        rest = buf.find(CODE, head.end(), end)
        number = _INTEGER.match(buf, rest + len(CODE)) if rest >= 0 else None
        code = number[0] if number is not None else b""
        key = head["s"] + b"\0" + code + b"\0" + buf[head.end() : end].translate(MASK_DIGITS)
        if key not in self._error_keys:
            if len(self._error_keys) >= _KEYS_LIMIT:
                self._error_keys.clear()
            self._error_keys[key] = None
            return None
        alike = self._error_keys[key]
        if alike is None:
            alike = self._error_keys[key] = self._codes_alike(buf, head, end, code)
        return key if alike else None

    def _codes_alike(self, buf: bytes, head: re.Match[bytes], end: int, code: bytes) -> bool:
        rest = buf[head.end() : end]
        if b"\\" in rest or b"\0" in rest:
            return False  # an escape may spell a digit or a name
        document = load_document(self._line_text(buf, head.start(), end))
        if document is None:
            return False
        attr = document.get("attr")
        expected = _error_code(attr if isinstance(attr, dict) else {})
        if expected is None:
            return True
        return rest.count(CODE) == 1 and code != b"" and expected == str(int(code))

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        return last_duration(buf, start, end)

    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        head = _HEAD.match(buf, start)
        severity = head["s"].decode() if head is not None else "?"
        document = load_document(self._line_text(buf, start, end)) or {}
        attr = document.get("attr")
        attr = attr if isinstance(attr, dict) else {}
        return EntryDetail(
            timestamp=ts,
            severity=severity,
            duration_ms=duration,
            statement=_statement(attr),
            code=_error_code(attr),
            message=str(document.get("msg", "")),
        )

    def _head_time(self, head: re.Match[bytes]) -> float | None:
        seconds = head["sec"]
        if seconds is None:
            return self._time(None, head["ms"])
        try:
            return with_fraction(self._iso.seconds(seconds, head["off"]), head["frac"] or b"")
        except ValueError:
            return None

    def _time(self, iso: bytes | None, epoch_ms: bytes | None) -> float | None:
        try:
            if iso is not None:
                return self._iso.parse(iso)
            return int(epoch_ms or b"") / 1000.0
        except ValueError:
            return None


def _statement(attr: dict[str, Any]) -> str | None:
    """The command as the server logged it (raw JSON); its shape is the summary's job."""
    for key in ("command", "originatingCommand"):
        if key in attr:
            return dump_json(attr[key])
    ns = attr.get("ns")
    return str(ns) if ns is not None else None


def _error_code(attr: dict[str, Any]) -> str | None:
    error = attr.get("error")
    if isinstance(error, dict) and "code" in error:
        return str(error["code"])
    return str(attr["code"]) if "code" in attr else None
