"""Hand-built PostgreSQL stderr logs for the engine's tests, with the entries each package must hold
computed from the entry list itself (never by parsing the log), so the engine is checked by an
independent reference.
"""

from __future__ import annotations

import io
import tarfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest import MonkeyPatch

from dblogpack import pipeline, planning, scanpool
from dblogpack.formats.base import ScanResult
from dblogpack.model import (
    FormatConfig,
    LogFile,
    LogKind,
    PackageResult,
    PackageSpec,
    ResourceKind,
    TimeWindow,
)
from dblogpack.sources.base import LogSource
from dblogpack.summary import SummaryBuilder

BASE_MS = 1_714_550_400_000  # 2024-05-01T08:00:00Z
PG_STDERR = FormatConfig("pg-stderr")


@dataclass(frozen=True)
class Entry:
    ts_ms: int
    severity: str
    message: str
    pid: int = 4242
    follow_up: str = ""  # TAB continuation or DETAIL/STATEMENT lines, already prefixed
    duration_ms: float | None = None

    @property
    def ts(self) -> float:
        return self.ts_ms / 1000

    def text(self) -> bytes:
        head = f"{prefix(self.ts_ms, self.pid)}{self.severity}:  {self.message}\n"
        return (head + self.follow_up).encode()

    def is_kind(self, kind: LogKind) -> bool:
        if kind is LogKind.SLOW:
            return self.duration_ms is not None
        if kind is LogKind.ERROR:
            return self.severity in ("WARNING", "ERROR", "FATAL", "PANIC")
        return True


def prefix(ts_ms: int, pid: int) -> str:
    moment = datetime.fromtimestamp(ts_ms // 1000, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{ts_ms % 1000:03d} UTC [{pid}] "


def slow(ts_ms: int, duration_ms: float, statement: str = "SELECT 1", pid: int = 4242) -> Entry:
    message = f"duration: {duration_ms:.3f} ms  statement: {statement}"
    return Entry(ts_ms, "LOG", message, pid, duration_ms=duration_ms)


def error(ts_ms: int, message: str, statement: str = "SELECT boom()", pid: int = 4242) -> Entry:
    follow_up = f"{prefix(ts_ms, pid)}STATEMENT:  {statement}\n"
    return Entry(ts_ms, "ERROR", message, pid, follow_up=follow_up)


def noise(ts_ms: int, pid: int = 4242) -> Entry:
    return Entry(ts_ms, "LOG", "connection received: host=10.0.0.1 port=5432", pid,
                 follow_up="\tand a continuation line\n")


def mixed(start_ms: int, count: int, step_ms: int = 1000) -> list[Entry]:
    """A steady log: every 7th entry slow, every 11th an error, the rest noise."""
    made = []
    for i in range(count):
        ts = start_ms + i * step_ms
        if i % 7 == 0:
            made.append(slow(ts, 100 + i % 900, f"SELECT * FROM t WHERE id = {i}"))
        elif i % 11 == 0:
            made.append(error(ts, f'relation "t{i % 3}" does not exist'))
        else:
            made.append(noise(ts))
    return made


def write_log(path: Path, entries: list[Entry]) -> Path:
    path.write_bytes(b"".join(e.text() for e in entries))
    return path


def reference(
    entries: list[Entry], window: TimeWindow, kind: LogKind, min_duration_ms: float | None = None
) -> bytes:
    """The bytes a package must hold for these entries: each entry judged alone, in file order."""
    kept = [
        e for e in entries
        if window.contains(e.ts) and e.is_kind(kind)
        and (min_duration_ms is None or (e.duration_ms or 0) >= min_duration_ms)
    ]
    return b"".join(e.text() for e in kept)


def scan_told(result: ScanResult, flavour: str, top: int = 50) -> dict[str, Any]:
    """What a scan tells the package: spans, counts, times and the summary (its `top` groups)."""
    summary = SummaryBuilder(flavour)
    for group in result.details:
        summary.add_group(group)
    return {
        "spans": result.spans,
        "entries": result.entries,
        "first_ts": result.first_ts,
        "last_ts": result.last_ts,
        "summary": summary.to_json(top=top),
    }


def members(package: bytes | Path) -> dict[str, bytes]:
    """Every member of a .tar.gz, read with Python's own tarfile."""
    data = package.read_bytes() if isinstance(package, Path) else package
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


class CountingSource(LogSource):
    """A source without a local path (so read like a remote one) that counts the bytes read."""

    def __init__(self, inner: LogSource) -> None:
        self.inner = inner
        self.bytes_read: dict[str, int] = defaultdict(int)

    def list_files(self) -> list[LogFile]:
        return self.inner.list_files()

    def read(self, name: str, offset: int, size: int) -> bytes:
        data = self.inner.read(name, offset, size)
        self.bytes_read[name] += len(data)
        return data

    def check(self) -> None:
        self.inner.check()


def spec_for(
    kind: LogKind, begin_ms: int | None = None, end_ms: int | None = None, **extra: object
) -> PackageSpec:
    window = TimeWindow(
        None if begin_ms is None else begin_ms / 1000, None if end_ms is None else end_ms / 1000
    )
    return PackageSpec(
        id="pkg-1", name="night", kind=ResourceKind.PGSQL, resource_id="upgsql-1",
        node_id=None, log_type=kind, window=window, **extra,  # type: ignore[arg-type]
    )


def pack(
    source: LogSource, spec: PackageSpec, fmt: FormatConfig = PG_STDERR, **options: object
) -> tuple[PackageResult, dict[str, bytes], bytes]:
    out = io.BytesIO()
    result = pipeline.run(spec, source, fmt, out, **options)  # type: ignore[arg-type]
    data = out.getvalue()
    return result, members(data), data


def two_logs_in_pieces(directory: Path, monkeypatch: MonkeyPatch) -> dict[str, list[Entry]]:
    """Two logs written to `directory`, with pieces small enough that each is split between
    worker processes (each file's member is then made of its own pieces); their entries."""
    logs = {
        "big.log": mixed(BASE_MS, 20_000, step_ms=50),
        "later.log": mixed(BASE_MS + 1_000_000, 8_000, step_ms=50),
    }
    for name, entries in logs.items():
        write_log(directory / name, entries)
    monkeypatch.setattr(planning, "PARALLEL_MIN", 256 * 1024)
    monkeypatch.setattr(planning, "PIECE", 200 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 64 * 1024)
    return logs
