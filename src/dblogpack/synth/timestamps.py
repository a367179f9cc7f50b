"""Timestamp rendering for the generators, cached per minute (only seconds and millis change).

Local times come from IANA zones through zoneinfo, as the servers print them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# Indexed by milliseconds within the minute: b"SS.mmm" and b"SS".
_SECONDS_MILLIS = [f"{ms // 1000:02d}.{ms % 1000:03d}".encode() for ms in range(60_000)]
_SECONDS_ONLY = [f"{ms // 1000:02d}".encode() for ms in range(60_000)]
_CACHE_LIMIT = 4096

MinuteParts = tuple[bytes, bytes]  # text before the seconds and after the fraction


def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local(sec: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(sec, UTC).astimezone(tz)


def mongod_rotated_name(live: Path, ts_ms: int) -> str:
    """mongod's logRotate "rename": <logpath>.<UTC time of the rotation>."""
    return f"{live.name}.{local(ts_ms // 1000, zone('UTC')).strftime('%Y-%m-%dT%H-%M-%S')}"


def utc_offset(moment: datetime, colon: bool) -> str:
    """`+08:00` / `+0800` style offset of an aware datetime."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


class MinuteCachedStamp:
    """Renders `ts_ms` as `head + SS.mmm + tail`, computing head and tail once per minute.

    `parts(minute_start)` gives the text up to the minute (`2024-05-01 12:00:`) and after the
    fraction (` UTC`); zone offsets are whole minutes, so seconds and millis never change them.
    With `millis=False` the fraction is not printed (second-precision formats).
    """

    def __init__(self, parts: Callable[[int], MinuteParts], millis: bool = True) -> None:
        self._parts = parts
        self._within = _SECONDS_MILLIS if millis else _SECONDS_ONLY
        self._cache: dict[int, MinuteParts] = {}

    def __call__(self, ts_ms: int) -> bytes:
        minute, within = divmod(ts_ms, 60_000)
        parts = self._cache.get(minute)
        if parts is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            parts = self._cache[minute] = self._parts(minute * 60)
        return parts[0] + self._within[within] + parts[1]
