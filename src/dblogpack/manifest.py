"""The package's documents: manifest.json (DESIGN.md's keys) and the JSON text of it and of
summary.json, written as `json.dumps(indent=2, ensure_ascii=False)` writes it without importing
json (its decoder, scanner and their regexes cost ~1.7 ms of every `pack` start).
"""

from __future__ import annotations

import math
import time

from dblogpack import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import Any

    from dblogpack.model import PackageResult, PackageSpec


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds (the logs' own precision), or None.

    As `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")` writes it (the
    fraction rounded half-even to microseconds, then cut to milliseconds), without importing
    datetime: every `pack` start would pay for it.
    """
    if ts is None:
        return None
    fraction, seconds = math.modf(ts)
    micros = round(fraction * 1e6)
    whole = int(seconds) + micros // 1_000_000  # a fraction rounded up to 1 s, or a negative one
    t = time.gmtime(whole)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        f"{t.tm_sec:02d}.{micros % 1_000_000 // 1000:03d}Z"
    )


def manifest(spec: PackageSpec, result: PackageResult) -> dict[str, Any]:
    """manifest.json, with exactly the keys DESIGN.md lists.

    Every source file considered is listed; one without entries in the window has
    `entries: 0` and `member`/`sha256` null (no member is written for it). `first_ts`/`last_ts`
    are those of the file's selected entries. `totals.files` counts the log members written.
    """
    members = [f for f in result.files if f.member is not None]
    return {
        "format_version": 1,
        "package": {
            "id": spec.id,
            "name": spec.name,
            "kind": spec.kind.value,
            "resource_id": spec.resource_id,
            "node_id": spec.node_id,
            "log_type": spec.log_type.value,
            "min_duration_ms": spec.min_duration_ms,
        },
        "window": {
            "begin": spec.window.begin,
            "end": spec.window.end,
            "begin_iso": iso(spec.window.begin),
            "end_iso": iso(spec.window.end),
        },
        "files": [
            {
                "name": f.name,
                "format": f.format,
                "bytes_scanned": f.bytes_scanned,
                "entries": f.entries,
                "first_ts": iso(f.first_ts),
                "last_ts": iso(f.last_ts),
                "member": f.member,
                "sha256": f.sha256,
            }
            for f in result.files
        ],
        "totals": {
            "entries": result.entries,
            "bytes": sum(f.bytes_written for f in members),
            "bytes_scanned": sum(f.bytes_scanned for f in result.files),
            "files": len(members),
        },
        "warnings": [
            {"file": w.file, "offset": w.offset, "kind": w.kind, "detail": w.detail}
            for w in result.warnings
        ],
        "generator": f"dblogpack {__version__}",
    }


def json_bytes(document: dict[str, Any]) -> bytes:
    """`document` as `json.dumps(document, indent=2, ensure_ascii=False)` writes it, plus a newline
    (a test holds it to json.dumps's text)."""
    return _json_text(document, "\n").encode() + b"\n"


def _json_text(value: object, newline: str) -> str:
    """One JSON value, its nested lines starting with `newline` (a newline and indentation)."""
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        inner = newline + "  "
        items = [inner + _json_key(k) + ": " + _json_text(v, inner) for k, v in value.items()]
        return "{" + ",".join(items) + newline + "}" if items else "{}"
    if isinstance(value, list | tuple):
        inner = newline + "  "
        items = [inner + _json_text(v, inner) for v in value]
        return "[" + ",".join(items) + newline + "]" if items else "[]"
    if value is None or isinstance(value, bool | int | float):
        return _json_scalar(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_scalar(value: bool | float | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # an IntEnum's number, not its name
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return _json_string(key)
    if key is None or isinstance(key, bool | int | float):
        return '"' + _json_scalar(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


# What json escapes in a string when it may write any other character as it is.
_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)} | {
    ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r",
}


def _json_string(text: str) -> str:
    # Printable text without quote or backslash has nothing to escape: three C-speed checks
    # instead of a translate call per character (slow packages' statements run to kilobytes).
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return '"' + text.translate(_JSON_ESCAPES) + '"'
