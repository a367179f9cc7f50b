"""What a PostgreSQL message says, for csvlog and jsonlog: its duration and its statement; and,
for every PostgreSQL format, the text of a message or statement an entry's details hold."""

from __future__ import annotations

import re

from dblogpack.model import DETAIL_BYTES, DETAIL_CHARS, LONGEST_KEY

DURATION = re.compile(rb"duration: (\d+(?:\.\d+)?) ms")
# What follows `duration: N ms  ` when the statement is logged with it.
_STATEMENT_LEAD = re.compile(
    r"(?:statement|(?:execute|parse|bind) [^:\n]*|fastpath function call): |plan:\n\t?Query Text: "
)


def detail_text(
    buf: bytes, start: int, end: int, unescape: tuple[bytes, bytes] | None = None
) -> str:
    """The text of buf[start:end] for an entry's details: `unescape` replaced (a continuation
    line's TAB, a csv field's doubled quote), decoded with replacement, its first DETAIL_CHARS
    characters (only their bytes are read)."""
    text = buf[start : min(end, start + DETAIL_BYTES)]
    if unescape is not None:
        text = text.replace(*unescape)
    return text.decode("utf-8", "replace")[:DETAIL_CHARS]


def first_line_text(buf: bytes, start: int, end: int) -> str:
    """detail_text of the line from `start`, up to its newline or `end`."""
    stop = min(end, start + DETAIL_BYTES)
    newline = buf.find(b"\n", start, stop)
    return detail_text(buf, start, stop if newline < 0 else newline)


def duration_ms(raw: bytes, start: int, end: int) -> float | None:
    """The `duration: N ms` of a message found in raw[start:end]."""
    found = DURATION.search(raw, start, end)
    return float(found[1]) if found is not None else None


def duration_and_key(
    buf: bytes, lead: int, message: int, stop: int, end: int
) -> tuple[float | None, bytes | None]:
    """A slow entry's duration (the first `duration: N ms` in buf[message:stop]) and the bytes
    that entries alike but for their time and duration share, for summary groups: buf[lead:end]
    without the duration (all of it when there is none; None past LONGEST_KEY)."""
    found = DURATION.search(buf, message, stop)
    if end - lead > LONGEST_KEY:
        return (None if found is None else float(found[1])), None
    if found is None:
        return None, buf[lead:end]
    return float(found[1]), buf[lead:message] + buf[found.end() : end]


def group_key(buf: bytes, lead: int, end: int) -> bytes | None:
    """buf[lead:end], the bytes entries alike share, for summary groups (None past
    LONGEST_KEY: the entry is parsed on its own)."""
    return buf[lead:end] if end - lead <= LONGEST_KEY else None


def logged_statement(message: str) -> str | None:
    """The statement a `duration:`/`statement:` message carries, if any."""
    lead = _STATEMENT_LEAD.search(message)
    return message[lead.end() :] if lead is not None else None
