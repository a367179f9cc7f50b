"""Timestamp text → unix seconds, cached per second, in IANA zones; abbreviations never guessed.

PostgreSQL prints local times with a zone abbreviation (`CST`, `CEST`, `+08`);
the abbreviation only picks between the two offsets of an ambiguous DST hour.
UTC (zone None) is plain arithmetic: datetime, calendar and zoneinfo are imported for other
zones only, as they cost a few ms of every `pack` start.
"""

from __future__ import annotations

import re

from dblogpack.errors import FormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from datetime import tzinfo

# Parsed seconds are reused for every entry of the same second; bounded so a
# long scan cannot grow it without limit.
_CACHE_LIMIT = 65536


def load_zone(name: str | None) -> tzinfo | None:
    """The IANA zone `name`, None for UTC (None or "UTC"); FormatError for an unknown name."""
    if name is None or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FormatError(
            f"unknown time zone {name!r}: "
            "configure LogTimezone as an IANA name such as 'Asia/Shanghai'"
        ) from exc


def local_to_epoch(
    fields: tuple[int, int, int, int, int, int], zone: tzinfo | None, abbrev: str
) -> int:
    """Unix seconds of a wall-clock time in `zone` (None: UTC); `abbrev` only resolves a repeated
    DST hour. ValueError when the fields are not a time (month 13, hour 25), as datetime says."""
    if zone is None:
        return utc_epoch(fields)
    from datetime import datetime

    naive = datetime(*fields)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset() and second.tzname() == abbrev:
        return int(second.timestamp())
    return int(first.timestamp())


class LocalSecondsCache:
    """`YYYY-MM-DD HH:MM:SS` + zone abbreviation → unix seconds in the configured IANA zone.

    Memoized per second and per hour: within an hour whose UTC offset does not
    change, a time is the hour's start plus minutes and seconds.
    """

    __slots__ = ("_cache", "_hours", "zone")

    def __init__(self, zone: tzinfo | None) -> None:
        self.zone = zone
        self._cache: dict[bytes, int] = {}
        self._hours: dict[bytes, int | None] = {}

    def seconds(self, stamp: bytes, abbrev: bytes) -> int:
        """`stamp` is exactly `YYYY-MM-DD HH:MM:SS`; raises ValueError when it is not a time."""
        key = stamp + abbrev
        value = self._cache.get(key)
        if value is None:
            value = self._compute(stamp, abbrev)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = value
        return value

    def _compute(self, stamp: bytes, abbrev: bytes) -> int:
        hour_key = stamp[:13] + abbrev
        if hour_key in self._hours:
            start = self._hours[hour_key]
        else:
            start = self._hour_start(stamp, abbrev)
            if len(self._hours) >= _CACHE_LIMIT:
                self._hours.clear()
            self._hours[hour_key] = start
        minute, second = int(stamp[14:16]), int(stamp[17:19])
        if start is None or minute > 59 or second > 59:
            return self._exact(_fields(stamp), abbrev)
        return start + minute * 60 + second

    def _hour_start(self, stamp: bytes, abbrev: bytes) -> int | None:
        """Unix time of the hour's start, or None when the offset changes within the hour."""
        fields = _fields(stamp)
        first = self._exact((*fields[:4], 0, 0), abbrev)
        last = self._exact((*fields[:4], 59, 59), abbrev)
        return first if last - first == 3599 else None

    def _exact(self, fields: tuple[int, int, int, int, int, int], abbrev: bytes) -> int:
        return local_to_epoch(fields, self.zone, abbrev.decode("ascii", "replace"))


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def utc_epoch(fields: tuple[int, int, int, int, int, int]) -> int:
    """Unix seconds of a UTC time (calendar.timegm), refusing with ValueError what datetime
    refuses: year 1-9999, month 1-12, the month's days, hour < 24, minute and second < 60."""
    year, month, day, hour, minute, second = fields
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        raise ValueError(f"not a date: {fields}")
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (month == 2 and leap):
        raise ValueError(f"not a date: {fields}")
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        raise ValueError(f"not a time of day: {fields}")
    # Days since 1970-01-01 of a proleptic Gregorian date (years counted from March).
    y = year - (month <= 2)
    era, year_of_era = divmod(y, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def _fields(stamp: bytes) -> tuple[int, int, int, int, int, int]:
    return (
        int(stamp[0:4]),
        int(stamp[5:7]),
        int(stamp[8:10]),
        int(stamp[11:13]),
        int(stamp[14:16]),
        int(stamp[17:19]),
    )


def with_fraction(seconds: int, digits: bytes) -> float:
    """`seconds` plus the decimal fraction `digits` (b"123" → .123), rounded once.

    (s * 1000 + ms) / 1000 is the float nearest the printed time, the same
    float `float("s.ms")` and a caller's `ms / 1000` give, so window edges
    placed exactly on an entry's time compare equal.
    """
    if not digits:
        return float(seconds)
    scale: int = 10 ** len(digits)
    return (seconds * scale + int(digits)) / scale


class IsoSecondsCache:
    """ISO 8601 with an explicit offset (`…T12:00:00.123+08:00`, `+0800`, `Z`) → unix seconds.

    Memoized per second and per hour: a time is its hour's start plus minutes and seconds, so
    a log with an entry every second parses one timestamp an hour, not one a second.
    """

    __slots__ = ("_cache", "_digits", "_hours", "_whole_seconds")

    def __init__(self) -> None:
        self._cache: dict[bytes, int] = {}
        self._hours: dict[bytes, int | None] = {}
        # Compiled here, not at import: a pg-stderr pack never parses ISO times (~0.5 ms).
        self._digits = re.compile(rb"\d+")
        # A whole-second time whose minutes and seconds are in range: its hour decides the rest.
        self._whole_seconds = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d(?![\d.,])")

    def parse(self, text: bytes) -> float:
        """Raises ValueError when `text` is not such a timestamp."""
        if text.find(b".", 19, 20) != 19:
            return float(self.seconds(text, b""))
        digits = self._digits.match(text, 20)
        end = digits.end() if digits is not None else 20
        return with_fraction(self.seconds(text[:19], text[end:]), text[20:end])

    def seconds(self, stamp: bytes, offset: bytes) -> int:
        """`YYYY-MM-DDTHH:MM:SS` and its offset (`Z`, `+08:00`, `+0800`) → unix seconds."""
        key = stamp + offset
        value = self._cache.get(key)
        if value is None:
            value = self._compute(key)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = value
        return value

    def _compute(self, text: bytes) -> int:
        if not self._whole_seconds.match(text):
            return _iso_seconds(text)  # an unusual form: parsed as a whole
        hour_key = text[:13] + text[19:]
        if hour_key in self._hours:
            start = self._hours[hour_key]
        else:
            start = self._hour_start(text)
            if len(self._hours) >= _CACHE_LIMIT:
                self._hours.clear()
            self._hours[hour_key] = start
        if start is None:
            return _iso_seconds(text)
        return start + int(text[14:16]) * 60 + int(text[17:19])

    @staticmethod
    def _hour_start(text: bytes) -> int | None:
        """The hour's start, or None when that is not a whole second (an offset with a fraction)."""
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat((text[:13] + b":00:00" + text[19:]).decode("ascii"))
        except ValueError:
            return None  # then the timestamp itself raises, as it would have alone
        if parsed.tzinfo is None:
            return None
        stamp = parsed.timestamp()
        return int(stamp) if stamp == int(stamp) else None


def _iso_seconds(text: bytes) -> int:
    """Whole-second ISO timestamp with its offset; naive text is refused (ValueError)."""
    from datetime import datetime

    parsed = datetime.fromisoformat(text.decode("ascii"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return round(parsed.timestamp())
