"""The package's documents: manifest.json (DESIGN.md's keys) and the JSON text of it and of
summary.json.
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


def load_json() -> None:
    """Import what json_bytes needs (~2 ms: json's decoder compiles its regexes) ahead of it,
    where this thread would otherwise wait (the scan's last chunk being compressed)."""
    import json  # noqa: F401


def json_bytes(document: dict[str, Any]) -> bytes:
    """`document` as the package's JSON text: indented, UTF-8, a newline at the end."""
    import json  # at the package's end: json's decoder and its regexes stay off pack's start

    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"
