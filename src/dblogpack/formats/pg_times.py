"""The time span of a chunk's pg-stderr timestamps, read from their text without parsing each one.

`%m` and `%t` print a fixed-width local time and a zone abbreviation. When every text of a chunk
has the same abbreviation, valid clock fields, and hours whose UTC offset does not change, the
texts sort exactly like the times they mean; then the earliest and latest text are the only ones
parsed, and a window is judged for the whole chunk at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter

from dblogpack.formats.timestamps import LocalSecondsCache

# A minute or second field of 60 or more (`:6`..`:9`): such texts are not times (the parser
# refuses them), so the chunk is judged entry by entry.
_BAD_CLOCK = re.compile(rb":[6-9]")
# Where the tens of the minutes and of the seconds sit in a text (`YYYY-MM-DD HH:MM:SS`), and
# the digits they may be.
_MINUTE_TENS, _SECOND_TENS = 14, 17
_CLOCK_TENS = b"012345"
# `YYYY-MM-DD HH`: the part of a local time whose UTC offset is checked once.
_HOUR = itemgetter(slice(0, 13))


class StampSpan:
    """(earliest, latest) of timestamp texts of one layout, when their order is their text order."""

    __slots__ = ("_read", "_seconds", "_zone_at")

    def __init__(
        self, seconds: LocalSecondsCache, zone_at: int | None, read: Callable[[bytes], float]
    ) -> None:
        """`zone_at`: where the zone starts in a text (None: texts are epoch numbers, `%n`)."""
        self._seconds, self._zone_at, self._read = seconds, zone_at, read

    def span(self, texts: list[bytes]) -> tuple[float, float] | None:
        """Earliest and latest time of `texts` (not empty); None when one is not a valid time or
        the texts may not sort like their times (the caller then parses each)."""
        if self._zone_at is None:
            times = list(map(float, texts))
            return min(times), max(times)
        earliest, latest = min(texts), max(texts)
        zone = earliest[self._zone_at :]
        joined = b"\n".join(texts) + b"\n"
        if joined.count(b" " + zone + b"\n") != len(texts) or _bad_clock(joined, earliest, zone):
            return None
        # Texts sorted between two of one hour are of that hour (a chunk often spans one).
        first_hour, last_hour = _HOUR(earliest), _HOUR(latest)
        hours = {first_hour} if first_hour == last_hour else set(map(_HOUR, texts))
        if not self._steady_hours(hours, zone):
            return None
        try:
            return self._read(earliest), self._read(latest)
        except ValueError:
            return None

    def _steady_hours(self, hours: set[bytes], zone: bytes) -> bool:
        """Each hour is a valid time with one UTC offset throughout, and later hours start later."""
        previous: int | None = None
        for hour in sorted(hours):
            try:
                first = self._seconds.seconds(hour + b":00:00", zone)
                last = self._seconds.seconds(hour + b":59:59", zone)
            except ValueError:
                return False
            if last - first != 3599 or (previous is not None and first < previous + 3600):
                return False
            previous = first
        return True


def _bad_clock(joined: bytes, earliest: bytes, zone: bytes) -> bool:
    """Whether `_BAD_CLOCK` is found in `joined`, texts that each end with ` zone` and so are as
    wide as `earliest` (a text's zone holds no space): a `:` of theirs is a clock field's or the
    zone's. Their tens are read by stride, not by a regex over every byte (0.38 k instructions
    a text of pg-stderr-1g.log)."""
    stride = len(earliest) + 1
    tens = joined[_MINUTE_TENS::stride] + joined[_SECOND_TENS::stride]
    return bool(tens.translate(None, _CLOCK_TENS)) or _BAD_CLOCK.search(zone) is not None
