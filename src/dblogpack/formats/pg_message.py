"""What a PostgreSQL message says, for csvlog and jsonlog: its duration and its statement."""

from __future__ import annotations

import re

DURATION = re.compile(rb"duration: (\d+(?:\.\d+)?) ms")
# What follows `duration: N ms  ` when the statement is logged with it.
_STATEMENT_LEAD = re.compile(
    r"(?:statement|(?:execute|parse|bind) [^:\n]*|fastpath function call): |plan:\n\t?Query Text: "
)


def duration_ms(raw: bytes, start: int, end: int) -> float | None:
    """The `duration: N ms` of a message found in raw[start:end]."""
    found = DURATION.search(raw, start, end)
    return float(found[1]) if found is not None else None


def logged_statement(message: str) -> str | None:
    """The statement a `duration:`/`statement:` message carries, if any."""
    lead = _STATEMENT_LEAD.search(message)
    return message[lead.end() :] if lead is not None else None
