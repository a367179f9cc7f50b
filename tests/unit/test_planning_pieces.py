"""Worker pieces of a big range: whole entries, as many for each worker, the last ones short so
the workers finish together."""

from __future__ import annotations

from itertools import pairwise

import pytest
from tests.unit.test_formats_pg_csv_records import quoting_file
from tests.unit.test_formats_window import synthetic_log

from dblogpack import planning
from dblogpack.formats import build
from dblogpack.formats.pg_csv import record_starts
from dblogpack.model import FormatConfig
from dblogpack.selector import ScanRange


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pieces_cover_the_range_at_entry_starts_and_end_in_quarters(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    data, entries = synthetic_log("mongo-json", 6000)
    starts = {start for start, _, _, _ in entries}
    monkeypatch.setattr(planning, "PIECE", len(data) // 7)  # 7 pieces' worth, then rounded up
    framing = planning._framing(build(FormatConfig("mongo-json")))
    scan = ScanRange(starts_after(starts, 1000), len(data))

    pieces = planning._split(lambda at, size: data[at : at + size], len(data), scan, framing,
                             workers)

    assert pieces[0][0] == scan.start and pieces[-1][1] == scan.stop
    assert all(a < b == c for (a, b), (c, _) in pairwise(pieces))
    assert all(start in starts for start, _ in pieces)
    whole = -(-7 // workers) * workers - workers  # pieces before the quartered ones
    assert len(pieces) == whole + 4 * workers
    sizes = [b - a for a, b in pieces]
    # Each whole piece is about four of the last ones (entries are ~180 bytes, pieces ~20 KB).
    assert all(3.5 < size / max(sizes[whole:]) < 4.5 for size in sizes[:whole])


def starts_after(starts: set[int], offset: int) -> int:
    return min(start for start in starts if start >= offset)


def test_pieces_of_a_csvlog_are_cut_at_records_not_at_the_csvlog_lines_a_statement_quotes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The middle record logs a statement quoting 3,000 csvlog lines (~0.6 MB): cut points that
    # land in it move on to the record after it.
    before, statement, after = quoting_file()
    data = before + statement + after
    monkeypatch.setattr(planning, "PIECE", len(data) // 9)
    framing = planning._framing(build(FormatConfig("pg-csv")))

    pieces = planning._split(
        lambda at, size: data[at : at + size], len(data), ScanRange(0, len(data)), framing, 2
    )

    assert pieces[0][0] == 0 and pieces[-1][1] == len(data)
    assert {start for start, _ in pieces} <= set(record_starts(data, 0, len(data)))
    assert len(before) + len(statement) in {start for start, _ in pieces}
