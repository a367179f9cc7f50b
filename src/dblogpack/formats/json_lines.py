"""Framing shared by the one-JSON-document-a-line formats (mongo-json, pg-json).

An entry is one line starting with the format's marker (`{"t":{"$date":`,
`{"timestamp":"`). A line without it belongs to no entry: it becomes an
"unparseable" warning and is left out of every package, "all" included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from dblogpack.formats.framing import Buffer, as_bytes, count_bytes
from dblogpack.formats.scanner import EntryScanner

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import Any


class JsonLinesScanner(EntryScanner):
    """Entry starts are found with bytes.find of newline + marker: no regex on the hot path."""

    marker: bytes

    def __init__(self) -> None:
        self._line_marker = b"\n" + self.marker
        self._not_entry = re.compile(b"\n(?!" + re.escape(self.marker) + b")")

    def complete_length(self, buf: Buffer) -> int:
        # A document never spans lines: every complete line is a whole entry.
        data = as_bytes(buf)
        return data.rfind(b"\n") + 1

    def _start_at_or_after(self, buf: bytes, pos: int, hi: int) -> int | None:
        if pos < hi and (pos == 0 or buf[pos - 1] == 10) and buf.startswith(self.marker, pos):
            return pos
        found = buf.find(self._line_marker, pos)
        return found + 1 if 0 <= found < hi - 1 else None

    def _last_start_before(self, buf: bytes, hi: int) -> int | None:
        found = buf.rfind(self._line_marker, 0, max(hi - 1, 0) + len(self._line_marker) - 1)
        if found >= 0 and found + 1 < hi:
            return found + 1
        return 0 if hi > 0 and buf.startswith(self.marker) else None

    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        newline = buf.find(b"\n", start, hi)
        return hi if newline < 0 else newline + 1

    def _count_entries(self, buf: bytes, lo: int, hi: int) -> int:
        found = count_bytes(buf, self._line_marker, max(lo - 1, 0), hi)
        return found + (1 if lo == 0 and buf.startswith(self.marker) else 0)

    def _garbage(self, buf: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        # Lines are rarely garbage: when every newline of buf[lo:hi-1] is followed by the marker
        # (one compiled pass, 0.43 ms a 4 MiB chunk of mongo-json; its reference's two SIMD
        # counts 1.1 ms, the regex 3.5 ms), there is none; else the regex finds them.
        stop = hi - 1
        if stop <= lo or every_line_starts_with(buf, self.marker, lo, stop):
            return
        for found in self._not_entry.finditer(buf, lo, stop):
            line = found.start() + 1
            yield line, self._entry_end(buf, line, hi)

    def _line_text(self, buf: bytes, start: int, end: int) -> bytes:
        return buf[start:end].rstrip(b"\r\n")


def every_line_starts_with_reference(buf: bytes, marker: bytes, lo: int, stop: int) -> bool:
    """Whether every newline of buf[lo:stop] is followed by `marker` inside it: the reference of
    the compiled pass (and what runs where the extension is not built). Two SIMD counts: newline
    + marker cannot overlap itself, so each newline followed by the marker is one of them."""
    return count_bytes(buf, b"\n", lo, stop) == count_bytes(buf, b"\n" + marker, lo, stop)


try:
    from dblogpack.formats._scan import every_line_starts_with
except ImportError:  # a source tree whose extension is not built
    every_line_starts_with = every_line_starts_with_reference


def load_document(line: bytes) -> dict[str, Any] | None:
    """The JSON document of one line, or None when it does not parse (bytes are never trusted)."""
    import orjson  # only selected entries with details pay for it

    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            document = orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    return document if isinstance(document, dict) else None


def dump_json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
