"""UTC times are plain arithmetic (no datetime import on the pack path): the same seconds as
calendar.timegm, and the same refusals as datetime."""

from __future__ import annotations

import calendar
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from dblogpack.formats.timestamps import LocalSecondsCache, load_zone, utc_epoch


@given(
    st.tuples(
        st.integers(-2, 10_001), st.integers(-1, 14), st.integers(-1, 32),
        st.integers(-1, 25), st.integers(-1, 61), st.integers(-1, 61),
    )
    | st.tuples(
        st.integers(1900, 2100), st.integers(1, 12), st.integers(1, 31),
        st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
    )
)
def test_utc_seconds_are_timegm_s_and_invalid_fields_are_refused_alike(
    fields: tuple[int, int, int, int, int, int],
) -> None:
    try:
        datetime(*fields)
    except ValueError:
        refused = True
    else:
        refused = False
    try:
        seconds = utc_epoch(fields)
    except ValueError:
        assert refused
    else:
        assert not refused
        assert seconds == calendar.timegm((*fields, 0, 0, 0))


def test_utc_is_no_zone_and_reads_as_before() -> None:
    assert load_zone(None) is None and load_zone("utc") is None
    cache = LocalSecondsCache(load_zone("UTC"))
    assert cache.seconds(b"2024-05-04 12:00:01", b"UTC") == 1714824001
    paris = LocalSecondsCache(load_zone("Europe/Paris"))
    assert paris.seconds(b"2024-05-04 14:00:01", b"CEST") == 1714824001
