"""An entry of many megabytes (a bulk INSERT logged whole): past the chunk it is cut in, it is
read a chunk at a time, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.test_formats_window import pg_time, synthetic_log
from tests.unit.test_scan_chunks import LONG_SLOW, ReadSizes, scan_file

from dblogpack import chunkreads, scanpool
from dblogpack.model import LogKind, Query, TimeWindow

EVERYTHING = TimeWindow(None, None)
ONE_LINE = {
    **LONG_SLOW,
    "pg-stderr": lambda ms, i: f"{pg_time(ms)} [{i}] LOG:  duration: {i}.000 ms  statement: "
    "INSERT INTO t VALUES " + "(1, 'abc'), " * 30_000 + "(2, 'z')\n",
}


@pytest.mark.parametrize("name", ["mongo-json", "mongo-legacy", "pg-stderr"])
def test_the_chunks_after_a_cut_inside_one_line_are_read_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A one-line entry of ~350 KB among short ones, chunks of 16 KiB growing to 64 KiB: its
    # bytes past the cut were read in chunks doubling from 16 to 64 KiB each time, read again
    # at each doubling (~1.9x the file in all); no line starts in them, so no entry does.
    data, entries = synthetic_log(name, count=400)
    at, ms = entries[200][0], entries[200][2]
    data = data[:at] + ONE_LINE[name](ms, 200).encode() + data[at:]
    path = tmp_path / "a.log"
    path.write_bytes(data)
    monkeypatch.setattr(chunkreads, "MAX_CHUNK", 64 * 1024)
    monkeypatch.setattr(scanpool, "MAX_CHUNK", 64 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    reads = ReadSizes(monkeypatch)
    scanned = scan_file(path, name, Query(EVERYTHING, LogKind.ALL))

    assert (list(scanned.spans), scanned.entries, scanned.warnings) == ([(0, len(data))], 401, [])
    assert sum(reads.sizes) < 1.3 * len(data)
