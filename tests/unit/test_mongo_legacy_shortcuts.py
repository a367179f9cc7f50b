"""mongo-legacy's shortcuts give what the plain searches gave: slow lines found by their
components' names, a duration looked for in a line's tail first, an entry's end tried at its first
newline first, an error code searched only in messages that can hold one."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.formats import mongo_legacy
from dblogpack.formats.framing import find_all
from dblogpack.formats.mongo_legacy import MongoLegacyFormat
from dblogpack.model import FormatConfig, LogKind, TimeWindow

_FORMAT = MongoLegacyFormat(FormatConfig("mongo-legacy"))
_HEADS = [
    "2024-05-01T00:00:00.096+0000 I  COMMAND  [conn1] ",
    "Wed May  1 00:00:00.096 W REPL [x] ",
]
_PIECES = [*_HEADS, " ", "12", "9" * 40, "ms", "\r", "\n", "\t", "a", "code: 7", "errCode:1"]
_texts = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


def regex_duration(buf: bytes, start: int, end: int) -> float | None:
    newline = buf.find(b"\n", start, end)
    found = mongo_legacy._TRAILING_MS.search(buf, start, end if newline < 0 else newline)
    return float(found[1]) if found is not None else None


def regex_entry_end(buf: bytes, start: int, hi: int) -> int:
    found = mongo_legacy._NEXT_START.search(buf, start, hi)
    return hi if found is None else found.start() + 1


@st.composite
def _ranged(draw: st.DrawFn, pieces: list[str]) -> tuple[bytes, int, int]:
    """Bytes joined from `pieces` and a range of them."""
    buf = "".join(draw(st.lists(st.sampled_from(pieces), max_size=30))).encode()
    lo = draw(st.integers(0, len(buf)))
    return buf, lo, draw(st.integers(lo, len(buf)))


@settings(max_examples=400, deadline=None)
@given(_ranged(_PIECES))
def test_duration_and_entry_end_are_those_of_the_plain_search(
    ranged: tuple[bytes, int, int],
) -> None:
    buf, start, end = ranged
    assert _FORMAT._duration_ms(buf, start, end) == regex_duration(buf, start, end)
    assert _FORMAT._entry_end(buf, start, end) == regex_entry_end(buf, start, end)


@settings(max_examples=200, deadline=None)
@given(_texts)
def test_a_code_is_found_where_the_search_alone_finds_it(message: str) -> None:
    line = f"{_HEADS[0]}{message}".encode()
    detail = _FORMAT._detail(line, 0, len(line), 0.0, None)
    found = re.search(r"\b(?:code|errCode):\s?(\d+)", line[len(_HEADS[0]) :].decode())
    assert detail.code == (found[1] if found is not None else None)


def line_end_lines(buf: bytes, lo: int, hi: int) -> list[int]:
    """The reference: lines found by their `<digits>ms` ends, then the head's component."""
    ends = [at for at in find_all(buf, b"ms\n", lo, hi) if at > lo and 48 <= buf[at - 1] <= 57]
    if buf.endswith(b"ms", lo, hi) and hi - 3 >= lo and 48 <= buf[hi - 3] <= 57:
        ends.append(hi - 2)
    starts = (buf.rfind(b"\n", lo, at) + 1 or lo for at in ends)
    return [start for start in starts if mongo_legacy._names_slow_component(buf, start)]


_LINE_PIECES = [
    *_HEADS,
    "2024-05-01T00:00:00.096+0000 I  WRITE [c] ",
    "x QUERY  [",
    " COMMAND ",
    " WRITE ",
    " ",
    "5",
    "ms",
    "\n",
    "a" * 40,
]


@settings(max_examples=500, deadline=None)
@given(_ranged(_LINE_PIECES))
def test_slow_lines_found_by_component_are_those_found_by_line_end(
    ranged: tuple[bytes, int, int],
) -> None:
    buf, lo, hi = ranged
    found = [start for start, _ in _FORMAT._slow_lines(buf, lo, hi)]
    assert found == line_end_lines(buf, lo, hi)


def test_each_selected_entry_has_its_own_details() -> None:
    log = MongoLegacyFormat(FormatConfig("mongo-legacy"))
    buf = (
        b"2024-05-01T00:00:00.096+0000 I  COMMAND  [conn1] command a.b command: find { x: 1 } 5ms\n"
        b"2024-05-01T00:00:01.096+0000 W  WRITE    [conn2] update a.c code: 11 errCode:2 7ms\n"
    )
    second = buf.index(b"2024-05-01T00:00:01")
    candidates = list(log._candidates(buf, LogKind.SLOW, TimeWindow(), 0, len(buf)))
    assert [c[0] for c in candidates] == [0, second]
    first, last = (
        log._detail(buf, 0, second, 1.0, 5.0),
        log._detail(buf, second, len(buf), 2.0, 7.0),
    )
    assert (first.severity, first.code, last.severity, last.code) == ("I", None, "W", "11")
