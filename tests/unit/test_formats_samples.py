"""Every documented log variant in tests/logs/ is read as tests/logs/expected.json says."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dblogpack.errors import FormatError
from dblogpack.formats import build, detect
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

LOGS = Path(__file__).parent.parent / "logs"
EXPECTED: dict[str, dict[str, Any]] = json.loads((LOGS / "expected.json").read_text())
SAMPLES = sorted(EXPECTED)


def config_of(sample: str) -> FormatConfig:
    return FormatConfig(**EXPECTED[sample]["config"])


def line_starts(data: bytes) -> list[int]:
    starts = [0]
    at = data.find(b"\n")
    while at >= 0:
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def byte_range(data: bytes, first_line: int, last_line: int) -> tuple[int, int]:
    starts = line_starts(data)
    end = starts[last_line] if last_line < len(starts) else len(data)
    return starts[first_line - 1], end


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for start, end in ranges:
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def expected_spans(sample: str, kind: str) -> list[tuple[int, int]]:
    data = (LOGS / sample).read_bytes()
    return merged([byte_range(data, a, b) for a, b in EXPECTED[sample][kind]])


def test_every_sample_file_has_expectations() -> None:
    on_disk = {p.name for p in LOGS.iterdir() if p.suffix in (".log", ".csv", ".json")}
    assert on_disk - {"expected.json"} == set(SAMPLES)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("kind", ["slow", "error", "all"])
def test_scan_selects_exactly_the_expected_entries(sample: str, kind: str) -> None:
    data = (LOGS / sample).read_bytes()
    fmt = build(config_of(sample))
    result = fmt.scan(data, Query(TimeWindow(), LogKind(kind)), sample, 0)
    assert result.spans == expected_spans(sample, kind)
    assert result.entries == len(EXPECTED[sample][kind])


@pytest.mark.parametrize("sample", SAMPLES)
def test_unparseable_lines_are_warnings_with_their_offsets(sample: str) -> None:
    data = (LOGS / sample).read_bytes()
    starts = line_starts(data)
    result = build(config_of(sample)).scan(data, Query(TimeWindow(), LogKind.ALL), sample, 100)
    assert [w.offset - 100 for w in result.warnings] == [
        starts[line - 1] for line in EXPECTED[sample]["unparseable_lines"]
    ]
    assert all(w.kind == "unparseable" and w.file == sample for w in result.warnings)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if EXPECTED[s]["first_ts"]])
def test_first_entry_time_is_read_in_the_configured_zone(sample: str) -> None:
    data = (LOGS / sample).read_bytes()
    found = build(config_of(sample)).next_entry(data, 0)
    assert found is not None
    wanted = datetime.fromisoformat(EXPECTED[sample]["first_ts"]).timestamp()
    assert found[1] == pytest.approx(wanted)


@pytest.mark.parametrize("sample", SAMPLES)
def test_content_detection_names_the_format(sample: str) -> None:
    head = (LOGS / sample).read_bytes()[:65536]
    wanted = EXPECTED[sample]["detected"]
    if wanted is None:
        with pytest.raises(FormatError):
            detect(head, FormatConfig("auto"))
        return
    detected = detect(head, FormatConfig("auto", timezone="Asia/Tokyo"))
    assert detected.name == wanted["name"]
    assert detected.log_line_prefix == wanted.get("log_line_prefix")
    assert detected.timezone == "Asia/Tokyo"  # detection never touches the zone


@pytest.mark.parametrize("sample", SAMPLES)
def test_last_timestamp_is_the_last_entrys(sample: str) -> None:
    data = (LOGS / sample).read_bytes()
    fmt = build(config_of(sample))
    last_start = byte_range(data, *EXPECTED[sample]["all"][-1])[0]
    found = fmt.next_entry(data, last_start)
    assert found is not None and found[0] == last_start
    assert fmt.last_timestamp(data) == found[1]
    assert fmt.last_timestamp(data[:last_start]) is not None
