"""Compile a PostgreSQL `log_line_prefix` into one regex with named groups.

Every escape PostgreSQL documents is understood, with its padding (`%-10u`,
`%5p`); after `%q` the rest is optional, as non-session processes omit it.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from dblogpack.errors import FormatError
from dblogpack.records import NamedTuple

_ZONE = rb"[A-Za-z0-9+\-:]+"
# Digits as a range, not `\d`: the same bytes in a bytes pattern, but sre tests a range inline
# and a category through a call (one slow hit's match in pg-stderr-1g.log, mostly prefix
# parses: 11.75 -> 11.36 k instructions).
_SECONDS = rb"[0-9]{4}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
_FREE_TEXT = rb"[^\n]*?"
# Role and database names are taken to have no spaces: otherwise Debian's optional
# `%q%u@%d ` could swallow a message holding "a@b WORD:  " and misplace the level.
_NAME = rb"[^\n ]*?"

# escape → (group name, regex of its value)
_ESCAPES: dict[str, tuple[str, bytes]] = {
    "a": ("application", _FREE_TEXT),
    "u": ("user", _NAME),
    "d": ("database", _NAME),
    "r": ("remote", _FREE_TEXT),
    "h": ("host", _FREE_TEXT),
    "b": ("backend_type", _FREE_TEXT),
    "p": ("pid", rb"[0-9]+"),
    "P": ("leader_pid", rb"[0-9]*"),
    "t": ("ts_t", _SECONDS + rb" " + _ZONE),
    "m": ("ts_m", _SECONDS + rb"\.[0-9]{3} " + _ZONE),
    "n": ("ts_n", rb"[0-9]+\.[0-9]{3}"),
    "i": ("command_tag", _FREE_TEXT),
    "e": ("sqlstate", rb"[0-9A-Z]{5}"),
    "c": ("session", rb"[0-9a-f]+\.[0-9a-f]+"),
    "l": ("line", rb"[0-9]+"),
    "s": ("session_start", _SECONDS + rb" " + _ZONE),
    "v": ("vxid", rb"[0-9/\-]*"),
    "x": ("xid", rb"[0-9]+"),
    "Q": ("query_id", rb"-?[0-9]+"),
}

# Per escape, the bytes of the run its value ends with, when the byte after the value decides
# where it ends (a byte outside the run); None: the value ends at one place once it starts (fixed
# width, or fixed after a run that ends at a fixed byte). Escapes missing here (names, free text)
# may end at several places.
_ENDING_RUN: dict[str, bytes | None] = {
    "m": b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-:",
    "p": b"0123456789",
    "P": b"0123456789",
    "l": b"0123456789",
    "x": b"0123456789",
    "Q": b"0123456789",
    "c": b"0123456789abcdef",
    "v": b"0123456789/-",
    "n": None,
    "e": None,
}
_ENDING_RUN["t"] = _ENDING_RUN["s"] = _ENDING_RUN["m"]  # a zone abbreviation ends them all

# The entry's own time: the most precise timestamp escape of the prefix.
_TIMESTAMP_PREFERENCE = ("ts_m", "ts_n", "ts_t")

_ESCAPE_RE = re.compile(r"%(-?\d*)([A-Za-z%])")
_GROUP = re.compile(rb"\(\?P<(\w+)>")
_USER_AT_DATABASE = b"(?:" + _NAME + b")@(?:" + _NAME + rb")\ "

LEVEL = rb"(?P<level>[A-Z]+[1-5]?):  "

# log_line_prefix values PostgreSQL and common packagings ship.
DEFAULT_PREFIX = "%m [%p] "
DEBIAN_PREFIX = "%m [%p] %q%u@%d "
PGBADGER_PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "


class CompiledPrefix(NamedTuple):
    """A prefix as one regex; `line` matches a whole log-line head up to the message."""

    source: str
    pattern: bytes  # the prefix alone, with named groups
    line: re.Pattern[bytes]  # prefix + `LEVEL:  `
    timestamp_group: str  # ts_m | ts_n | ts_t
    process_group: str | None  # pid, else session, else None: what "same process" compares
    guard: bytes | None  # regex of a prefixed line's first byte, when the prefix fixes it


def compile_prefix(prefix: str) -> CompiledPrefix:
    """FormatError when the prefix has no timestamp escape: such entries cannot be windowed."""
    pattern, groups = _translate(prefix)
    timestamp = next((g for g in _TIMESTAMP_PREFERENCE if g in groups), None)
    if timestamp is None:
        raise FormatError(
            f"log_line_prefix {prefix!r} has no timestamp (%m, %t or %n): "
            "entries cannot be placed in a time window; add %m to log_line_prefix"
        )
    process = "pid" if "pid" in groups else "session" if "session" in groups else None
    line = re.compile(pattern + LEVEL)
    return CompiledPrefix(prefix, pattern, line, timestamp, process, _guard(prefix))


def always_set(prefix: CompiledPrefix, group: str) -> bool:
    """Whether `group` is set by every match of `prefix.line`: not when its escape comes after
    %q, whose part non-session processes omit."""
    optional = False
    for match in _ESCAPE_RE.finditer(prefix.source):
        letter = match.group(2)
        optional = optional or letter == "q"
        if letter in _ESCAPES and _ESCAPES[letter][0] == group:
            return not optional  # the first escape of a group is the one that names it
    return False


def process_in_place(prefix: CompiledPrefix) -> bool:
    """Whether every parse of a line puts its process value (`prefix.process_group`) on the same
    bytes, so that "the line's first parse has process P" is "the line parses with P there": the
    escapes up to the process's are unpadded, none after %q, and each one's value ends at one
    place, given the literal byte after it (see _ENDING_RUN)."""
    for match in _ESCAPE_RE.finditer(prefix.source):
        padding, letter = match.groups()
        if letter == "q" or padding:
            return False
        if letter not in _ESCAPES:
            continue  # `%%` or an escape printing nothing (the escape before checked for a `%`)
        if letter not in _ENDING_RUN:
            return False
        run, after = _ENDING_RUN[letter], prefix.source[match.end() : match.end() + 1]
        if run is not None and (after in ("", "%") or after.encode()[:1] in run):
            return False
        if _ESCAPES[letter][0] == prefix.process_group:
            return True
    return False


def referring_to_process(pattern: bytes, prefix: CompiledPrefix) -> bytes:
    """`pattern` (a prefix's, its process group named as `prefix.pattern` names it) matching
    only the process value the match read already: its group is a backreference to it."""
    name = prefix.process_group
    assert name is not None
    letter = next(key for key, (group, _) in _ESCAPES.items() if group == name)
    group = b"(?P<" + name.encode() + b">" + _ESCAPES[letter][1] + b")"
    assert pattern.count(group) == 1
    return pattern.replace(group, b"(?P=" + name.encode() + b")")


def probe(pattern: bytes) -> bytes:
    """A prefix pattern for lookaheads, which only ask whether some parse exists: groups unnamed
    and names matched greedily (the same parses, which sre finds sooner; never for a match whose
    groups or end are read, as `[^\n ]*?` picks the first parse)."""
    return unread_names(unnamed(pattern)).replace(_NAME, _NAME[:-1])


def unnamed(pattern: bytes) -> bytes:
    """`pattern` with its named groups plain ones (for patterns embedded in others)."""
    return _GROUP.sub(b"(?:", pattern)


def unread_names(pattern: bytes) -> bytes:
    """`pattern` (a prefix whose user and database groups are unnamed, so never read) with
    `%u@%d ` matched without backtracking: any parse of it spans the same text, the word up to
    its first space (names hold no space), and only the user/database split differs."""
    return pattern.replace(_USER_AT_DATABASE, rb"[^\n @]*+@[^\n ]*+\ ")


def captured(pattern: bytes, names: Collection[str | None], rename: str = "") -> bytes:
    """`pattern` with only the groups `names` captured (`rename` put before their names), the
    others non-capturing: sre records fewer groups."""

    def group(found: re.Match[bytes]) -> bytes:
        name = found[1].decode()
        return f"(?P<{rename}{name}>".encode() if name in names else b"(?:"

    return _GROUP.sub(group, pattern)


def _translate(prefix: str) -> tuple[bytes, set[str]]:
    head: list[bytes] = []
    rest: list[bytes] | None = None  # after %q
    groups: set[str] = set()
    pos = 0
    for match in _ESCAPE_RE.finditer(prefix):
        target = head if rest is None else rest
        target.append(re.escape(prefix[pos : match.start()].encode()))
        pos = match.end()
        padding, escape = match.groups()
        if escape == "q":
            rest = [] if rest is None else rest
            continue
        target.append(_escape_regex(escape, padding, groups))
    target = head if rest is None else rest
    target.append(re.escape(prefix[pos:].encode()))
    pattern = b"".join(head)
    if rest is not None:
        pattern += b"(?:" + b"".join(rest) + b"|)"  # an optional part: a cheaper branch than `?`
    return pattern, groups


# Escapes whose value always starts with a digit (or hex digit) when printed unpadded.
_LEADING_CLASS = {
    "m": rb"\d",
    "t": rb"\d",
    "n": rb"\d",
    "s": rb"\d",
    "p": rb"\d",
    "l": rb"\d",
    "x": rb"\d",
    "Q": rb"[\d-]",
    "c": rb"[0-9a-f]",
    "e": rb"[0-9A-Z]",
}


def _guard(prefix: str) -> bytes | None:
    """What the first byte of every prefixed line must be, when the prefix decides it."""
    if not prefix:
        return None
    escape = _ESCAPE_RE.match(prefix)
    if escape is None:
        return re.escape(prefix[0].encode()[:1])
    padding, letter = escape.groups()
    if letter == "%":
        return b"%"
    return None if padding else _LEADING_CLASS.get(letter)


def _escape_regex(escape: str, padding: str, groups: set[str]) -> bytes:
    if escape == "%":
        return b"%"
    known = _ESCAPES.get(escape)
    if known is None:
        return b""  # PostgreSQL prints nothing for an unknown escape
    name, value = known
    if name in groups:
        body = b"(?:" + value + b")"
    else:
        groups.add(name)
        body = b"(?P<" + name.encode() + b">" + value + b")"
    if padding and padding not in ("-", "0", "-0"):
        # Positive padding right-aligns (spaces first), negative left-aligns.
        return body + b" *" if padding.startswith("-") else b" *" + body
    return body
