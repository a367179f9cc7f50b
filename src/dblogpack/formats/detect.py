"""Content-based detection: which format a log's head is in, and which `log_line_prefix` it uses.

Only the first lines are looked at. Detection refuses (FormatError) rather
than guess when no known shape fits; the message shows what it saw.
"""

from __future__ import annotations

import re
from functools import cache

from dblogpack.errors import FormatError
from dblogpack.formats.pg_prefix import (
    DEBIAN_PREFIX,
    DEFAULT_PREFIX,
    PGBADGER_PREFIX,
    compile_prefix,
)
from dblogpack.model import FormatConfig

_SAMPLE_LINES = 50

_MONGO_JSON = rb'\{"t":\{"\$date":'
_PG_JSON = rb'\{"timestamp":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'
_PG_CSV = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:]+,"
_MONGO_LEGACY = (
    rb"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
    rb"|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) [A-Z]\d? +\S+ +\["
)


@cache
def _shapes() -> tuple[tuple[str, re.Pattern[bytes]], ...]:
    # Compiled on first use: a `pack` told its format never detects one.
    return tuple(
        (name, re.compile(shape))
        for name, shape in (
            ("mongo-json", _MONGO_JSON),
            ("pg-json", _PG_JSON),
            ("pg-csv", _PG_CSV),
            ("mongo-legacy", _MONGO_LEGACY),
        )
    )

# Most general first: Debian's prefix also reads lines written with the default one.
COMMON_PREFIXES = (DEBIAN_PREFIX, PGBADGER_PREFIX, DEFAULT_PREFIX)


def detect(head: bytes, config: FormatConfig) -> FormatConfig:
    """`config` with its format (and pg-stderr prefix) settled from `head`, a file's first bytes.

    An empty head cannot be told apart and yields pg-stderr with the default
    prefix (there is nothing to frame anyway).
    """
    if config.name not in ("auto", "pg-stderr"):
        return config
    if config.name == "pg-stderr" and config.log_line_prefix:
        return config
    lines = _sample_lines(head)
    if config.name == "auto":
        common = None if config.log_line_prefix else _common_prefix_of_every_line(lines)
        if common is not None:
            return config._replace(name="pg-stderr", log_line_prefix=common)
        name = _detect_shape(lines)
        if name is not None:
            return config._replace(name=name)
    if not lines:
        return config._replace(
            name="pg-stderr", log_line_prefix=config.log_line_prefix or DEFAULT_PREFIX
        )
    prefix = _detect_prefix(lines, config.log_line_prefix)
    return config._replace(name="pg-stderr", log_line_prefix=prefix)


def _common_prefix_of_every_line(lines: list[bytes]) -> str | None:
    """The first common prefix reading every line, when there is one (the usual pg-stderr log):
    the answer the shapes and then the prefixes would give, without compiling the shapes (~1 ms
    of a pack start). No shape matches a line such a prefix reads: none starts with `{`, a
    timestamp-led line has a space, not `T`, after its date, and %m's zone is followed by a
    space, not csvlog's comma (%t has no milliseconds at all)."""
    if not lines or not lines[0][:1].isdigit():  # every common prefix starts with %m or %t
        return None
    for prefix in COMMON_PREFIXES:
        line = compile_prefix(prefix).line
        if all(line.match(text) for text in lines):
            return prefix
    return None


def _sample_lines(head: bytes) -> list[bytes]:
    lines = [line for line in head.split(b"\n", _SAMPLE_LINES)[:_SAMPLE_LINES] if line.strip()]
    # Continuation lines say nothing about the shape of an entry's first line.
    return [line for line in lines if not line.startswith(b"\t")]


# A record's own continuation lines (quoted newlines in csvlog, long legacy
# messages) lower the share of lines that look like entry starts; a fifth is
# far above what a log of another shape ever shows.
_SHAPE_SHARE = 0.2


def _detect_shape(lines: list[bytes]) -> str | None:
    """The shape of the first line (a log starts with an entry), else the most common one."""
    if not lines:
        return None
    for name, shape in _shapes():
        if shape.match(lines[0]):
            return name
    share, name = max((_share(lines, shape), name) for name, shape in _shapes())
    return name if share >= _SHAPE_SHARE else None


def _detect_prefix(lines: list[bytes], configured: str | None) -> str:
    candidates = (configured,) if configured else COMMON_PREFIXES
    best, best_share = None, 0.0
    for prefix in candidates:
        share = _share(lines, compile_prefix(prefix).line)
        if share > best_share:
            best, best_share = prefix, share
        if best_share == 1.0:
            break  # no later prefix can do better: spare compiling them (~0.2 ms each)
    if best is None or best_share < 0.5:
        raise FormatError(_refusal(lines, configured))
    return best


def _share(lines: list[bytes], pattern: re.Pattern[bytes]) -> float:
    return sum(1 for line in lines if pattern.match(line)) / len(lines)


def _refusal(lines: list[bytes], configured: str | None) -> str:
    sample = lines[0][:120].decode("utf-8", "replace") if lines else ""
    if configured:
        return (
            f"the log does not match log_line_prefix {configured!r} (first line: {sample!r}); "
            "set LogLinePrefix to the server's `SHOW log_line_prefix`, "
            "or LogFormat if it is not pg-stderr"
        )
    tried = ", ".join(repr(p) for p in COMMON_PREFIXES)
    return (
        f"cannot tell the log format from its first lines (first line: {sample!r}); "
        "not mongo-json, mongo-legacy, pg-csv or pg-json, "
        f"and no common log_line_prefix fits ({tried}); "
        "set LogFormat (pg-stderr, pg-csv, pg-json, mongo-json, mongo-legacy) and, for pg-stderr, "
        "LogLinePrefix to the server's `SHOW log_line_prefix`"
    )
