"""The stringzilla calls the scans make directly give what the bytes methods they replace give,
over random bytes and ranges (in and out of bounds). (framing's find_all and count_bytes, the
other uses, are held to bytes.find and bytes.count with the framing tests.)"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from stringzilla import find, find_first_of, rfind, translate

from dblogpack.formats.mongo_slow_lines import _UNPLAIN, _ZERO_DIGITS, MASK_DIGITS

_bytes = st.lists(st.sampled_from(b'0159a\\\0\n"{'), max_size=60).map(bytes)


@settings(max_examples=300, deadline=None)
@given(_bytes, st.integers(0, 70), st.integers(0, 70), st.sampled_from([_ZERO_DIGITS, MASK_DIGITS]))
def test_translating_a_range_is_translating_its_slice(
    data: bytes, start: int, end: int, table: bytes
) -> None:
    assert translate(data, table, False, start, end) == data[start:end].translate(table)


@settings(max_examples=300, deadline=None)
@given(_bytes, st.integers(0, 70), st.integers(0, 70))
def test_first_of_a_backslash_or_nul_is_the_first_either(data: bytes, start: int, end: int) -> None:
    either = [at for at in (data.find(b"\\", start, end), data.find(b"\0", start, end)) if at >= 0]
    assert find_first_of(data, _UNPLAIN, start, end) == min(either, default=-1)


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(st.sampled_from([b"\n", b"a", b"\t", b"LOG"]), max_size=60).map(b"".join),
    start=st.integers(0, 70),
    end=st.integers(0, 70),
)
def test_rfind_of_a_newline_is_bytes_rfind(text: bytes, start: int, end: int) -> None:
    # pg_batch finds each hit's line start with it, bounded by the chunk's first line.
    assert rfind(text, b"\n", start, end) == text.rfind(b"\n", start, end)


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(st.sampled_from([b",", b'"p":', b',"p":', b"a", b"\n"]), max_size=40).map(
        b"".join
    ),
    start=st.integers(0, 70),
    end=st.integers(0, 70),
)
def test_find_of_the_cut_is_bytes_find(text: bytes, start: int, end: int) -> None:
    # mongo_slow_lines finds each slow line's cut (AFTER_COMMAND) with it, from the hit to the
    # line's end; the needle here is as self-similar as the generated text allows.
    for needle in (b',"p":', b'"p":'):
        assert find(text, needle, start, end) == text.find(needle, start, end)
