"""Seeded, fast generators of PostgreSQL and MongoDB logs that record what they wrote.

Used by tests and `make bench` (expected packages computed from the record, not the engine)
and by the demo (`feed`: real-time entries into a live log directory).
"""

from __future__ import annotations

from dblogpack.synth.feeder import feed, feed_many
from dblogpack.synth.generate import (
    EntryTemplate,
    GenerateResult,
    Mix,
    Plan,
    SynthFormat,
    WrittenFile,
    generate,
)
from dblogpack.synth.mongo_json import MongoJsonFormat
from dblogpack.synth.mongo_legacy import MongoLegacyFormat
from dblogpack.synth.pg_stderr import PgStderrFormat
from dblogpack.synth.record import (
    ERROR,
    SLOW,
    Record,
    RecordedEntry,
    RecordFile,
    Selection,
    entries,
    expected_spans,
    read_spans,
    select,
)

FORMATS = ("pg-stderr", "mongo-json", "mongo-legacy")

__all__ = [
    "ERROR",
    "FORMATS",
    "SLOW",
    "EntryTemplate",
    "GenerateResult",
    "Mix",
    "MongoJsonFormat",
    "MongoLegacyFormat",
    "PgStderrFormat",
    "Plan",
    "Record",
    "RecordFile",
    "RecordedEntry",
    "Selection",
    "SynthFormat",
    "WrittenFile",
    "build",
    "entries",
    "expected_spans",
    "feed",
    "feed_many",
    "generate",
    "read_spans",
    "select",
]


def build(
    name: str,
    *,
    log_line_prefix: str | None = None,
    timezone: str | None = None,
    style: str | None = None,
) -> SynthFormat:
    """A generator format by its dblogpack format name.

    `style`: mongo-json date style (iso-local | iso-utc | number-long) or mongo-legacy time
    format (iso8601-local | iso8601-utc | ctime).
    """
    if name == "pg-stderr":
        return PgStderrFormat(log_line_prefix or "%m [%p] ", timezone)
    if name == "mongo-json":
        return MongoJsonFormat(style or "iso-local", timezone)
    if name == "mongo-legacy":
        return MongoLegacyFormat(style or "iso8601-local", timezone)
    raise ValueError(f"no generator for format {name!r}; choose one of {', '.join(FORMATS)}")
