"""Slow lines found through learnt shapes are those every line judged alone gives: same bounds,
durations, summary keys and dates, whatever varies between lines of one shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.formats.mongo_slow_lines import Lines, SlowLines


class AloneLines(SlowLines):
    """The reference: no shape is ever learnt, so every line is judged alone."""

    def _learn(self, *args: object) -> None:
        pass


def found(finder: SlowLines, data: bytes, least: float, keyed: bool) -> Lines:
    return finder.find(data, 0, len(data), least, keyed)


def assert_alike(data: bytes, least: float = 0.0) -> None:
    for keyed in (True, False):
        shaped = SlowLines()
        found(shaped, data, least, keyed)  # learns the shapes
        assert found(shaped, data, least, keyed) == found(AloneLines(), data, least, keyed)


_dates = st.builds(
    '"2024-05-01T{:02d}:{}{}:{}{}{}{}"'.format,
    st.integers(0, 23), st.sampled_from("0569"), st.integers(0, 9), st.sampled_from("0569"),
    st.integers(0, 9), st.sampled_from(["", ".5", ".123", ".1234"]),
    st.sampled_from(["+00:00", "Z", "+0800", "-05:30"]),
) | st.just('{"$numberLong":"1714564800123"}')
_severities = st.sampled_from(["I", "W", "D1", "D2"])
_contexts = st.sampled_from(["conn1", "conn12", "conn12345", 'co\\"nn'])
_commands = st.sampled_from([
    '{"find":"orders","filter":{"a":1}}', '{"find":"orders","filter":{"a":22}}',
    '{"find":"o\\\\1","filter":{"a":1}}', '{"find":"orders","filter":{"a":"\x00"}}',
    '{"find":"orders","n":"\\"id\\":51803,"}',
])
_tails = st.sampled_from([
    '"planSummary":"COLLSCAN","durationMillis":{ms}}}',
    '"planSummary":"COLLSCAN","durationMillis":{ms}.5}}',
    '"planSummary":"COLLSCAN","durationMillis":{ms},"truncated":{{"n":1}}}}',
    '"planSummary":"COLLSCAN","ok":0,"code":11000,"durationMillis":{ms}}}',
    '"planSummary":"COL\\\\SCAN","durationMillis":{ms}}}',
    '"planSummary":"COLLSCAN","durationMillis":"slow"}}',
    '"planSummary":"COLLSCAN","durationMillis":{ms}}} ',
    '"durationMillis":{ms}}}',
])


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    tail = draw(_tails).format(ms=draw(st.integers(0, 999)))
    attr = f'{{"type":"command","ns":"shop.orders","command":{draw(_commands)},{tail}'
    line = (
        f'{{"t":{{"$date":{draw(_dates)}}},"s":"{draw(_severities)}",  "c":"COMMAND",  '
        f'"id":{draw(st.sampled_from([51803, 51801]))},   "ctx":"{draw(_contexts)}",'
        f'"msg":"Slow query","attr":{attr}}}'
    )
    return line.encode() + b"\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=30), st.booleans(), st.sampled_from([0.0, 500.0]))
def test_lines_of_learnt_shapes_are_those_judged_alone(
    lines: list[bytes], cut_short: bool, least: float
) -> None:
    data = b"".join(lines)
    assert_alike(data[:-1] if cut_short else data, least)


def test_a_shape_learnt_from_one_line_serves_the_lines_alike_but_for_digits() -> None:
    lines = [
        b'{"t":{"$date":"2024-05-01T12:%02d:%02d.%03d+00:00"},"s":"I",  "c":"COMMAND",  '
        b'"id":51803,   "ctx":"conn%d","msg":"Slow query","attr":{"type":"command",'
        b'"command":{"find":"orders","filter":{"a":%d}},"planSummary":"COLLSCAN",'
        b'"durationMillis":%d}}\n' % (n % 60, n % 47, n, n % 10, n, 100 + n)
        for n in range(100, 300)
    ]
    data = b"".join(lines)
    shaped = SlowLines()
    assert_alike(data)
    first = found(shaped, data, 0.0, True)
    assert len(first.starts) == 200 and len(set(first.keys)) == 1
    assert len(shaped._shapes) == 1


def test_lines_of_a_learnt_shape_with_minutes_or_seconds_past_59_are_not_slow_entries() -> None:
    data = b"".join(
        b'{"t":{"$date":"2024-05-01T12:%02d:%02d.000Z"},"s":"I",  "c":"COMMAND",  "id":51803,'
        b'   "ctx":"conn1","msg":"Slow query","attr":{"command":{"find":"o"},'
        b'"planSummary":"COLLSCAN","durationMillis":150}}\n' % times
        for times in ((10, 10), (61, 10), (10, 61), (59, 59), (99, 0), (10, 70))
    )
    assert_alike(data)
    assert len(found(SlowLines(), data, 0.0, True).starts) == 2


def _slow_line(component: str, ms: int = 150) -> bytes:
    return (
        b'{"t":{"$date":"2024-05-01T12:00:01.000Z"},"s":"I","c":"%s","id":51803,"ctx":"conn1",'
        b'"msg":"Slow query","attr":{"command":{"find":"o"},"planSummary":"COLLSCAN",'
        b'"durationMillis":%d}}\n' % (component.encode(), ms)
    )


def test_a_line_start_guessed_from_the_last_shape_is_checked_by_the_shape() -> None:
    # The padded component puts the id 8 bytes further than the short one: the start guessed
    # for a short line after a padded one (from the padded one's id offset) lies 8 bytes before
    # its own, just after the newline of an 8-byte line, so it is a line start, but not this
    # line's: no shape holds the newline in between, and the line is judged from its own start.
    padded, short = _slow_line("COMMAND  ", 120), _slow_line("C", 130)
    assert short.find(b'"id"') == padded.find(b'"id"') - 8
    data = padded + padded + b"garbage\n" + short + short + padded + b"garbage\n" + short
    assert_alike(data)
    found_lines = found(SlowLines(), data, 0.0, True)
    assert found_lines.durations == [120.0, 120.0, 130.0, 130.0, 120.0, 130.0]
