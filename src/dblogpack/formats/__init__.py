"""How log bytes become entries: one module per format behind `base.LogFormat`.

`build(config)` makes a format from its picklable `FormatConfig` (in any
process); `detect(head, config)` fills in what "auto" leaves open.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from dblogpack.errors import FormatError
from dblogpack.formats.base import LogFormat, ScanResult
from dblogpack.formats.detect import detect
from dblogpack.model import FormatConfig

# name → (module, class); imported on demand so a process pays only for the formats it uses.
_FORMATS: dict[str, tuple[str, str]] = {
    "pg-stderr": ("dblogpack.formats.pg_stderr", "PgStderrFormat"),
    "pg-csv": ("dblogpack.formats.pg_csv", "PgCsvFormat"),
    "pg-json": ("dblogpack.formats.pg_json", "PgJsonFormat"),
    "mongo-json": ("dblogpack.formats.mongo_json", "MongoJsonFormat"),
    "mongo-legacy": ("dblogpack.formats.mongo_legacy", "MongoLegacyFormat"),
}

FORMAT_NAMES: tuple[str, ...] = ("auto", *_FORMATS)

__all__ = ["FORMAT_NAMES", "LogFormat", "ScanResult", "build", "detect"]


def build(config: FormatConfig) -> LogFormat:
    """The format `config` names; FormatError for "auto" (detect first) or an unknown name."""
    if config.name == "auto":
        raise FormatError(
            "format 'auto' must be detected from the log's content first (formats.detect)"
        )
    where = _FORMATS.get(config.name)
    if where is None:
        raise FormatError(
            f"unknown log format {config.name!r}; use one of {', '.join(FORMAT_NAMES)}"
        )
    module, cls = where
    # importlib.import_module without importing importlib (with warnings, ~0.5 ms of a pack).
    __import__(module)
    factory: Callable[[FormatConfig], LogFormat] = getattr(sys.modules[module], cls)
    return factory(config)
