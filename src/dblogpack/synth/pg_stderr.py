"""PostgreSQL stderr log with any `log_line_prefix`, as the server writes it.

Every line of an entry carries the prefix (the DETAIL/HINT/STATEMENT lines included); newlines
inside a message become continuation lines starting with a TAB. Non-session processes
(checkpointer, autovacuum launcher) print nothing from `%q` on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dblogpack.synth.generate import EntryTemplate
from dblogpack.synth.record import ERROR, SLOW
from dblogpack.synth.timestamps import MinuteCachedStamp, MinuteParts, local, zone

_ESCAPE = re.compile(r"%(-?\d+)?([a-zA-Z%])")
_TIME_ESCAPES = {"m", "t", "n"}
_SQL = (
    "SELECT o.id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id"
    " WHERE c.region = '{v}'",
    "UPDATE inventory SET qty = qty - 1 WHERE sku = 'SKU-{v}'",
    "INSERT INTO events (kind, payload) VALUES ('click', '{{\"page\": {v}}}')",
    "SELECT count(*) FROM sessions WHERE started_at > now() - interval '{v} minutes'",
    "DELETE FROM sessions WHERE id = {v}",
)


@dataclass(frozen=True, slots=True)
class Session:
    """The backend a line comes from; `None` user means a background process (no `%q` part)."""

    pid: int
    user: str | None = None
    database: str | None = None
    application: str = ""
    host: str = ""
    port: int = 0
    backend_type: str = "client backend"


class PgStderrFormat:
    """stderr output for `log_line_prefix` (exactly one of %m, %t, %n) in IANA zone `timezone`."""

    name = "pg-stderr"

    def __init__(self, log_line_prefix: str = "%m [%p] ", timezone: str | None = None) -> None:
        time_escapes = [
            m.group(2) for m in _ESCAPE.finditer(log_line_prefix) if m.group(2) in _TIME_ESCAPES
        ]
        if len(time_escapes) != 1:
            raise ValueError("log_line_prefix must hold exactly one of %m, %t, %n")
        self.prefix = log_line_prefix
        self.tz = zone(timezone)
        self.time_escape = time_escapes[0]
        self.precision_ms = 1000 if self.time_escape == "t" else 1
        self.timestamp: Callable[[int], bytes] = (
            _epoch_stamp
            if self.time_escape == "n"
            else MinuteCachedStamp(self._parts, millis=self.time_escape == "m")
        )

    def _parts(self, minute: int) -> MinuteParts:
        moment = local(minute, self.tz)
        zone_name = (moment.tzname() or "UTC").encode()
        return moment.strftime("%Y-%m-%d %H:%M:").encode(), b" " + zone_name

    def rotated_name(self, live: Path, ts_ms: int) -> str:
        # PostgreSQL names files by log_filename's strftime pattern (default below), never renames.
        return local(ts_ms // 1000, self.tz).strftime("postgresql-%Y-%m-%d_%H%M%S.log")

    def render_prefix(self, session: Session, sqlstate: str) -> tuple[str, str]:
        """The prefix split around its timestamp escape."""
        parts = ["", ""]
        side = 0
        for literal, escape in _split(self.prefix):
            if escape is None:
                parts[side] += literal
                continue
            width, letter = escape
            if letter in _TIME_ESCAPES:
                side = 1
                continue
            if letter == "q":
                if session.user is None:
                    break
                continue
            parts[side] += _pad(_field(letter, session, sqlstate), width)
        return parts[0], parts[1]

    def entry(
        self,
        session: Session,
        lines: list[tuple[str, str]],
        flags: int = 0,
        duration: float = float("nan"),
        sqlstate: str = "00000",
        weight: float = 1.0,
    ) -> EntryTemplate:
        """An entry of (severity, message) lines; messages may span lines (TAB continuations)."""
        before, after = self.render_prefix(session, sqlstate)
        texts = [
            f"{severity}:  {message.replace(chr(10), chr(10) + chr(9))}\n"
            for severity, message in lines
        ]
        segments = [before, *(after + text + before for text in texts[:-1]), after + texts[-1]]
        return EntryTemplate(tuple(s.encode() for s in segments), flags, duration, weight)

    def templates(self, rng: random.Random) -> list[EntryTemplate]:
        pool: list[EntryTemplate] = []
        for _ in range(300):
            pool.append(self._slow(rng, _client(rng)))
        for _ in range(100):
            pool.extend(self._noise(rng, _client(rng)))
        for _ in range(40):
            pool.extend(self._problems(rng, _client(rng)))
        return pool

    def _slow(self, rng: random.Random, session: Session) -> EntryTemplate:
        millis = round(100.0 + rng.lognormvariate(4.5, 1.2), 3)
        sql = rng.choice(_SQL).format(v=rng.randint(1, 99999))
        shape = rng.random()
        if shape < 0.6:
            lines = [("LOG", f"duration: {millis:.3f} ms  statement: {sql}")]
        elif shape < 0.8:
            # Extended protocol: the bind parameters follow on a DETAIL line of the same entry.
            lines = [
                (
                    "LOG",
                    f"duration: {millis:.3f} ms  execute S_{rng.randint(1, 9)}: "
                    + sql.replace("'", "").replace(str(rng.randint(0, 9)), "$1", 1),
                ),
                ("DETAIL", f"parameters: $1 = '{rng.randint(1, 999)}'"),
            ]
        elif shape < 0.93:
            multi_line = sql.replace(" FROM ", "\n  FROM ").replace(" WHERE ", "\n WHERE ")
            lines = [("LOG", f"duration: {millis:.3f} ms  statement: {multi_line}")]
        else:
            plan = (
                f"Query Text: {sql}\nSeq Scan on orders"
                f"  (cost=0.00..{millis * 10:.2f} rows=1000 width=8)"
                f" (actual time=0.010..{millis:.3f} rows=998 loops=1)\n  Filter: (total > 100)"
            )
            lines = [("LOG", f"duration: {millis:.3f} ms  plan:\n{plan}")]
        return self.entry(session, lines, SLOW, millis)

    def _noise(self, rng: random.Random, session: Session) -> list[EntryTemplate]:
        background = Session(rng.randint(100, 999), backend_type="checkpointer")
        unknown = Session(session.pid, "[unknown]", "[unknown]", "", session.host, session.port)
        written = rng.randint(10, 5000)
        return [
            self.entry(
                unknown, [("LOG", f"connection received: host={session.host} port={session.port}")]
            ),
            self.entry(
                session,
                [
                    (
                        "LOG",
                        f"connection authorized: user={session.user}"
                        f" database={session.database} application_name={session.application}",
                    )
                ],
            ),
            self.entry(
                session,
                [
                    (
                        "LOG",
                        f"disconnection: session time: 0:00:{rng.randint(10, 59)}.123"
                        f" user={session.user} database={session.database}"
                        f" host={session.host} port={session.port}",
                    )
                ],
            ),
            # Logged by log_statement: a LOG that is not a duration, so not slow.
            self.entry(session, [("LOG", "statement: BEGIN")]),
            # Checkpoints come every few minutes, connections all the time.
            self.entry(background, [("LOG", "checkpoint starting: time")], weight=0.02),
            self.entry(
                background,
                [
                    (
                        "LOG",
                        f"checkpoint complete: wrote {written} buffers (0.8%);"
                        " 0 WAL file(s) added, 0 removed, 1 recycled; write=12.345 s,"
                        " sync=0.012 s, total=12.400 s; sync files=10, longest=0.005 s,"
                        " average=0.001 s; distance=1024 kB, estimate=2048 kB",
                    )
                ],
                weight=0.02,
            ),
            self.entry(
                Session(session.pid, backend_type="autovacuum worker"),
                [
                    (
                        "LOG",
                        'automatic vacuum of table "shop.public.orders": index scans: 1\n'
                        f"pages: 0 removed, {written} remain, 0 skipped due to pins,"
                        " 0 skipped frozen\n"
                        "tuples: 120 removed, 9000 remain, 0 are dead but not yet removable\n"
                        "system usage: CPU: user: 0.01 s, system: 0.00 s, elapsed: 0.05 s",
                    )
                ],
                weight=0.1,
            ),
        ]

    def _problems(self, rng: random.Random, session: Session) -> list[EntryTemplate]:
        key = rng.randint(1, 99999)
        sql = rng.choice(_SQL).format(v=key)
        return [
            self.entry(
                session,
                [
                    ("ERROR", 'duplicate key value violates unique constraint "orders_pkey"'),
                    ("DETAIL", f"Key (id)=({key}) already exists."),
                    ("STATEMENT", f"INSERT INTO orders (id, total) VALUES ({key}, 10)"),
                ],
                ERROR,
                sqlstate="23505",
            ),
            self.entry(
                session,
                [
                    ("ERROR", 'relation "order" does not exist at character 15'),
                    ("STATEMENT", "SELECT * FROM order WHERE id = 1"),
                ],
                ERROR,
                sqlstate="42P01",
            ),
            self.entry(
                session,
                [("ERROR", "canceling statement due to statement timeout"), ("STATEMENT", sql)],
                ERROR,
                sqlstate="57014",
            ),
            self.entry(
                session,
                [
                    ("ERROR", "deadlock detected"),
                    (
                        "DETAIL",
                        f"Process {session.pid} waits for ShareLock on transaction {key};"
                        " blocked by process 4242.\nProcess 4242 waits for ShareLock on"
                        f" transaction {key + 1}; blocked by process {session.pid}.",
                    ),
                    ("HINT", "See server log for query details."),
                    ("CONTEXT", f'while updating tuple (0,{key % 100}) in relation "inventory"'),
                    ("STATEMENT", sql),
                ],
                ERROR,
                sqlstate="40P01",
            ),
            self.entry(
                session,
                [("WARNING", "there is no transaction in progress")],
                ERROR,
                sqlstate="25P01",
            ),
            self.entry(
                session,
                [
                    ("FATAL", f'password authentication failed for user "{session.user}"'),
                    (
                        "DETAIL",
                        'Connection matched pg_hba.conf line 99: "host all all 0.0.0.0/0'
                        ' scram-sha-256"',
                    ),
                ],
                ERROR,
                sqlstate="28P01",
            ),
            self.entry(
                session,
                [("FATAL", "terminating connection due to administrator command")],
                ERROR,
                sqlstate="57P01",
            ),
        ]


def _client(rng: random.Random) -> Session:
    return Session(
        pid=rng.randint(1000, 99999),
        user=rng.choice(("app", "reporting", "postgres")),
        database=rng.choice(("shop", "analytics")),
        application=rng.choice(("psql", "orders-api", "")),
        host=f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        port=rng.randint(32768, 60999),
    )


def _epoch_stamp(ts_ms: int) -> bytes:
    # %n: unix seconds with milliseconds.
    return f"{ts_ms // 1000}.{ts_ms % 1000:03d}".encode()


def _split(prefix: str) -> list[tuple[str, tuple[str, str] | None]]:
    pieces: list[tuple[str, tuple[str, str] | None]] = []
    pos = 0
    for match in _ESCAPE.finditer(prefix):
        if match.start() > pos:
            pieces.append((prefix[pos : match.start()], None))
        if match.group(2) == "%":
            pieces.append(("%", None))
        else:
            pieces.append(("", (match.group(1) or "", match.group(2))))
        pos = match.end()
    if pos < len(prefix):
        pieces.append((prefix[pos:], None))
    return pieces


def _pad(text: str, width: str) -> str:
    if not width:
        return text
    size = int(width)
    return text.ljust(-size) if size < 0 else text.rjust(size)


def _field(letter: str, session: Session, sqlstate: str) -> str:
    values = {
        "p": str(session.pid),
        "P": "",
        "u": session.user or "",
        "d": session.database or "",
        "a": session.application,
        "h": session.host,
        "r": f"{session.host}({session.port})" if session.host else "",
        "e": sqlstate,
        "c": f"6632b4c0.{session.pid:x}",
        "l": "1",
        "s": "2024-05-01 12:00:00 UTC",
        "v": f"3/{session.pid % 1000}",
        "x": "0",
        "i": "idle" if session.user else "",
        "b": session.backend_type,
        "Q": "0",
    }
    if letter not in values:
        raise ValueError(f"log_line_prefix escape %{letter} is not supported by the generator")
    return values[letter]
