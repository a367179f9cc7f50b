"""Scanning a local file in chunks: reading each chunk to the boundary its tail shows (the fast
path of the formats whose framing allows it) selects exactly what reading and cutting does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_window import synthetic_log, windows

from dblogpack import scanpool
from dblogpack.formats import build
from dblogpack.model import FormatConfig, LogKind, Query
from dblogpack.scanpool import TAIL_FRAMED, Scanned


def scan_file(path: Path, name: str, query: Query) -> Scanned:
    task = scanpool._PieceTask(
        str(path), path.name, FormatConfig(name, "%m [%p] "), query, 0, path.stat().st_size,
        "mongo" if name.startswith("mongo") else "sql",
    )
    return scanpool._scan_piece(task)


def outcome(scanned: Scanned) -> tuple[object, ...]:
    return (list(scanned.spans), scanned.entries, scanned.first_ts, scanned.last_ts,
            scanned.bytes_scanned, scanned.warnings)


@pytest.mark.parametrize("name", sorted(TAIL_FRAMED))
def test_reading_to_the_tail_boundary_selects_what_cutting_a_read_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    data, entries = synthetic_log(name)
    path = tmp_path / "a.log"
    path.write_bytes(data)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)  # a few dozen chunks
    monkeypatch.setattr(scanpool, "_TAIL", 2 * 1024)
    for window in windows(entries)[:4]:
        for kind in LogKind:
            query = Query(window, kind, details=kind is not LogKind.ALL)
            fast = scan_file(path, name, query)
            with monkeypatch.context() as general:
                general.setattr(scanpool, "TAIL_FRAMED", frozenset())
                cut = scan_file(path, name, query)
            assert outcome(fast) == outcome(cut), (window, kind)


def test_a_csv_log_is_always_read_and_cut_by_its_own_framing() -> None:
    # Its record starts depend on the quotes counted from a chunk's first byte.
    assert "pg-csv" not in TAIL_FRAMED


@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(sorted(TAIL_FRAMED)),
    count=st.integers(1, 60),
    cut=st.integers(0, 10**6),
    tail=st.integers(1, 2000),
)
def test_the_framing_of_a_tail_is_the_framing_of_the_whole_buffer(
    name: str, count: int, cut: int, tail: int
) -> None:
    """Property: what makes TAIL_FRAMED sound: whenever a buffer's tail holds an entry start,
    the whole entries it shows end where those of the whole buffer do."""
    data, _ = synthetic_log(name, count)
    buf = data[: cut % (len(data) + 1)]
    log_format = build(FormatConfig(name, "%m [%p] "))
    offset = max(0, len(buf) - tail)
    found = log_format.complete_length(buf[offset:])
    if found > 0:
        assert offset + found == log_format.complete_length(buf)
