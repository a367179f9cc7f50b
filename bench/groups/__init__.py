"""Bench rows by group, one module each; `ROWS` lists them in the order the report shows."""

from __future__ import annotations

from bench.groups import api, compress, mtools, process, scan, window
from bench.rows import Row

GROUPS: dict[str, list[tuple[str, Row]]] = {
    "scan": scan.ROWS,
    "compress": compress.ROWS,
    "window": window.ROWS,
    "mtools": mtools.ROWS,
    "process": process.ROWS,
    "api": api.ROWS,
}
ROWS: list[tuple[str, Row]] = [row for rows in GROUPS.values() for row in rows]
