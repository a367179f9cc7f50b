"""MongoDB packages hold exactly the entries the documented rules select, in both log formats.

Generated logs (several seeds and time formats, rotated files, threads a few ms out of order)
are packed by the real engine from a directory source; the expected members are computed from
the generator's record alone, byte for byte.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from dblogpack import pipeline
from dblogpack.model import FormatConfig, LogKind, PackageSpec, ResourceKind, TimeWindow
from dblogpack.sources.local import DirSource
from dblogpack.synth import (
    Plan,
    RecordedEntry,
    build,
    entries,
    expected_spans,
    generate,
    read_spans,
)
from dblogpack.synth.generate import GenerateResult

START = 1714564800.0  # 2024-05-01T12:00:00Z
SPAN = 2 * 3600.0


@dataclass(frozen=True)
class Variant:
    label: str
    format: str
    style: str
    timezone: str | None
    seed: int
    config: FormatConfig


VARIANTS = [
    Variant(
        "json-local-shanghai", "mongo-json", "iso-local", "Asia/Shanghai", 1, FormatConfig("auto")
    ),
    Variant("json-utc", "mongo-json", "iso-utc", None, 2, FormatConfig("auto")),
    Variant("json-numberlong", "mongo-json", "number-long", None, 3, FormatConfig("mongo-json")),
    Variant(
        "legacy-local-paris",
        "mongo-legacy",
        "iso8601-local",
        "Europe/Paris",
        4,
        FormatConfig("auto"),
    ),
    Variant("legacy-utc", "mongo-legacy", "iso8601-utc", None, 5, FormatConfig("auto")),
    Variant(
        "legacy-ctime",
        "mongo-legacy",
        "ctime",
        "UTC",
        6,
        FormatConfig("mongo-legacy", timezone="UTC"),
    ),
]


@dataclass
class Node:
    """A node's log directory with what the generator wrote into it."""

    directory: Path
    result: GenerateResult
    config: FormatConfig

    @property
    def recorded(self) -> list[RecordedEntry]:
        return list(entries(self.result.record.files, self.result.record.blocks()))


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.label)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Node:
    variant: Variant = request.param
    directory = tmp_path_factory.mktemp(variant.label)
    plan = Plan(
        start=START,
        end=START + SPAN,
        size=3_000_000,
        seed=variant.seed,
        disorder_ms=5,
        rotate_bytes=1_000_000,
    )
    fmt = build(variant.format, timezone=variant.timezone, style=variant.style)
    return Node(directory, generate(fmt, directory / "mongod.log", plan), variant.config)


def pack(
    source: DirSource, config: FormatConfig, window: TimeWindow, kind: LogKind,
    min_duration: float | None = None, name: str = "test",
) -> bytes:
    """The archive the pipeline builds from `source` (closed afterwards)."""
    spec = PackageSpec(
        id="pkg-1",
        name=name,
        kind=ResourceKind.MONGODB,
        resource_id="cluster-1",
        node_id="node-1",
        log_type=kind,
        window=window,
        min_duration_ms=min_duration,
    )
    out = io.BytesIO()
    with source:
        pipeline.run(spec, source, config, out, workers=1)
    return out.getvalue()


def package(
    node: Node, window: TimeWindow, kind: LogKind, min_duration: float | None = None
) -> bytes:
    return pack(DirSource(node.directory, "mongod.log*"), node.config, window, kind, min_duration)


def members(archive: bytes) -> tuple[dict[str, bytes], dict[str, object]]:
    logs: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            if member.name.startswith("logs/"):
                logs[member.name.removeprefix("logs/")] = data.read()
            elif member.name == "manifest.json":
                manifest = json.loads(data.read())
    return logs, manifest


def expected(
    node: Node, window: TimeWindow, kind: LogKind, min_duration: float | None = None
) -> dict[str, bytes]:
    record = node.result.record
    spans = expected_spans(record.files, record.blocks(), window, kind, min_duration)
    return {name: b"".join(read_spans(node.directory / name, s)) for name, s in spans.items()}


def assert_exact(
    node: Node, window: TimeWindow, kind: LogKind, min_duration: float | None = None
) -> None:
    logs, manifest = members(package(node, window, kind, min_duration))
    wanted = expected(node, window, kind, min_duration)
    assert sorted(logs) == sorted(wanted)
    for name in wanted:
        assert logs[name] == wanted[name], f"{name}: package bytes differ from the selected entries"
    count = sum(
        1
        for e in node.recorded
        if window.contains(e.ts_ms / 1000)
        and e.is_kind(kind)
        and (min_duration is None or (e.duration_ms or 0) >= min_duration)
    )
    totals = manifest["totals"]
    assert isinstance(totals, dict) and totals["entries"] == count


def interior_windows(node: Node) -> list[TimeWindow]:
    """Windows whose edges fall exactly on entries, inside a file and across a rotation."""
    recorded = node.recorded
    first_of_second_file = next(e for e in recorded if e.file != recorded[0].file)
    third = recorded[len(recorded) // 3].ts_ms / 1000
    return [
        TimeWindow(third, third + 600),
        TimeWindow(
            first_of_second_file.ts_ms / 1000 - 300, first_of_second_file.ts_ms / 1000 + 300
        ),
        TimeWindow(recorded[10].ts_ms / 1000, recorded[-10].ts_ms / 1000),
    ]


@pytest.mark.parametrize("kind", [LogKind.SLOW, LogKind.ERROR])
class TestExactPackages:
    def test_the_whole_log_is_selected_by_an_unbounded_window(
        self, node: Node, kind: LogKind
    ) -> None:
        assert_exact(node, TimeWindow(), kind)

    def test_windows_inside_files_and_across_rotation_hold_exactly_their_entries(
        self, node: Node, kind: LogKind
    ) -> None:
        for window in interior_windows(node):
            assert_exact(node, window, kind)

    def test_an_entry_at_begin_is_kept_and_one_at_end_is_dropped(
        self, node: Node, kind: LogKind
    ) -> None:
        matching = [e for e in node.recorded if e.is_kind(kind)]
        edge = matching[len(matching) // 2]
        later = next(e for e in matching if e.ts_ms > edge.ts_ms + 1000)
        window = TimeWindow(edge.ts_ms / 1000, later.ts_ms / 1000)
        logs, _ = members(package(node, window, kind))
        packed = b"".join(logs.values())
        source = {name: (node.directory / name).read_bytes() for name in node.result.record.files}
        assert source[edge.file][edge.offset : edge.offset + edge.length] in packed
        assert source[later.file][later.offset : later.offset + later.length] not in packed
        assert_exact(node, window, kind)

    def test_a_window_outside_the_log_gives_an_empty_package(
        self, node: Node, kind: LogKind
    ) -> None:
        logs, manifest = members(package(node, TimeWindow(START - 7200, START - 3600), kind))
        assert logs == {}
        assert manifest["totals"]["entries"] == 0  # type: ignore[index]


def test_min_duration_raises_the_bar_for_slow_operations(node: Node) -> None:
    assert_exact(node, TimeWindow(), LogKind.SLOW, min_duration=300.0)


SAMPLES = Path(__file__).resolve().parents[1] / "logs"


def sample_cases() -> list[tuple[str, str]]:
    expectations = json.loads((SAMPLES / "expected.json").read_text())
    return [
        (name, kind)
        for name in sorted(expectations)
        if name.startswith("mongo")
        for kind in ("slow", "error")
    ]


@pytest.mark.parametrize(("sample", "kind"), sample_cases())
def test_hand_checked_samples_are_packed_line_for_line(sample: str, kind: str) -> None:
    expectation = json.loads((SAMPLES / "expected.json").read_text())[sample]
    lines = (SAMPLES / sample).read_bytes().splitlines(keepends=True)
    wanted = b"".join(b"".join(lines[first - 1 : last]) for first, last in expectation[kind])
    config = FormatConfig(**expectation["config"])
    archive = pack(DirSource(SAMPLES, sample), config, TimeWindow(), LogKind(kind), name="sample")
    logs, manifest = members(archive)
    assert logs == ({sample: wanted} if wanted else {})
    assert manifest["totals"]["entries"] == len(expectation[kind])  # type: ignore[index]
