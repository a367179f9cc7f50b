"""What a package costs to read: files outside the window are skipped after a glance at their
edges, a small window of a big file is found by bisection, and disorder never loses an entry.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from tests.unit.engine_logs import (
    BASE_MS,
    CountingSource,
    Entry,
    mixed,
    noise,
    pack,
    reference,
    slow,
    spec_for,
    write_log,
)

from dblogpack import scanpool
from dblogpack.model import LogKind, TimeWindow
from dblogpack.selector import Margins
from dblogpack.sources.local import DirSource

HOUR_MS = 3_600_000
EDGE_READS = 2 * Margins().edge  # a head chunk and a tail chunk


def three_hourly_files(tmp_path: Path) -> dict[str, list[Entry]]:
    """Files covering hours 0, 2 and 4 after BASE (gaps between them), oldest first by mtime."""
    files = {}
    for n, hour in enumerate((0, 2, 4)):
        name = f"postgresql-{hour}.log"
        files[name] = mixed(BASE_MS + hour * HOUR_MS, 3000)  # 50 min of log, ~300 KB
        write_log(tmp_path / name, files[name])
        os.utime(tmp_path / name, (1000 + n, 1000 + n))
    return files


@pytest.mark.parametrize(
    ("label", "begin_h", "end_h"),
    [("before all", -3.0, -1.0), ("after all", 6.0, 7.0), ("between files", 1.0, 1.9)],
)
def test_files_outside_the_window_are_skipped_after_reading_only_their_edges(
    tmp_path: Path, label: str, begin_h: float, end_h: float
) -> None:
    three_hourly_files(tmp_path)
    source = CountingSource(DirSource(tmp_path))
    spec = spec_for(LogKind.ALL, BASE_MS + int(begin_h * HOUR_MS), BASE_MS + int(end_h * HOUR_MS))

    result, files, _ = pack(source, spec)

    assert [name for name in files if name.startswith("logs/")] == [], label
    assert [(f.name, f.entries, f.bytes_scanned) for f in result.files] == [
        ("postgresql-0.log", 0, 0), ("postgresql-2.log", 0, 0), ("postgresql-4.log", 0, 0)
    ]
    assert all(read <= EDGE_READS for read in source.bytes_read.values()), source.bytes_read


def test_a_window_inside_one_file_reads_the_others_edges_only(tmp_path: Path) -> None:
    entries = three_hourly_files(tmp_path)
    source = CountingSource(DirSource(tmp_path))
    begin, end = BASE_MS + 2 * HOUR_MS + 600_000, BASE_MS + 2 * HOUR_MS + 900_000

    _, files, _ = pack(source, spec_for(LogKind.SLOW, begin, end))

    window = TimeWindow(begin / 1000, end / 1000)
    assert files["logs/postgresql-2.log"] == reference(
        entries["postgresql-2.log"], window, LogKind.SLOW
    )
    assert "logs/postgresql-0.log" not in files
    assert source.bytes_read["postgresql-0.log"] <= EDGE_READS
    assert source.bytes_read["postgresql-4.log"] <= EDGE_READS


def test_a_small_window_of_a_big_file_costs_a_small_part_of_it(tmp_path: Path) -> None:
    entries = mixed(BASE_MS, 120_000, step_ms=100)  # ~12 MB over 3.3 hours
    path = write_log(tmp_path / "big.log", entries)
    source = CountingSource(DirSource(tmp_path))
    begin, end = BASE_MS + 5_000_000, BASE_MS + 5_010_000  # 10 s of log, ~10 KB

    _, files, _ = pack(source, spec_for(LogKind.ALL, begin, end))

    window = TimeWindow(begin / 1000, end / 1000)
    assert files["logs/big.log"] == reference(entries, window, LogKind.ALL)
    margins = Margins()
    # Head and tail, two bisections of ~log2(12 MB / probe) probes each, the range with margins.
    budget = 2 * margins.edge + 2 * 12 * margins.probe + 2 * margins.bytes + 100_000
    assert source.bytes_read["big.log"] < budget < path.stat().st_size // 10


def test_entries_out_of_order_around_a_rotation_are_each_judged_by_their_own_time(
    tmp_path: Path,
) -> None:
    # Backends still writing to the old file after rotation: its last entries are later than
    # the new file's first ones (by less than the disorder margin).
    old = [slow(BASE_MS + ms, 1.0) for ms in range(0, 10_000, 100)]
    old += [slow(BASE_MS + ms, 2.0) for ms in (10_300, 10_600, 10_900)]
    new = [slow(BASE_MS + ms, 3.0) for ms in range(10_000, 20_000, 100)]
    write_log(tmp_path / "postgresql-a.log", old)
    write_log(tmp_path / "postgresql-b.log", new)
    os.utime(tmp_path / "postgresql-a.log", (1, 1))
    os.utime(tmp_path / "postgresql-b.log", (2, 2))
    begin, end = BASE_MS + 10_500, BASE_MS + 10_800

    for source in (DirSource(tmp_path), CountingSource(DirSource(tmp_path))):
        result, files, _ = pack(source, spec_for(LogKind.SLOW, begin, end))

        window = TimeWindow(begin / 1000, end / 1000)
        assert files["logs/postgresql-a.log"] == reference(old, window, LogKind.SLOW)
        assert files["logs/postgresql-b.log"] == reference(new, window, LogKind.SLOW)
        assert result.entries == 1 + 3 and result.warnings == []


@pytest.mark.parametrize("kind", [LogKind.ALL, LogKind.SLOW])
@pytest.mark.parametrize(("begin_s", "end_s"), [(1.5, 1.5), (0.5, 1.5), (1.5, 0.5), (0.5, 0.5)])
def test_entries_out_of_order_at_a_file_s_ends_are_each_judged_by_their_own_time(
    tmp_path: Path, kind: LogKind, begin_s: float, end_s: float
) -> None:
    # The second entry is 0.8 s earlier than the first, the one before the last 0.8 s later
    # than the last (out of order by less than the scans' 1 s tolerance), and the window
    # begins `begin_s` before the first and ends `end_s` after the last: within 0.8 s of them,
    # those two entries are outside the window and left out, each judged by its time; farther,
    # the file's chunks lie inside the window and are taken whole, those two included.
    last_ms = BASE_MS + 41_500
    entries = [
        slow(BASE_MS, 10.0), slow(BASE_MS - 800, 20.0), *mixed(BASE_MS + 10_000, 2000, 10),
        slow(last_ms + 800, 30.0), slow(last_ms, 40.0),
    ]
    write_log(tmp_path / "postgresql.log", entries)
    begin, end = BASE_MS - int(begin_s * 1000), last_ms + int(end_s * 1000)

    result, files, _ = pack(DirSource(tmp_path), spec_for(kind, begin, end))

    window = TimeWindow(begin / 1000, end / 1000)
    assert files["logs/postgresql.log"] == reference(entries, window, kind)
    kept = [e for e in entries if window.contains(e.ts) and e.is_kind(kind)]
    assert result.entries == len(kept)
    assert (entries[1] in kept, entries[-2] in kept) == (begin_s > 0.8, end_s > 0.8)


@pytest.mark.parametrize("kind", [LogKind.ALL, LogKind.SLOW])
@pytest.mark.parametrize("chunk", [16 * 1024, 64 * 1024])
def test_entries_out_of_order_are_judged_whatever_chunk_they_are_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, kind: LogKind
) -> None:
    # Every entry up to 0.45 s off its place in time (out of order by up to 0.9 s, under the
    # scans' 1 s tolerance), so that chunks near the window's edges hold entries on both sides
    # of one while their first or last entry is inside the window.
    monkeypatch.setattr(scanpool, "THREADED_CHUNK", chunk)
    jitter = random.Random(5)
    entries = []
    for i in range(3000):
        ts_ms = BASE_MS + 20 * i + jitter.randint(-450, 450)
        entries.append(slow(ts_ms, 5.0) if i % 3 == 0 else noise(ts_ms))
    write_log(tmp_path / "postgresql.log", entries)
    begin, end = BASE_MS + 20_000, BASE_MS + 40_000

    result, files, _ = pack(DirSource(tmp_path), spec_for(kind, begin, end))

    window = TimeWindow(begin / 1000, end / 1000)
    assert files["logs/postgresql.log"] == reference(entries, window, kind)
    assert result.entries == sum(window.contains(e.ts) and e.is_kind(kind) for e in entries)
    assert result.warnings == []


@pytest.mark.parametrize("kind", [LogKind.ALL, LogKind.SLOW, LogKind.ERROR])
@pytest.mark.parametrize("chunk", [16 * 1024, 256 * 1024, 2 * 1024 * 1024])
def test_a_spliced_file_is_packed_exactly_with_a_disorder_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, kind: LogKind
) -> None:
    # Whatever the chunks the file is read in: a chunk may hold both sides of the splice, or
    # only entries of the later run, before the window's.
    monkeypatch.setattr(scanpool, "THREADED_CHUNK", chunk)
    later = mixed(BASE_MS + 5 * HOUR_MS, 4000)
    earlier = mixed(BASE_MS, 4000)
    write_log(tmp_path / "spliced.log", later + earlier)
    begin, end = BASE_MS + 600_000, BASE_MS + 1_200_000

    result, files, _ = pack(DirSource(tmp_path), spec_for(kind, begin, end))

    window = TimeWindow(begin / 1000, end / 1000)
    assert files["logs/spliced.log"] == reference(later + earlier, window, kind)
    assert [w.kind for w in result.warnings] == ["disorder"]
