"""The one interface every log format implements: framing (where entries end) and scanning.

A format never reads files: it is handed byte buffers. Framing tells the caller
how much of a buffer is made of whole entries; scanning selects entries of a
buffer of whole entries with C-speed primitives over the whole buffer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import ClassVar

    from dblogpack.model import DetailGroup, LogWarning, Query


class ScanResult:
    """Entries a scan selected from one buffer of whole entries.

    Offsets are relative to the scanned buffer. Adjacent selected entries are
    merged into one span, so an all-entries scan of a window is one span.
    """

    __slots__ = ("details", "end_offset", "entries", "first_ts", "last_ts", "spans", "warnings")

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self.entries = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # Details of the selected entries (when Query.details), alike ones grouped, in order.
        self.details: list[DetailGroup] = []
        self.warnings: list[LogWarning] = []
        # Offset of the first entry whose timestamp is >= window.end, if one was met; lets the
        # caller stop reading once past the window (plus its margin).
        self.end_offset: int | None = None


class LogFormat(ABC):
    """A log format: how bytes are framed into entries and what an entry means."""

    name: ClassVar[str]

    @abstractmethod
    def complete_length(self, buf: bytes | memoryview) -> int:
        """Length of the longest prefix of `buf` made only of whole entries, more data following.

        The last entry of a buffer may continue in the next one (TAB continuation
        lines, DETAIL lines, quoted CSV newlines), so it is held back. The caller
        keeps buf[result:] and prepends it to the next chunk; at end of input
        the remainder is whole by definition.
        """

    @abstractmethod
    def next_entry(self, buf: bytes | memoryview, pos: int) -> tuple[int, float] | None:
        """Offset and timestamp of the first entry starting at or after `pos` in `buf`.

        `pos` may be anywhere, mid-entry included: this is what bisection and
        splitting a file between workers use. None when no entry starts there.
        """

    @abstractmethod
    def last_timestamp(self, buf: bytes | memoryview) -> float | None:
        """Timestamp of the last entry that starts in `buf` (read from a file's tail)."""

    def prepare(self, query: Query) -> None:
        """Build now what scanning for `query` needs (worker processes forked afterwards inherit
        it instead of each building its own); by default nothing is built ahead."""
        return None

    @abstractmethod
    def scan(
        self, buf: bytes | memoryview, query: Query, file: str, base_offset: int
    ) -> ScanResult:
        """Select the entries of `buf` (whole entries only) that match `query`.

        Warnings carry `file` and `base_offset + offset in buf`.
        """
