"""Scanning a local file in chunks: reading each chunk to the boundary its tail shows (the fast
path of the formats whose framing allows it) selects exactly what reading and cutting does."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_window import (
    csv_record,
    iso_time,
    pg_time,
    reference,
    synthetic_log,
    windows,
)

from dblogpack import chunkreads, pieces, pipeline, scanpool, streamscan
from dblogpack.chunkreads import TAIL_FRAMED
from dblogpack.errors import InternalError
from dblogpack.formats import build
from dblogpack.members import gunzipped
from dblogpack.model import FormatConfig, LogFile, LogKind, PackageResult, Query, TimeWindow
from dblogpack.packer import TarGzWriter
from dblogpack.planning import FilePlan, Meter
from dblogpack.scanpool import Scanned
from dblogpack.selector import ScanRange
from dblogpack.sources.local import DirSource
from dblogpack.summary import SummaryBuilder


def scan_file(path: Path, name: str, query: Query) -> Scanned:
    task = scanpool._PieceTask(
        str(path), path.name, FormatConfig(name, "%m [%p] "), query, 0, path.stat().st_size,
        "mongo" if name.startswith("mongo") else "sql",
    )
    return scanpool._scan_piece(task)


class ReadSizes:
    """The size of every read chunkreads makes from now on (its os.pread, counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        pread = chunkreads.os.pread

        def counted(fd: int, size: int, offset: int) -> bytes:
            self.sizes.append(size)
            return pread(fd, size, offset)

        monkeypatch.setattr(chunkreads.os, "pread", counted)


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
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    for window in windows(entries)[:4]:
        for kind in LogKind:
            query = Query(window, kind, details=kind is not LogKind.ALL)
            fast = scan_file(path, name, query)
            with monkeypatch.context() as general:
                general.setattr(chunkreads, "TAIL_FRAMED", frozenset())
                cut = scan_file(path, name, query)
            assert outcome(fast) == outcome(cut), (window, kind)


@pytest.mark.parametrize("name", sorted(TAIL_FRAMED | {"pg-csv"}))
def test_bytes_no_entry_holds_are_read_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A file whose first 0.8 MB are no entries of the format given (a file in another format is
    # all such bytes): each read stays a chunk, and the entries after them are found as ever.
    data, _ = synthetic_log(name)
    junk = b"".join(b"not a log line %d\n" % i for i in range(40_000))
    path = tmp_path / "a.log"
    path.write_bytes(junk + data)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    reads = ReadSizes(monkeypatch)
    scanned = scan_file(path, name, Query(TimeWindow(None, None), LogKind.ALL))

    assert max(reads.sizes) <= 16 * 1024
    assert (list(scanned.spans), scanned.entries) == ([(len(junk), len(junk) + len(data))], 3000)
    assert {w.kind for w in scanned.warnings} == {"unparseable"}
    assert sum(w.offset < len(junk) for w in scanned.warnings) == len(scanned.warnings)


@pytest.mark.parametrize("name", sorted(TAIL_FRAMED | {"pg-csv"}))
def test_an_entry_that_starts_where_such_bytes_are_cut_off_waits_for_the_next_chunk(
    name: str,
) -> None:
    data, _ = synthetic_log(name, count=2)
    junk = b"not a log line\n" * 100
    log_format = build(FormatConfig(name, "%m [%p] "))
    for cut in range(1, data.index(b"\n") + 1):
        assert chunkreads.whole_length(log_format, junk + data[:cut], False, 1024) == len(junk)


LONG_SLOW = {
    "pg-stderr": lambda ms, i: f"{pg_time(ms)} [{i}] LOG:  duration: {i}.000 ms  statement: SELECT"
    + "\n\t, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'" * 5000 + "\n",
    "pg-csv": lambda ms, i: csv_record(
        ms, f"duration: {i}.000 ms  statement: SELECT '{'a' * 70 + chr(10)}'" * 5000, i=i
    ),
    "mongo-legacy": lambda ms, i: f"{iso_time(ms)} I  COMMAND  [conn{i}] command db.c command: "
    f"find {{ find: \"c\", filter: {{ x: \"{'x' * 350_000}\" }} }} {i}ms\n",
    "mongo-json": lambda ms, i: f'{{"t":{{"$date":"{iso_time(ms)}"}},"s":"I",  "c":"COMMAND",  '
    f'"id":51803,   "ctx":"conn{i}","msg":"m","attr":{{"durationMillis":{i},'
    f'"command":"{"x" * 350_000}"}}}}\n',
}
LONG_ERROR = {
    "pg-stderr": lambda ms, i: f"{pg_time(ms)} [{i}] ERROR:  boom\n\t" + "y" * 350_000 + "\n",
    "pg-csv": lambda ms, i: csv_record(
        ms, ("relation x does not exist '" + "a" * 70 + "\n'") * 5000, "ERROR", "42P01", i=i
    ),
    "mongo-legacy": lambda ms, i: f"{iso_time(ms)} E  NETWORK  [conn{i}] {'x' * 350_000}\n",
    "mongo-json": lambda ms, i: f'{{"t":{{"$date":"{iso_time(ms)}"}},"s":"E",  "c":"COMMAND",  '
    f'"id":22435,   "ctx":"conn{i}","msg":"m","attr":{{"error":{{"code":28}},'
    f'"x":"{"x" * 350_000}"}}}}\n',
}


@pytest.mark.parametrize("name", sorted(LONG_SLOW))
@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("long_kind", ["slow", "error"])
def test_an_entry_longer_than_the_longest_chunk_is_selected_or_dropped_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, gzipped: bool, long_kind: str
) -> None:
    # A ~350 KB entry among short ones, chunks of 16 KiB growing to 64 KiB at most: the chunks
    # after the one it is cut in carry its bytes, kept or not with it, never warned of.
    data, entries = synthetic_log(name, count=400)
    at, ms = entries[200][0], entries[200][2]
    long = (LONG_SLOW if long_kind == "slow" else LONG_ERROR)[name](ms, 200).encode()
    data = data[:at] + long + data[at:]
    entries = [
        (start + (len(long) if start >= at else 0), end + (len(long) if start >= at else 0),
         entry_ms, kind)
        for start, end, entry_ms, kind in entries
    ]
    entries.insert(200, (at, at + len(long), ms, long_kind))
    path = tmp_path / ("a.log.gz" if gzipped else "a.log")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    for module in (chunkreads, scanpool, streamscan):
        monkeypatch.setattr(module, "MAX_CHUNK", 64 * 1024, raising=False)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    monkeypatch.setattr(streamscan, "CHUNK", 16 * 1024)
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    # Its type is read from its first 64 KiB: mongo-legacy's duration ends the line, so past
    # MAX_CHUNK such a line is not known slow.
    kinds = [LogKind.ALL, LogKind(long_kind)]
    if long_kind == "slow" and name == "mongo-legacy":
        kinds.pop()
    t = ms / 1000
    for window in (TimeWindow(None, None), TimeWindow(t - 1, t + 1), TimeWindow(t + 0.001, t + 10),
                   TimeWindow(None, t), TimeWindow(t, None)):
        for kind in kinds:
            query = Query(window, kind)
            scanned = stream_file(path, name, query) if gzipped else scan_file(path, name, query)
            assert (list(scanned.spans), scanned.entries) == reference(entries, window, kind)
            assert scanned.warnings == []


def stream_file(path: Path, name: str, query: Query) -> Scanned:
    source = DirSource(path.parent)
    (file,) = source.list_files()
    plan = FilePlan(file, FormatConfig(name, "%m [%p] "), str(path))
    plan.range = ScanRange(0, file.size)
    return streamscan.stream_scan(plan, source, query, io.BytesIO(), Meter(file.size, None))


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


@pytest.mark.parametrize("first", [16 * 1024, 5000])
@pytest.mark.parametrize("name", ["pg-stderr", "mongo-json", "pg-csv"])
def test_chunks_read_ahead_by_a_thread_scan_as_chunks_read_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, first: int
) -> None:
    """An in-process scan compressing as it goes reads the next chunk in a thread while it
    scans one (the first one smaller): the same chunks, the same selection as one whole read,
    and the member holds exactly those bytes."""
    from isal import isal_zlib

    data, entries = synthetic_log(name)
    path = tmp_path / "a.log"
    path.write_bytes(data)
    monkeypatch.setattr(chunkreads, "_TAIL", 2 * 1024)
    monkeypatch.setattr(scanpool, "THREADED_FIRST_CHUNK", first)
    calls: list[None] = []

    def call() -> None:
        calls.append(None)

    for window in windows(entries)[:4]:
        for kind in LogKind:
            query = Query(window, kind, details=kind is not LogKind.ALL)
            task = scanpool._PieceTask(
                str(path), path.name, FormatConfig(name, "%m [%p] "), query, 0, len(data),
                "mongo" if name.startswith("mongo") else "sql", chunk=16 * 1024,
            )
            before = len(calls)
            ahead = scanpool._scan_piece(task, level=1, while_compressing=call)
            in_turn = scanpool._scan_piece(task)
            assert outcome(ahead) == outcome(in_turn), (window, kind)
            assert len(calls) == before + 1  # once the scan is over, before the member's wait
            assert outcome(ahead) == outcome(scanpool._scan_piece(task._replace(chunk=0)))
            assert ahead.member is not None
            packed = b"".join(ahead.member.compressed_chunks())
            assert isal_zlib.decompress(packed, wbits=31) == b"".join(
                data[start:end] for start, end in in_turn.spans
            )
            ahead.member.close()



def workers_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: LogKind
) -> tuple[bytes, Path, scanpool._PieceTask]:
    """A worker's task for the whole of a mongo-json log, in 16 KiB chunks, its pieces kept in
    tmp_path / "pieces"."""
    data, _ = synthetic_log("mongo-json")
    path = tmp_path / "a.log"
    path.write_bytes(data)
    piece_dir = tmp_path / "pieces"
    piece_dir.mkdir()
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    task = scanpool._PieceTask(
        str(path), path.name, FormatConfig("mongo-json"), Query(TimeWindow(), kind), 0,
        len(data), "mongo", str(piece_dir),
    )
    return data, path, task


@pytest.mark.parametrize("kind", list(LogKind))
def test_a_workers_piece_hands_back_its_selected_bytes_alike_every_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: LogKind
) -> None:
    # A sparse selection comes with a copy as it is, which the parent hashes; a dense one (all)
    # has none, and the parent reads the log file; the gzip member holds them in every case.
    data, path, task = workers_task(tmp_path, monkeypatch, kind)
    piece_dir = Path(str(task.piece_dir))
    scanned = scanpool._scan_piece(task)
    alone = scanpool._scan_piece(task._replace(piece_dir=None))  # no member: spans kept
    expected = b"".join(data[start:end] for start, end in alone.spans)
    assert scanned.compressed is not None and scanned.compressed.path is not None
    assert b"".join(gunzipped(scanned.compressed.path)) == expected
    assert (scanned.raw is None) == (kind is LogKind.ALL)
    assert scanned.spans.total() == len(expected)
    if scanned.raw is None:
        assert list(scanned.spans) == list(alone.spans)
    else:  # the parent reads the copy: the ranges were not kept
        with pytest.raises(InternalError, match="not kept"):
            list(scanned.spans)
    with path.open("rb", buffering=0) as file:
        # Read into one small reused buffer: each piece is taken before the next is read.
        read = scanpool._selected_bytes(scanned, scanned.compressed, file, bytearray(16 * 1024))
        given = b"".join(map(bytes, read))
    assert given == expected
    assert sorted(p.suffix for p in piece_dir.iterdir()) == [".gz"]  # the copy, once read, is gone


@pytest.mark.parametrize("waiting", [pieces.WAITING_SPANS, 1], ids=["waiting", "added"])
def test_a_piece_whose_selection_stops_being_sparse_keeps_the_spans_of_every_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waiting: int
) -> None:
    # The copy goes once a quarter of the scanned bytes is selected: the parent then reads the
    # log file, from the spans of the chunks before that too (waiting, or added as they came
    # when more than WAITING_SPANS waited).
    monkeypatch.setattr(pieces, "WAITING_SPANS", waiting)
    piece = pieces.CompressedPiece(str(tmp_path), 1)
    chunks = [([(0, 10)], 0), ([], 100), ([(5, 10), (20, 60)], 200), ([(0, 90)], 300)]
    for spans, base in chunks:
        piece.add(bytes(100), spans, base)
    files = piece.finish()
    piece.close()
    assert files.raw is None
    assert list(files.spans) == [(0, 10), (205, 210), (220, 260), (300, 390)]
    assert files.spans.total() == 10 + 5 + 40 + 90


def test_a_file_rotated_away_before_its_pieces_are_gathered_is_packed_as_vanished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers scanned it; when this process comes to take their pieces it is gone. A file
    # under its name by the time the packer writes the member is another one: the spans (here
    # only their total, a copy stood for them) must not be read from it.
    data, path, task = workers_task(tmp_path, monkeypatch, LogKind.ERROR)
    config, query = task.config, task.query
    piece = scanpool._scan_piece(task)
    assert piece.entries and piece.raw is not None
    path.rename(tmp_path / "a.log.1")
    plan = FilePlan(LogFile(path.name, len(data)), config, str(path))
    plan.range, plan.pieces = ScanRange(0, len(data)), [(0, len(data))]
    gathered = scanpool._gathered(plan, iter([piece]), Meter(len(data), None))
    assert gathered.vanished and gathered.member is None

    path.write_bytes(data[: len(data) // 2])  # rotated in anew before the packer comes to it
    result = PackageResult()
    with TarGzWriter(io.BytesIO(), threads=0) as tar:
        packing = pipeline._Packing(
            tar, DirSource(tmp_path), query, result, SummaryBuilder("mongo"), Meter(1, None)
        )
        row = packing.file(plan, gathered)
    assert row.member is None and not row.entries
    assert [(w.file, w.kind) for w in result.warnings] == [("a.log", "vanished")]


def test_a_sparse_piece_with_many_spans_hands_back_their_total_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More spans than may wait went into the span list as they came; the copy stayed, so the
    # parent reads it and gets only the total.
    monkeypatch.setattr(pieces, "WAITING_SPANS", 2)
    piece = pieces.CompressedPiece(str(tmp_path), 1)
    for base in range(0, 1000, 100):
        piece.add(bytes(100), [(0, 2), (10, 12), (20, 22)], base)
    files = piece.finish()
    piece.close()
    assert files.raw is not None and Path(files.raw).read_bytes() == bytes(60)
    assert files.spans.total() == 60
    with pytest.raises(InternalError, match="not kept"):
        list(files.spans)
