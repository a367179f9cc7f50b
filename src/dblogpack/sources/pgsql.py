"""The `postgres` source: a node's log files read agentlessly over its own SQL connection.

Lists with `pg_ls_logdir()`, reads with `pg_read_binary_file(path, offset, length, true)` and
asks `SHOW` for the logging settings. The GRANTs a non-superuser role needs: docs/sources.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from dblogpack.errors import SourceError
from dblogpack.model import LogFile
from dblogpack.sources.base import LoggingSettings, LogSource, oldest_first

LIST_SQL = b"SELECT name, size, extract(epoch FROM modification) FROM pg_ls_logdir()"
# One read is sent as rows of PIECE bytes: the server and libpq move a stream of moderate rows
# 2-3x faster than one huge bytea (8 MiB reads on loopback: ~200-280 vs ~70-120 MB/s).
PIECE = 256 * 1024
READ_SQL = (
    b"SELECT pg_read_binary_file(%(path)s, o, least(%(piece)s, %(end)s - o), true)"
    b" FROM generate_series(%(offset)s::bigint, %(end)s - 1, %(piece)s) AS o ORDER BY o"
)
SETTING_NAMES = ("log_destination", "log_line_prefix", "log_timezone", "log_directory")

# The least privileges a login role needs on PostgreSQL 15 (docs/sources.md says why each).
GRANT_SETTINGS = "GRANT pg_read_all_settings TO {role}"
GRANT_LIST = "GRANT EXECUTE ON FUNCTION pg_ls_logdir() TO {role}"
GRANT_READ = (
    "GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint, boolean) TO {role}"
)
REQUIRED_GRANTS = (GRANT_SETTINGS, GRANT_LIST, GRANT_READ)

# What to tell an operator when the role lacks a privilege, keyed by what was being done.
GRANT_ADVICE = {
    "list": GRANT_LIST.format(role="<role>") + " (or GRANT pg_monitor)",
    "read": GRANT_READ.format(role="<role>"),
    "settings": GRANT_SETTINGS.format(role="<role>") + " (or GRANT pg_monitor)",
}


class PostgresSource(LogSource):
    """A PostgreSQL instance's log files, through one lazily opened, autocommit connection.

    Safe to share between threads (calls are serialized); a forked child opens its own
    connection instead of talking on its parent's socket.
    """

    def __init__(
        self, dsn: str, *, connect_timeout: float = 10.0, statement_timeout: float = 60.0
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = max(2, round(connect_timeout))  # libpq's floor is 2 s
        self._statement_timeout_ms = max(1, round(statement_timeout * 1000))
        self._where = _describe(dsn)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._conn_pid = 0
        self._names: frozenset[str] = frozenset()
        self._log_directory: str | None = None

    # -- LogSource -------------------------------------------------------

    def list_files(self) -> list[LogFile]:
        rows = self._query("list", LIST_SQL)
        files = oldest_first(
            LogFile(name=str(name), size=int(size), mtime=float(mtime))
            for name, size, mtime in rows
        )
        self._names = frozenset(f.name for f in files)
        return files

    def read(self, name: str, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise SourceError(
                f"{self._where}: invalid range offset={offset} size={size} of {name!r}"
            )
        self._require_listed(name)
        if size == 0:
            return b""
        params = {
            "path": f"{self._logs_path()}/{name}",
            "offset": offset,
            "end": offset + size,
            "piece": PIECE,
        }
        pieces = [row[0] for row in self._query("read", READ_SQL, params, binary=True)]
        if not pieces or pieces[0] is None:
            raise SourceError(
                f"{self._where}: log file {name!r} vanished (rotated away or deleted)"
            )
        return b"".join(piece for piece in pieces if piece is not None)

    def check(self) -> None:
        """Connect, list, SHOW and read a byte of the newest file: every privilege packages need."""
        files = self.list_files()
        self.logging_settings()
        if files:
            self.read(files[-1].name, 0, 1)

    def logging_settings(self) -> LoggingSettings:
        values = {name: self._show(name) for name in SETTING_NAMES}
        self._log_directory = values["log_directory"]
        return LoggingSettings(**values)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._conn_pid == os.getpid():
                conn.close()

    def __getstate__(self) -> dict[str, Any]:
        # A connection cannot cross a process boundary; the copy opens its own.
        state = dict(vars(self))
        state.update(_conn=None, _conn_pid=0, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()

    # -- internals -------------------------------------------------------

    def _require_listed(self, name: str) -> None:
        if name in self._names:
            return
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise SourceError(f"{self._where}: {name!r} is not a log file name (paths are refused)")
        self.list_files()  # a file rotated in since the last listing is still a valid name
        if name not in self._names:
            raise SourceError(f"{self._where}: no log file named {name!r} in the log directory")

    def _logs_path(self) -> str:
        if self._log_directory is None:
            self._log_directory = self._show("log_directory")
        # Relative log_directory is relative to the data directory, which is also where
        # pg_read_binary_file resolves relative paths; an absolute one is allowed as is.
        return self._log_directory.rstrip("/") or "/"

    def _show(self, setting: str) -> str:
        rows = self._query("settings", b"SELECT current_setting(%s)", (setting,))
        return str(rows[0][0])

    def _query(
        self,
        doing: str,
        sql: bytes,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        binary: bool = False,
    ) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, params, binary=binary).fetchall()
            except psycopg.Error as exc:
                if conn.broken:
                    self._conn = None
                self._fail(doing, exc)

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is not None and self._conn_pid == os.getpid() and not self._conn.closed:
            return self._conn
        if self._conn is not None and self._conn_pid != os.getpid():
            # Inherited through fork: closing it here would end the parent's session.
            _INHERITED.append(self._conn)
        try:
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
                application_name="dblogpack",
                # statement_timeout bounds the server's work; keepalives bound a dead network.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            self._conn = None
            raise SourceError(f"cannot connect to {self._where}: {_first_line(exc)}") from exc
        self._conn_pid = os.getpid()
        return self._conn

    def _fail(self, doing: str, exc: psycopg.Error) -> NoReturn:
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            raise SourceError(
                f"{self._where}: permission denied ({_first_line(exc)}); {GRANT_ADVICE[doing]}"
            ) from exc
        if isinstance(exc, pg_errors.UndefinedFile) and doing == "list":
            raise SourceError(
                f"{self._where}: the server has no log directory ({_first_line(exc)}); "
                "turn logging_collector on so PostgreSQL writes log files"
            ) from exc
        if isinstance(exc, pg_errors.QueryCanceled):
            raise SourceError(f"{self._where}: {doing} timed out ({_first_line(exc)})") from exc
        raise SourceError(f"{self._where}: {doing} failed: {_first_line(exc)}") from exc


# Connections inherited by forked children are kept referenced so they are never
# finalized there (which would send a Terminate on the parent's socket).
_INHERITED: list[psycopg.Connection[tuple[Any, ...]]] = []


def _describe(dsn: str) -> str:
    """`PostgreSQL user@host:port/db`, never the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SourceError(f"invalid PostgreSQL DSN: {_first_line(exc)}") from exc
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = parts.get("user") or "?"
    dbname = parts.get("dbname") or user
    return f"PostgreSQL {user}@{host}:{port}/{dbname}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
