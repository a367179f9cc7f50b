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


# ---- a line's head as a program, for the compiled follow-up pairing ----------------------------
#
# pg_count pairs each follow-up line with the line before it by one match of both heads (the pair
# regex of EntryCount._pair). Where every parse of a prefix is decided byte by byte, the compiled
# pairing (_scan.pair_follow_ups) reads the two heads from a program of these tokens, one per
# piece of that regex, and so parses what it parses, in the same places:
#   L n bytes       n literal bytes
#   R min max bits  min..max bytes (max 255: any number) of the class `bits` (32 bytes), greedily
#   P / p           where the process value starts / ends
#   O n             the next n bytes of program (after %q) are optional: tried first, and left
#                   out when the level does not follow them
#   V               the level, `[A-Z]+[1-5]?:  ` (always last)

_UNBOUNDED = 255


def _run(members: bytes, least: int = 1, most: int = _UNBOUNDED, *, but: bool = False) -> bytes:
    """A run of `members` (with `but`, of every other byte): byte b is bit b of the class."""
    bits = sum(1 << byte for byte in set(members)) ^ ((1 << 256) - 1 if but else 0)
    return b"R" + bytes((least, most)) + bits.to_bytes(32, "little")


def _literal(text: bytes) -> bytes:
    return b"".join(b"L" + bytes((len(text[at : at + 255]),)) + text[at : at + 255]
                    for at in range(0, len(text), 255))


_DIGITS, _HEX = b"0123456789", b"0123456789abcdef"
_SECONDS_PROGRAM = b"".join((
    _run(_DIGITS, 4, 4), _literal(b"-"), _run(_DIGITS, 2, 2), _literal(b"-"), _run(_DIGITS, 2, 2),
    _literal(b" "), _run(_DIGITS, 2, 2), _literal(b":"), _run(_DIGITS, 2, 2), _literal(b":"),
    _run(_DIGITS, 2, 2),
))
_ZONE_PROGRAM = _literal(b" ") + _run(_ENDING_RUN["t"] or b"")
# Per escape, the tokens of its value's regex (_ESCAPES); free text, names (but in `%u@%d `) and
# %Q have none.
_VALUE_PROGRAMS: dict[str, bytes] = {
    "p": _run(_DIGITS), "l": _run(_DIGITS), "x": _run(_DIGITS), "P": _run(_DIGITS, 0),
    "m": _SECONDS_PROGRAM + _literal(b".") + _run(_DIGITS, 3, 3) + _ZONE_PROGRAM,
    "t": _SECONDS_PROGRAM + _ZONE_PROGRAM,
    "s": _SECONDS_PROGRAM + _ZONE_PROGRAM,
    "n": _run(_DIGITS) + _literal(b".") + _run(_DIGITS, 3, 3),
    "e": _run(_DIGITS + b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 5, 5),
    "c": _run(_HEX) + _literal(b".") + _run(_HEX),
    "v": _run(b"0123456789/-", 0),
}
# `%u@%d ` as unread_names has the pair read it: `[^\n @]*+@[^\n ]*+\ `.
_USER_AT_DATABASE_SOURCE = "%u@%d "
_USER_AT_DATABASE_PROGRAM = (
    _run(b"\n @", 0, but=True) + _literal(b"@") + _run(b"\n ", 0, but=True) + _literal(b" ")
)


def line_program(prefix: CompiledPrefix) -> bytes | None:
    """The program of a line's head (prefix and level) as the follow-up pair's regex parses it,
    or None when not every parse is decided byte by byte: an escape without a program, padding,
    a run the byte after it could extend (the regex may give bytes back), a newline or TAB in the
    prefix, the process after %q."""
    source = prefix.source
    if "\n" in source or "\t" in source:
        return None
    parts: list[bytearray] = [bytearray()]  # the head, then what follows %q
    process = prefix.process_group
    pos = 0
    for match in _ESCAPE_RE.finditer(source):
        if match.start() < pos:
            continue  # the %d of a `%u@%d ` read whole
        parts[-1] += _literal(source[pos : match.start()].encode())
        pos = match.end()
        padding, letter = match.groups()
        if source.startswith(_USER_AT_DATABASE_SOURCE, match.start()):
            parts[-1] += _USER_AT_DATABASE_PROGRAM
            pos = match.start() + len(_USER_AT_DATABASE_SOURCE)
        elif padding:
            return None
        elif letter == "q":
            parts[1:] = parts[1:] or [bytearray()]
        elif letter == "%":
            parts[-1] += _literal(b"%")
        elif letter in _ESCAPES:  # others print nothing
            program = _value_program(letter, source[pos : pos + 1])
            if program is None or (_ESCAPES[letter][0] == process and len(parts) > 1):
                return None
            if _ESCAPES[letter][0] == process:
                program, process = b"P" + program + b"p", None  # the first one names it
            parts[-1] += program
    parts[-1] += _literal(source[pos:].encode())
    head = bytes(parts[0])
    if len(parts) > 1:
        if len(parts[1]) > 255:
            return None
        head += b"O" + bytes((len(parts[1]),)) + bytes(parts[1])
    return head + b"V"


def _value_program(letter: str, after: str) -> bytes | None:
    program = _VALUE_PROGRAMS.get(letter)
    run = _ENDING_RUN.get(letter)
    if program is None or (run is not None and (after in ("", "%") or after.encode() in run)):
        return None
    return program


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
