"""The batched mongo-json slow-query scan, and error entries grouped by key, select and summarise
exactly what the generic per-entry scan does: same spans, counts, times and summary, whatever the
lines hold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.engine_logs import scan_told

from dblogpack import summary
from dblogpack.formats.base import ScanResult
from dblogpack.formats.mongo_json import MongoJsonFormat
from dblogpack.formats.mongo_slow import _add_spans
from dblogpack.formats.scanner import EntryScanner
from dblogpack.formats.timestamps import IsoSecondsCache, _iso_seconds
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow
from dblogpack.synth import Plan, build, generate

LOGS = Path(__file__).resolve().parents[1] / "logs"
START = 1714564800.0  # 2024-05-01T12:00:00Z


class PerEntryFormat(MongoJsonFormat):
    """The reference: every candidate judged and parsed on its own by the generic loop."""

    def _scan_kind(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        EntryScanner._scan_kind(self, buf, first, query, result)

    def _error_key(self, buf: bytes, head: re.Match[bytes], end: int) -> bytes | None:
        return None


def scanned(fmt: MongoJsonFormat, data: bytes, query: Query) -> dict[str, Any]:
    result = fmt.scan(data, query, "mongod.log", 0)
    return {**scan_told(result, "mongo", top=1000), "warnings": result.warnings}


def assert_alike(
    data: bytes,
    window: TimeWindow | None = None,
    least: float | None = None,
    kind: LogKind = LogKind.SLOW,
) -> None:
    query = Query(window or TimeWindow(), kind, least, details=True)
    fast = scanned(MongoJsonFormat(FormatConfig("mongo-json")), data, query)
    reference = scanned(PerEntryFormat(FormatConfig("mongo-json")), data, query)
    assert fast == reference


def slow_line(
    command: str,
    *,
    date: str = '"2024-05-01T12:00:01.000+00:00"',
    severity: str = "I",
    ns: str = "shop.orders",
    tail: str = '"planSummary":"COLLSCAN","durationMillis":153',
) -> bytes:
    attr = f'{{"type":"command","ns":"{ns}","command":{command},{tail}}}'
    return (
        f'{{"t":{{"$date":{date}}},"s":"{severity}",  "c":"COMMAND",  "id":51803,   '
        f'"ctx":"conn1","msg":"Slow query","attr":{attr}}}\n'
    ).encode()


def test_the_hand_written_samples_are_selected_and_summarised_alike() -> None:
    data = (LOGS / "mongo44.json").read_bytes()
    assert_alike(data)
    assert_alike(data, TimeWindow(START + 1, START + 4))
    assert_alike(data, least=1000)
    assert_alike(data, kind=LogKind.ERROR)


def test_generated_logs_in_every_time_style_are_selected_and_summarised_alike(
    tmp_path: Path,
) -> None:
    for seed, style, zone in ((1, "iso-local", "Asia/Shanghai"), (2, "iso-utc", None),
                              (3, "number-long", None)):
        fmt = build("mongo-json", timezone=zone, style=style)
        plan = Plan(start=START, end=START + 3600, size=400_000, seed=seed, disorder_ms=5,
                    rotate_bytes=10_000_000)
        path = tmp_path / f"{style}.log"
        generate(fmt, path, plan)
        data = path.read_bytes()
        assert_alike(data)
        assert_alike(data, TimeWindow(START + 600.5, START + 1800.25))
        assert_alike(data, TimeWindow(START + 1799, START + 1800))
        assert_alike(data, least=400)
        assert_alike(data, kind=LogKind.ERROR)
        assert_alike(data, TimeWindow(START + 600.5, START + 1800.25), kind=LogKind.ERROR)


def test_lines_that_cannot_share_a_key_are_summarised_one_by_one() -> None:
    cases = [
        slow_line('{"find":"orders","filter":{"a":1}}'),
        slow_line('{"find":"orders","filter":{"a":2}}'),  # same key as the first
        slow_line('{"find":"orders2","filter":{"a":1}}'),  # digits in the collection (a key
        slow_line('{"find":"orders3","filter":{"a":1}}'),  # is learnt from its second line
        slow_line('{"find":"orders4","filter":{"a":1}}'),  # and used from its third)
        slow_line('{"find":"orders","filter":{"a1":1}}'),  # digits in a key
        slow_line('{"find":"orders","filter":{"a2":1}}'),
        slow_line('{"find":"orders","filter":{"a3":1}}'),
        slow_line('{"find":"orders","filter":{"a":"x\\"y"}}'),  # an escape
        slow_line('{"find":"orders","filter":{"a":1.5}}'),  # a fraction
        slow_line('{"find":"orders","filter":{"a":2.5}}'),
        slow_line('{"find":"orders","filter":{"a":1e3}}'),
        slow_line('{"find":"orders","filter":{"a":1}}', tail='"code":11000,"durationMillis":9'),
        slow_line(
            '{"find":"orders","filter":{"a":1}}',
            tail='"planSummary":"X","error":{"code":2},"durationMillis":9',
        ),
        slow_line('{"find":"orders"}', tail='"durationMillis":12'),  # no planSummary
        slow_line('{"find":"orders","planSummary":{"a":1}}'),  # the cut inside the command
        slow_line('{"find":"orders","planSummary":{"a":2}}'),
        slow_line('"find orders"'),  # a command that is not an object
        slow_line('{"find":"orders","x":[1,{"b":2}]}', severity="W"),
        slow_line('{"find":"orders","x":[1,{"b":2}]}', severity="I"),
        slow_line('{"find":"orders"}', date='{"$numberLong":"1714564803000"}'),
        slow_line('{"find":"orders"}', date='"2024-05-01T20:00:02.000+0800"'),
        slow_line('{"find":"orders"}', date='"2024-05-01T12:00:02Z"'),
        slow_line('{"find":"orders"}', date='"2024-13-01T12:00:02Z"'),  # not a time
        slow_line('{"find":"orders"}', tail='"planSummary":"X","durationMillis":"slow"'),
        slow_line('{"find":"orders"}', ns="db\\u0031.c"),
        slow_line('{"find":"orders","n":123456789012345678901234}'),
        slow_line('{"find":"orders","n":1}')[:-3] + b"\n",  # cut short
        slow_line('{"find":"orders","n":1}').replace(b"Slow query", b"Slow \xff\xfequery"),
        slow_line('{"find":"orders","n":2}', tail='"planSummary":"\xe9","durationMillis":5'),
        slow_line('{"find":"orders","n":3}').replace(b"COLLSCAN", b"COLL\xe9SCAN"),
        b'{"t":{"$date":"2024-05-01T12:00:05.000+00:00"},"s":"I",  "c":"COMMAND",  "id":20883,'
        b'   "ctx":"conn3","msg":"x","attr":{"doc":{"id":51803,"s":"E"},"durationMillis":5}}\n',
    ]
    data = b"".join(cases)
    assert_alike(data)
    assert_alike(data, least=100)


def test_lines_alike_but_for_their_digits_are_summarised_from_one_parse() -> None:
    data = b"".join(
        slow_line(f'{{"find":"orders","filter":{{"a":{n},"b":"x{n}"}},"lsid":{{"id":"{n}"}}}}',
                  tail=f'"planSummary":"COLLSCAN","durationMillis":{n * 7}')
        for n in range(100, 400)
    )
    query = Query(TimeWindow(), LogKind.SLOW, None, details=True)
    result = MongoJsonFormat(FormatConfig("mongo-json")).scan(data, query, "mongod.log", 0)
    # Met once, a key is parsed alone; from its second line on, its lines share a group.
    assert [group.count for group in result.details] == [1, 299]
    assert_alike(data)


def test_lines_alike_but_for_how_many_digits_their_numbers_have_share_a_group() -> None:
    numbers = [7, 12, 345, 6789, 12, 7, 0, 98765]
    data = b"".join(
        slow_line(f'{{"find":"orders","filter":{{"a":{n},"b":"x{n}","c":[{n},1]}}}}',
                  tail=f'"planSummary":"COLLSCAN","durationMillis":{n % 1000}')
        for n in numbers
    ) + slow_line('{"find":"orders","filter":{"a":1234567890123456789012,"b":"x","c":[1,1]}}')
    query = Query(TimeWindow(), LogKind.SLOW, None, details=True)
    result = MongoJsonFormat(FormatConfig("mongo-json")).scan(data, query, "mongod.log", 0)
    # Each key is met once before it is learnt (7, 12, 345, 6789); then the learnt ones share
    # one group; a number past 64 bits is never learnt.
    assert [group.count for group in result.details] == [1, 1, 1, 1, 3, 1, 1]
    assert_alike(data)


_keys = st.text(alphabet="abcXY$_.019", min_size=0, max_size=4)
_scalars = st.one_of(
    st.integers(10, 99), st.text(alphabet="ab01\"\\ ", max_size=4), st.booleans(), st.none()
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)
    ),
    max_leaves=8,
)
_commands = st.dictionaries(
    st.sampled_from(["find", "aggregate", "update", "q", "lsid", "$db", "a1"]),
    st.one_of(st.sampled_from(["orders", "o1", "x"]), _values),
    min_size=1,
    max_size=4,
)


def _other_numbers(value: Any, draw: st.DrawFn) -> Any:
    """`value` with each of its two-digit integers drawn anew: the same masked text."""
    if isinstance(value, dict):
        return {k: _other_numbers(v, draw) for k, v in value.items()}
    if isinstance(value, list):
        return [_other_numbers(v, draw) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and 10 <= value <= 99:
        return draw(st.integers(10, 99))
    return value


def _other_lengths(value: Any, draw: st.DrawFn) -> Any:
    """`value` with each of its integers drawn anew, of any length: alike but for digit runs."""
    if isinstance(value, dict):
        return {k: _other_lengths(v, draw) for k, v in value.items()}
    if isinstance(value, list):
        return [_other_lengths(v, draw) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return draw(st.integers(0, 10**12))
    return value


@st.composite
def _entries(draw: st.DrawFn) -> list[tuple[dict[str, Any], int]]:
    """Commands, some of them repeated with other numbers (so that they share a key)."""
    templates = draw(st.lists(_commands, min_size=1, max_size=4))
    picks = draw(st.lists(st.sampled_from(templates), min_size=1, max_size=12))
    return [(_other_numbers(c, draw), draw(st.integers(0, 5000))) for c in picks]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries())
def test_any_commands_are_summarised_as_the_per_entry_scan_does(
    entries: list[tuple[dict[str, Any], int]],
) -> None:
    data = b"".join(
        slow_line(
            json.dumps(command, separators=(",", ":")),
            tail=f'"planSummary":"COLLSCAN","durationMillis":{ms}',
        )
        for command, ms in entries
    )
    assert_alike(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_commands_alike_but_for_digit_runs_are_summarised_as_the_per_entry_scan_does(
    data: st.DataObject,
) -> None:
    templates = data.draw(st.lists(_commands, min_size=1, max_size=3))
    picks = data.draw(st.lists(st.sampled_from(templates), min_size=1, max_size=12))
    log = b"".join(
        slow_line(
            json.dumps(_other_lengths(command, data.draw), separators=(",", ":")),
            tail=f'"planSummary":"COLLSCAN","durationMillis":{data.draw(st.integers(0, 5000))}',
        )
        for command in picks
    )
    assert_alike(log)


# Alike but for digits, yet shaped apart (digits in names), or not JSON at all (leading zeros).
_ODD_COMMANDS = ['{"find":"o1"}', '{"find":"o2"}', '{"a1":1}', '{"a2":1}', '{"a":01}', '{"a":10}',
                 '{"a":-01}', "{}"]


@settings(max_examples=200, deadline=None)
@given(_entries(), st.lists(st.sampled_from(_ODD_COMMANDS)))
def test_remembered_shapes_are_the_shapes_a_fresh_parse_gives(
    entries: list[tuple[dict[str, Any], int]], odd: list[str]
) -> None:
    texts = [json.dumps(command, separators=(",", ":")) for command, _ in entries] + odd
    fresh = []
    for text in texts:
        summary._MONGO_SHAPES.clear()
        fresh.append(summary.fingerprint_mongo.__wrapped__(text))
    summary._MONGO_SHAPES.clear()
    assert [summary.fingerprint_mongo.__wrapped__(text) for text in texts] == fresh


_stamps = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format,
    st.sampled_from([1, 1970, 2024, 9999]), st.integers(0, 13), st.integers(0, 32),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61),
)
_offsets = st.sampled_from(
    ["Z", "+00:00", "+08:00", "-05:30", "+0800", "+08", "", "+25:00", "+05:30:15", "+05:30:15.5"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_stamps, _offsets), min_size=1, max_size=20))
def test_iso_seconds_from_the_hour_cache_are_those_of_a_full_parse(
    times: list[tuple[str, str]],
) -> None:
    cache = IsoSecondsCache()
    for stamp, offset in times:
        try:
            want: int | None = _iso_seconds((stamp + offset).encode())
        except ValueError:
            want = None
        try:
            got: int | None = cache.seconds(stamp.encode(), offset.encode())
        except ValueError:
            got = None
        assert got == want, (stamp, offset)


def error_line(attr: str, severity: str = "E", msg: str = "failed") -> bytes:
    head = '{"t":{"$date":"2024-05-01T12:00:01.000+00:00"},"s":"' + severity
    line = f'{head}",  "c":"WRITE",    "id":23798,   "ctx":"conn1","msg":"{msg}","attr":{attr}}}'
    return line.encode() + b"\n"


def test_error_lines_are_grouped_only_when_their_codes_are_alike() -> None:
    cases = [
        error_line('{"error":{"code":11000,"errmsg":"dup key: { _id: 1 }"}}'),
        error_line('{"error":{"code":11000,"errmsg":"dup key: { _id: 2 }"}}'),
        error_line('{"error":{"code":11000,"errmsg":"dup key: { _id: 4 }"}}'),
        error_line('{"error":{"code":11000,"errmsg":"dup key: { _id: 3 }"}}', msg="other"),
        error_line('{"error":{"code":11001,"errmsg":"dup key: { _id: 1 }"}}'),
        error_line('{"error":{"code":11000,"errmsg":"dup key: { _id: 1 }"}}', severity="W"),
        error_line('{"x":{"code":5},"code":5}'),  # two codes that agree (a key is learnt
        error_line('{"x":{"code":5},"code":5}'),  # from its second line)...
        error_line('{"x":{"code":5},"code":7}'),  # ...and not here
        error_line('{"error":{"code":"E5"}}'),
        error_line('{"error":{"code":"E6"}}'),
        error_line('{"error":"lock timeout 5"}'),
        error_line('{"error":"lock timeout 6"}', msg="m2"),
        error_line('{"\\u0064ode":1}'),  # "dode"...
        error_line('{"\\u0064ode":1}'),
        error_line('{"\\u0063ode":1}'),  # ..."code", spelt with an escape
        error_line('{"error":{"code":11000}'),  # not JSON
        error_line('{"error":{"code":12000}'),
        error_line('{"error":{"code":-3}}', severity="F"),
    ]
    data = b"".join(cases)
    assert_alike(data, kind=LogKind.ERROR)
    query = Query(TimeWindow(), LogKind.ERROR, None, details=True)
    result = MongoJsonFormat(FormatConfig("mongo-json")).scan(data, query, "mongod.log", 0)
    # Met once, a key is parsed alone; from its second line on, its lines share a group.
    assert [group.count for group in result.details[:2]] == [1, 2]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), max_size=12),
    st.sampled_from([[], [(0, 1)], [(0, 2)]]),
)
def test_lines_spans_merge_as_one_by_one(gaps: list[tuple[int, int]], before: list[Any]) -> None:
    # Lines at increasing offsets, each `gap` bytes after the last (0: it continues it).
    starts, ends, at = [], [], 2
    for gap, size in gaps:
        starts.append(at + gap)
        ends.append(at + gap + size)
        at = ends[-1]
    expected = list(before)
    for start, end in zip(starts, ends, strict=True):
        if expected and expected[-1][1] == start:
            expected[-1] = (expected[-1][0], end)
        else:
            expected.append((start, end))
    spans = list(before)
    _add_spans(spans, starts, ends)
    assert spans == expected
