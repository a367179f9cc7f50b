"""The metadata database: engine set-up (SQLite WAL or PostgreSQL), migrations, transactions.

Query functions live beside this module (accounts, resources, audit) and return records, not rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dblogpack.errors import ConfigError
from dblogpack.secretbox import SecretBox

_MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "dblogpack_write"


def create_catalog_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:/// or postgresql+psycopg://) with our connection rules."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url is not a valid SQLAlchemy URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise ConfigError(f"database_url must be sqlite:/// or postgresql+psycopg://, got {backend}://")


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite so `begin` below decides how each one starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (once: it is a property of the file).

    Switching takes a lock that SQLite does not wait for: two processes creating the database
    together (two `serve` starts) saw "database is locked" from one of them. So the mode is
    read first, and a busy switch is retried within the busy timeout.
    """
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite_transaction(conn: Connection) -> None:
    # A writer takes the write lock up front (IMMEDIATE): a deferred transaction that reads and
    # then writes fails at once with SQLITE_BUSY when another writer slipped in, whatever
    # the busy timeout.
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def upgrade(engine: Engine) -> None:
    """Apply every pending Alembic migration; safe to run again, and from several processes."""
    # Imported here: alembic costs a quarter second, and only starting processes migrate.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.connect() as conn:
            write = conn.execution_options(**{_WRITE_OPTION: True})
            config.attributes["connection"] = write
            command.upgrade(config, "head")
            write.commit()
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot migrate the metadata database: {exc}") from exc


class Catalog:
    """Transactions on the metadata database, with the SecretBox that seals stored secrets."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may write: committed on success, rolled back on an exception.

        On SQLite it holds the database's single write lock from its first statement (BEGIN
        IMMEDIATE): writers queue (up to the busy timeout) instead of failing midway, and a
        read-then-update inside it (claiming a job) sees no concurrent writer.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def open_catalog(url: str, box: SecretBox, *, migrate: bool = True) -> Catalog:
    """The catalog at `url`, its migrations applied first unless `migrate` is False."""
    engine = create_catalog_engine(url)
    if migrate:
        upgrade(engine)
    return Catalog(engine, box)
