"""Format and prefix detection from a log's first lines, and the refusal when it cannot tell."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.errors import FormatError
from dblogpack.formats import FORMAT_NAMES, build, detect
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

DEFAULT = b"""2024-05-01 12:00:00.000 UTC [10] LOG:  database system is ready to accept connections
2024-05-01 12:00:01.000 UTC [11] LOG:  duration: 3.000 ms  statement: SELECT 1
"""
DEBIAN = b"""2024-05-01 12:00:00.000 UTC [10] LOG:  database system is ready to accept connections
2024-05-01 12:00:01.000 UTC [11] app@shop LOG:  duration: 3.000 ms  statement: SELECT 1
"""
PGBADGER = b"""2024-05-01 12:00:00 UTC [10]: [1-1] user=,db=,app=,client= LOG:  checkpoint starting
2024-05-01 12:00:01 UTC [11]: [1-1] user=app,db=shop,app=psql,client=10.0.0.5 ERROR:  boom
"""
CUSTOM = b"""time=2024-05-01 12:00:00.000 UTC pid=10 LOG:  checkpoint starting: time
time=2024-05-01 12:00:01.000 UTC pid=11 ERROR:  boom
"""


@pytest.mark.parametrize(
    ("head", "prefix"),
    [
        (DEBIAN, "%m [%p] %q%u@%d "),
        (PGBADGER, "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "),
    ],
)
def test_common_prefixes_are_recognised(head: bytes, prefix: str) -> None:
    assert detect(head, FormatConfig("auto")) == FormatConfig("pg-stderr", prefix)


def test_a_default_prefix_log_gets_a_prefix_that_reads_all_its_entries() -> None:
    # Debian's prefix also reads the default one's lines (its %q part is optional),
    # and a head of background lines cannot tell the two apart.
    config = detect(DEFAULT, FormatConfig("auto"))
    result = build(config).scan(DEFAULT, Query(TimeWindow(), LogKind.ALL), "f", 0)
    assert (result.entries, result.spans) == (2, [(0, len(DEFAULT))])


def test_a_configured_prefix_is_used_as_given() -> None:
    config = FormatConfig("auto", "time=%m pid=%p ", "Europe/Paris")
    assert detect(CUSTOM, config) == FormatConfig("pg-stderr", "time=%m pid=%p ", "Europe/Paris")


def test_an_explicit_format_is_never_second_guessed() -> None:
    config = FormatConfig("mongo-json")
    assert detect(DEFAULT, config) is config


def test_an_unknown_prefix_is_refused_with_what_was_seen_and_what_to_set() -> None:
    with pytest.raises(FormatError) as refusal:
        detect(CUSTOM, FormatConfig("auto"))
    message = refusal.value.message
    assert "time=2024-05-01 12:00:00.000 UTC pid=10 LOG:" in message
    assert "LogFormat" in message and "LogLinePrefix" in message
    assert "%m [%p] " in message  # says which prefixes it tried


def test_a_configured_prefix_that_does_not_fit_is_refused() -> None:
    with pytest.raises(FormatError, match="does not match log_line_prefix '%t %u '"):
        detect(DEFAULT, FormatConfig("auto", "%t %u "))


def test_garbage_is_refused_not_guessed() -> None:
    with pytest.raises(FormatError, match="cannot tell the log format"):
        detect(b"\x00\x01binary\xff\nmore\n", FormatConfig("auto"))


def test_unknown_format_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(FormatError, match="pg-stderr, pg-csv"):
        build(FormatConfig("syslog"))
    with pytest.raises(FormatError, match="detect"):
        build(FormatConfig("auto"))
    assert FORMAT_NAMES[0] == "auto"


def test_an_unknown_time_zone_is_refused_with_what_to_configure() -> None:
    with pytest.raises(FormatError, match="LogTimezone"):
        build(FormatConfig("pg-stderr", "%m ", "Mars/Olympus_Mons"))


@pytest.mark.parametrize("name", FORMAT_NAMES[1:])
def test_formats_are_built_in_any_process_from_a_pickled_config(name: str) -> None:
    config = pickle.loads(pickle.dumps(FormatConfig(name, "%m [%p] ", "Asia/Shanghai")))
    assert build(config).name == name


def test_csvlog_with_long_multi_line_statements_is_still_csv() -> None:
    statement = "\n".join(f"  column_{i}," for i in range(30))
    record = (
        f'2024-05-01 12:00:00.000 UTC,"u","d",1,"[local]",1.1,1,"SELECT",'
        f'2024-05-01 12:00:00 UTC,3/0,0,LOG,00000,"duration: 5.000 ms  statement: SELECT\n'
        f'{statement}\n  1",,,,,,,,,"psql","client backend",,0\n'
    ).encode()
    assert detect(record * 3, FormatConfig("auto")).name == "pg-csv"


# The module, not the function `dblogpack.formats` exports under its name.
detect_module = importlib.import_module("dblogpack.formats.detect")


def _first_lines(path: Path, count: int = 8) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:count]


_LOG_LINES = sorted(
    {line for path in (Path(__file__).parent.parent / "logs").glob("*.*") if path.suffix != ".md"
     and path.name != "expected.json" for line in _first_lines(path)}
    | set(DEFAULT.split(b"\n") + DEBIAN.split(b"\n") + PGBADGER.split(b"\n") + CUSTOM.split(b"\n"))
)


def _detected(head: bytes, config: FormatConfig) -> FormatConfig | str:
    try:
        return detect(head, config)
    except FormatError as exc:
        return exc.message


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.sampled_from(_LOG_LINES), max_size=12),
    prefix=st.sampled_from([None, "%m [%p] ", "%t %u "]),
)
def test_a_log_read_whole_by_a_common_prefix_is_detected_as_without_that_shortcut(
    lines: list[bytes], prefix: str | None
) -> None:
    """Property: trying the common prefixes first (sparing the shapes' compilation) settles every
    head, of any mix of real log lines, as the shapes-then-prefixes detection does."""
    head, config = b"\n".join(lines) + b"\n", FormatConfig("auto", prefix)
    shortcut = _detected(head, config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detect_module, "_common_prefix_of_every_line", lambda _lines: None)
        assert _detected(head, config) == shortcut
