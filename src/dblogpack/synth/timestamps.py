"""Timestamp rendering for the generators, cached per second (only the milliseconds change).

Local times come from IANA zones through zoneinfo, as the servers print them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_MILLIS = [f"{ms:03d}".encode() for ms in range(1000)]
_CACHE_LIMIT = 4096

SecondParts = tuple[bytes, bytes]  # text before and after the milliseconds


def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local(sec: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(sec, UTC).astimezone(tz)


def utc_offset(moment: datetime, colon: bool) -> str:
    """`+08:00` / `+0800` style offset of an aware datetime."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


class SecondCachedStamp:
    """Renders `ts_ms` as `before + mmm + after`, computing the parts once per second.

    With `millis=False` the milliseconds are not printed (second-precision formats).
    """

    def __init__(self, parts: Callable[[int], SecondParts], millis: bool = True) -> None:
        self._parts = parts
        self._millis = millis
        self._cache: dict[int, SecondParts] = {}

    def __call__(self, ts_ms: int) -> bytes:
        sec, ms = divmod(ts_ms, 1000)
        parts = self._cache.get(sec)
        if parts is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            parts = self._cache[sec] = self._parts(sec)
        if self._millis:
            return parts[0] + _MILLIS[ms] + parts[1]
        return parts[0] + parts[1]
