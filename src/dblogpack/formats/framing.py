"""Framing: where entries end in a byte stream, apart from what they mean.

`ChunkFramer` has httpx's `LineDecoder` shape (feed a chunk, get the whole
entries, keep the unfinished tail, `flush()` at the end); the helpers find
entry starts with compiled patterns over whole buffers, never line by line.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from functools import cache
from itertools import accumulate, repeat
from operator import add

from stringzilla import count, find, split_iter, translate

Buffer = bytes | memoryview

# Backward searches start with this window and widen it fourfold, so a huge
# last entry costs a few C-speed passes instead of a Python loop over its lines.
# Small, because nearly every last entry is short and each chunk's complete_length
# pays for the whole window (64 KiB cost 10% of an all-entries scan).
_BACKWARD_WINDOW = 4 * 1024


class ChunkFramer:
    """Feed chunks, get back only whole entries; the unfinished tail waits for the next chunk."""

    def __init__(self, complete_length: Callable[[bytes], int]) -> None:
        self._complete_length = complete_length
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        cut = self._complete_length(data)
        self._tail = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """At end of input the held-back tail is whole by definition."""
        data, self._tail = self._tail, b""
        return data


def last_match_start(pattern: re.Pattern[bytes], buf: Buffer, lo: int, hi: int) -> int | None:
    """Start of the last match of `pattern` lying in buf[lo:hi], searching back from `hi`."""
    window = _BACKWARD_WINDOW
    while True:
        begin = max(lo, hi - window)
        last = deque(pattern.finditer(buf, begin, hi), maxlen=1)  # consumed in C
        if last:
            return last[0].start()
        if begin == lo:
            return None
        window *= 4


def count_matches(pattern: re.Pattern[bytes], buf: Buffer, lo: int, hi: int) -> int:
    """Number of matches in buf[lo:hi] at C speed (1-byte matches share one cached object)."""
    return len(pattern.findall(buf, lo, hi))


# A regex call holds the GIL from start to end (~1 ms a MiB): a thread compressing, hashing or
# reading for the scan waits that long each time it needs the GIL back (after each C step).
# Counting passes over a whole chunk are made a slice at a time (~0.05 ms), so it waits that at
# most (see cli/pack.py's SWITCH_INTERVAL).
COUNT_SLICE = 64 * 1024
# stringzilla counts a byte at ~8 GB/s (bench/primitives.py): its slices are larger (~0.03 ms).
COUNT_BYTES_SLICE = 256 * 1024


def count_line_heads(pattern: re.Pattern[bytes], buf: Buffer, lo: int, end: int) -> int:
    """`count_matches(pattern, buf, lo, end)` for a pattern matching one byte and looking one
    byte ahead (`\\n(?=X)`, X one byte), counted a COUNT_SLICE at a time: each slice reaches one
    byte past its matches' starts, for their lookahead, and no further (as `end` does)."""
    count = 0
    for start in range(lo, end, COUNT_SLICE):
        count += len(pattern.findall(buf, start, min(start + COUNT_SLICE + 1, end)))
    return count


def count_bytes(buf: Buffer, needle: bytes, lo: int, hi: int) -> int:
    """`bytes.count(needle, lo, hi)` (0 <= lo) by stringzilla's SIMD count, 10x CPython's for one
    byte, a COUNT_BYTES_SLICE at a time: each slice reaches on for the needles starting in it.
    A needle that can overlap itself (`\n\n`) is counted in one pass: a slice cannot know that
    an occurrence starting in it was consumed by one the slice before found."""
    if _overlaps_itself(needle):
        return count(buf, needle, lo, max(hi, lo))
    reach = COUNT_BYTES_SLICE + len(needle) - 1
    return sum(
        count(buf, needle, start, min(start + reach, hi))
        for start in range(lo, hi, COUNT_BYTES_SLICE)
    )


@cache
def _overlaps_itself(needle: bytes) -> bool:
    """Whether a proper prefix of `needle` is also its suffix (two occurrences can overlap)."""
    return any(needle[:size] == needle[-size:] for size in range(1, len(needle)))


def count_and_find_mapped(
    buf: Buffer,
    table: bytes,
    lo: int,
    hi: int,
    counted: tuple[bytes, int] | None,
    found: bytes | None,
) -> tuple[int, list[int]]:
    """With buf's bytes mapped by `table` (as `bytes.translate` maps them: each byte to its class,
    so one needle stands for many byte strings, e.g. a newline and any digit): the occurrences of
    `counted` = (needle, end) in the mapped buf[lo:end] and the offsets of `found` in the mapped
    buf[lo:hi]. Neither needle may overlap itself. One mapping, count and search a
    COUNT_BYTES_SLICE at a time (a slice reaches on for the needles starting in it): a search
    for a rare needle costs ~0.25 ms per 4 MiB, so searches for several needles become one
    mapping (~0.8 ms) and one search."""
    lo, hi, _ = slice(lo, hi).indices(len(buf))
    needle, end = counted or (b"", lo)
    end, tag = min(slice(end).indices(len(buf))[1], hi), found or b""
    reach = max(len(needle), len(tag), 1) - 1
    scratch = memoryview(bytearray(min(COUNT_BYTES_SLICE, max(hi - lo, 0)) + reach))
    total, offsets = 0, []
    for start in range(lo, hi, COUNT_BYTES_SLICE):
        stop = min(start + COUNT_BYTES_SLICE, hi)
        mapped = scratch[: min(stop + reach, hi) - start]
        translate(buf, table, start=start, end=start + len(mapped), out=mapped)
        if needle:
            total += count(mapped, needle, 0, max(min(stop + len(needle) - 1, end) - start, 0))
        if tag:
            offsets += _offsets(mapped[: min(stop + len(tag) - 1, hi) - start], tag, start)
    return total, offsets


def find_all(buf: bytes, needle: bytes, lo: int, hi: int) -> list[int]:
    """Offsets of `needle` in buf[lo:hi] (bounds as bytes.find takes them), overlapping ones
    included: stringzilla's SIMD search, 5-8x bytes.find's (bench/primitives.py), which is itself
    faster than a regex literal."""
    if not needle or _overlaps_itself(needle):
        return _found_one_by_one(buf, needle, lo, hi)
    lo, hi, _ = slice(lo, hi).indices(len(buf))
    return _offsets(memoryview(buf)[lo : max(lo, hi)], needle, lo)


def _offsets(part: Buffer, needle: bytes, base: int) -> list[int]:
    """Offsets of `needle` (which cannot overlap itself) in `part`, plus `base` (where `part`
    starts in the buffer searched)."""
    # The needles' offsets from the lengths of the parts between them, mapped in C: a search
    # call per needle cost ~1.6 k instructions of call and generator (pg-stderr-1g.log's slow
    # hits: 4.6 -> 4.1 M instructions a 4 MiB chunk). The sums run from before `base`.
    step = len(needle)
    parts = split_iter(part, needle)
    return list(accumulate(map(add, map(len, parts), repeat(step)), initial=base - step))[1:-1]


def _found_one_by_one(buf: bytes, needle: bytes, lo: int, hi: int) -> list[int]:
    """`find_all` of a needle that may overlap itself: each search starts a byte after a hit."""
    found, at = [], find(buf, needle, lo, hi)
    while at >= 0:
        found.append(at)
        at = find(buf, needle, at + 1, hi)
    return found


def find_any(buf: bytes, needles: tuple[bytes, ...], lo: int, hi: int) -> list[int]:
    """Offsets of any of `needles` in buf[lo:hi], in order (needles are rare: one pass each)."""
    if len(needles) == 1:
        return find_all(buf, needles[0], lo, hi)
    return sorted(at for needle in needles for at in find_all(buf, needle, lo, hi))


def as_bytes(buf: Buffer) -> bytes:
    """The buffer as bytes (a memoryview is copied once, at memory speed, so bytes.find works)."""
    return buf if isinstance(buf, bytes) else bytes(buf)
