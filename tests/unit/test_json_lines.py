"""The JSON-lines formats' byte scans with stringzilla find what the regexes they replace found:
garbage lines (counted first, found by the regex only when the counts differ) and mongo-json's
error hits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.formats import build
from dblogpack.formats.framing import find_any
from dblogpack.formats.json_lines import JsonLinesScanner
from dblogpack.formats.mongo_json import _ERROR_NEEDLES
from dblogpack.model import FormatConfig

_PIECES = ["\n", '{"t":{"$date":', '{"timestamp":"', '{"t":', "x", "{", "\r"]


def regex_garbage(scanner: JsonLinesScanner, buf: bytes, lo: int, hi: int) -> list[tuple[int, int]]:
    """What the regex alone finds (the reference)."""
    not_entry = re.compile(b"\n(?!" + re.escape(scanner.marker) + b")")
    return [
        (found.start() + 1, scanner._entry_end(buf, found.start() + 1, hi))
        for found in not_entry.finditer(buf, lo, hi - 1)
    ]


@pytest.mark.parametrize("name", ["mongo-json", "pg-json"])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_garbage_found_after_counting_is_what_the_regex_finds(
    name: str, data: st.DataObject
) -> None:
    scanner = build(FormatConfig(name))
    assert isinstance(scanner, JsonLinesScanner)
    buf = "".join(data.draw(st.lists(st.sampled_from(_PIECES), max_size=40))).encode()
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(0, len(buf) + 2))
    assert list(scanner._garbage(buf, lo, hi)) == regex_garbage(scanner, buf, lo, hi)


def test_a_line_cut_short_by_the_range_end_is_garbage() -> None:
    scanner = build(FormatConfig("mongo-json"))
    assert isinstance(scanner, JsonLinesScanner)
    buf = b'{"t":{"$date":1}\n{"t":{"$date'
    assert list(scanner._garbage(buf, 0, len(buf))) == [(17, len(buf))]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_error_hits_found_with_stringzilla_are_the_regex_matches(data: st.DataObject) -> None:
    pieces = ['s":"', "W", "E", "F", "I", '"', "s", "\n"]
    buf = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=40))).encode()
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(0, len(buf) + 2))
    expected = [found.start() for found in re.finditer(rb's":"[WEF]"', buf[:hi])]
    assert list(find_any(buf, _ERROR_NEEDLES, lo, hi)) == [at for at in expected if at >= lo]
