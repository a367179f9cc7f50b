"""Any log_line_prefix compiles to one regex that reads every documented escape."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dblogpack.errors import FormatError
from dblogpack.formats.pg_prefix import (
    DEBIAN_PREFIX,
    DEFAULT_PREFIX,
    PGBADGER_PREFIX,
    compile_prefix,
    process_in_place,
    referring_to_process,
)

TS = "2024-05-01 12:00:00.123 UTC"

# escape → (group name, values PostgreSQL may print for it)
ESCAPES = {
    "a": ("application", ["psql", "my app - DB:x", ""]),
    "u": ("user", ["app", "[unknown]", ""]),
    "d": ("database", ["shop", ""]),
    "r": ("remote", ["10.0.0.5(52344)", "[local]", ""]),
    "h": ("host", ["10.0.0.5", "[local]"]),
    "b": ("backend_type", ["client backend", "autovacuum worker"]),
    "p": ("pid", ["123", "4194304"]),
    "P": ("leader_pid", ["", "456"]),
    "t": ("ts_t", ["2024-05-01 12:00:00 CEST"]),
    "n": ("ts_n", ["1714564800.123"]),
    "i": ("command_tag", ["SELECT", "idle in transaction", ""]),
    "e": ("sqlstate", ["42P01", "00000"]),
    "c": ("session", ["6630a5c0.7b", "1.0"]),
    "l": ("line", ["1", "17"]),
    "s": ("session_start", ["2024-05-01 11:00:00 UTC"]),
    "v": ("vxid", ["3/7", ""]),
    "x": ("xid", ["0", "733"]),
    "Q": ("query_id", ["-1234567890123", "0"]),
}


@pytest.mark.parametrize(
    ("escape", "value"),
    [(escape, value) for escape, (_, values) in ESCAPES.items() for value in values],
)
def test_each_escape_is_read_into_its_named_group(escape: str, value: str) -> None:
    compiled = compile_prefix(f"%m [%{escape}] ")
    line = f"{TS} [{value}] LOG:  hello".encode()
    head = compiled.line.match(line)
    assert head is not None
    assert head[ESCAPES[escape][0]] == value.encode()
    assert head["level"] == b"LOG"
    assert head["ts_m"] == TS.encode()


def test_percent_percent_is_a_literal_percent() -> None:
    head = compile_prefix("%m 100%% ").line.match(f"{TS} 100% ERROR:  x".encode())
    assert head is not None and head["level"] == b"ERROR"


def test_unknown_escapes_print_nothing() -> None:
    assert compile_prefix("%m %Z[%p] ").line.match(f"{TS} [1] LOG:  x".encode()) is not None


@pytest.mark.parametrize(
    ("prefix", "rendered", "group", "value"),
    [
        ("%m %-10u|", f"{TS} app       |", "user", "app"),
        ("%m %10u|", f"{TS}        app|", "user", "app"),
        ("%m [%5p] ", f"{TS} [  123] ", "pid", "123"),
        ("%m [%-5p] ", f"{TS} [123  ] ", "pid", "123"),
    ],
)
def test_padding_is_read_on_the_side_postgresql_puts_it(
    prefix: str, rendered: str, group: str, value: str
) -> None:
    head = compile_prefix(prefix).line.match(f"{rendered}LOG:  x".encode())
    assert head is not None and head[group] == value.encode()


def test_after_q_the_rest_is_optional_for_non_session_processes() -> None:
    line = compile_prefix("%m [%p] %q%u@%d ").line
    session = line.match(f"{TS} [12] app@shop LOG:  duration: 1.0 ms".encode())
    background = line.match(f"{TS} [13] LOG:  checkpoint starting: time".encode())
    assert session is not None and session["user"] == b"app" and session["database"] == b"shop"
    assert background is not None and background["user"] is None


def test_an_at_sign_in_a_background_message_is_not_taken_for_user_at_database() -> None:
    line = compile_prefix("%m [%p] %q%u@%d ").line
    head = line.match(f"{TS} [13] LOG:  mail me@example.com WARNING:  not a level".encode())
    assert head is not None and head["level"] == b"LOG"


def test_the_most_precise_timestamp_is_the_entrys_time() -> None:
    assert compile_prefix("%t %m ").timestamp_group == "ts_m"
    assert compile_prefix("%t [%p] ").timestamp_group == "ts_t"
    assert compile_prefix("%n [%p] ").timestamp_group == "ts_n"


def test_same_process_means_pid_else_session() -> None:
    assert compile_prefix("%m [%p] %c ").process_group == "pid"
    assert compile_prefix("%m %c ").process_group == "session"
    assert compile_prefix("%m ").process_group is None


def test_a_prefix_without_a_timestamp_is_refused_with_what_to_add() -> None:
    with pytest.raises(FormatError, match="%m"):
        compile_prefix("[%p] %u@%d ")


FIELD_VALUES = {
    "u": st.from_regex(r"[a-z_]{0,8}", fullmatch=True),
    "d": st.from_regex(r"[a-z_]{0,8}", fullmatch=True),
    "a": st.from_regex(r"[A-Za-z ._-]{0,12}", fullmatch=True),
    "p": st.integers(1, 4_000_000).map(str),
    "l": st.integers(1, 99999).map(str),
    "x": st.integers(0, 10**9).map(str),
    "e": st.sampled_from(["00000", "42P01", "23505", "57014"]),
    "c": st.builds("{:x}.{:x}".format, st.integers(1, 2**31), st.integers(1, 2**22)),
    "i": st.sampled_from(["SELECT", "idle", "idle in transaction", "authentication", ""]),
}
SEPARATORS = st.sampled_from([" ", "[", "] ", ",", "=", "@", ":", "-", "|", "user=", " db="])


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.tuples(st.sampled_from(sorted(FIELD_VALUES)), SEPARATORS), max_size=6),
    data=st.data(),
)
def test_random_prefixes_read_back_the_time_and_the_level(
    parts: list[tuple[str, str]], data: st.DataObject
) -> None:
    prefix, rendered = "%m ", f"{TS} "
    for escape, separator in parts:
        prefix += f"%{escape}{separator}"
        rendered += data.draw(FIELD_VALUES[escape]) + separator
    head = compile_prefix(prefix).line.match(f"{rendered}WARNING:  disk almost full".encode())
    assert head is not None, (prefix, rendered)
    assert head["ts_m"] == TS.encode()
    assert head["level"] == b"WARNING"
    assert head.end() == len(rendered) + len("WARNING:  ")


@pytest.mark.parametrize(
    ("prefix", "in_place"),
    [
        (DEFAULT_PREFIX, True),
        (DEBIAN_PREFIX, True),
        (PGBADGER_PREFIX, True),
        ("%p %m ", True),
        ("%n [%p] ", True),
        ("%m %e %c ", True),
        ("%m ", False),  # no process
        ("%m %q[%p] ", False),  # no process in non-session lines
        ("%a %m [%p] ", False),  # the application name may hold what follows it
        ("%m %u [%p] ", False),
        ("%m [%p%l] ", False),  # which digits are the pid's?
        ("%m [%p1] ", False),
        ("%m [%5p] ", False),
        ("%m%p ", False),  # a zone abbreviation may end in digits
        ("%m [%p]", True),
        ("%m [%p", False),  # only a literal byte after a value is looked at, not the level
    ],
)
def test_the_process_is_in_place_when_each_value_before_it_ends_at_one_place(
    prefix: str, in_place: bool
) -> None:
    assert process_in_place(compile_prefix(prefix)) is in_place


def test_a_process_after_free_text_is_not_in_place_as_a_reference_would_find_another() -> None:
    compiled = compile_prefix("%m %a %p %a ")
    line = f"{TS} x 5 y 6 z WARNING:  w".encode()
    head = compiled.line.match(line)
    assert head is not None and head["pid"] == b"5"  # the first parse
    reference = b"(?P<pid>6)\n(?>" + referring_to_process(compiled.line.pattern, compiled) + b")"
    assert re.match(reference, b"6\n" + line) is not None  # another parse reads 6
    assert not process_in_place(compiled)


TRICKY_VALUES = st.sampled_from(["1", "1 1", "1 2", "2] [1", "1,2", "1 db=1", "a.1", "1@2 "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    parts=st.lists(st.tuples(st.sampled_from(sorted(FIELD_VALUES)), SEPARATORS), max_size=5),
    process=st.tuples(st.sampled_from(["p", "c"]), SEPARATORS, st.integers(0, 5)),
    data=st.data(),
)
def test_a_process_in_place_matches_by_reference_exactly_where_the_first_parse_reads_it(
    parts: list[tuple[str, str]], process: tuple[str, str, int], data: st.DataObject
) -> None:
    """Property: what lets a follow-up line's process be compared by a backreference: for a
    prefix whose process is in place, a line matches with a given process exactly when its
    first parse reads that process."""
    escape, separator, at = process
    parts.insert(at, (escape, separator))
    prefix, rendered = "%m ", f"{TS} "
    for escape, separator in parts:
        prefix += f"%{escape}{separator}"
        # Values made of what separates others, so that other parses may exist.
        rendered += data.draw(FIELD_VALUES[escape] | TRICKY_VALUES) + separator
    compiled = compile_prefix(prefix)
    assume(compiled.process_group is not None and process_in_place(compiled))
    name = compiled.process_group
    assert name is not None
    line = f"{rendered}WARNING:  disk almost full".encode()
    head = compiled.line.match(line)
    assume(head is not None)
    assert head is not None
    read = head[name]
    # Every text a process value may be, wherever it is in the line.
    for value in set(re.findall(rb"[0-9a-f]+(?:\.[0-9a-f]+)?", line)) | {read}:
        reference = re.compile(
            b"(?P<" + name.encode() + b">" + re.escape(value) + b")\n(?>"
            + referring_to_process(compiled.line.pattern, compiled) + b")"
        )
        matched = reference.match(value + b"\n" + line) is not None
        assert matched is (value == read), (prefix, line, value)
