"""A throwaway PostgreSQL 15 cluster for tests: initdb, start, connect, stop.

Runs the server as the `postgres` OS user when we are root (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql as pgsql

from dblogpack.demo.pgcluster import free_port

PG_BIN = Path(os.environ.get("DBLOGPACK_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"

# Durability is worthless for a throwaway cluster; speed and a small footprint are not.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "40",
    "max_wal_size": "256MB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
}


class PgClusterError(RuntimeError):
    """The cluster could not be created, started or stopped; the message quotes the server."""


def _as_server_user(argv: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return list(argv)


def _hand_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user=SUPERUSER, group=SUPERUSER)


def _quote_setting(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class PgCluster:
    """One PostgreSQL cluster under `base_dir` (created; it must be reachable by the postgres user).

    `settings` go into postgresql.conf after the fast defaults and may override them.
    TCP on 127.0.0.1 uses scram-sha-256 passwords; the unix socket lives in base_dir.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        settings: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.server_log = self.base_dir / "pg_ctl.log"
        self.port = port or free_port()
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.superuser_password = secrets.token_hex(12)
        self.running = False
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------

    def start(self) -> PgCluster:
        """Create the cluster on first use, then start it and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_config()
        # Watch from before the start: a run killed while pg_ctl waits leaves no server either.
        self._watchdog = self._start_watchdog()
        start = [str(PG_BIN / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
                 "-l", str(self.server_log)]  # fmt: skip
        try:
            self._run_server_tool(start, what="start")
        except PgClusterError:
            self._stop_watchdog()
            raise
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown); the files stay until `destroy()`."""
        if not self.running:
            return
        self._stop_watchdog()
        self._run_server_tool(
            [
                str(PG_BIN / "pg_ctl"),
                "stop",
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
            ],
            what="stop",
        )
        self.running = False

    def destroy(self) -> None:
        """Stop the server and delete everything under base_dir."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=False)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- addresses -------------------------------------------------------

    def dsn(
        self, user: str = SUPERUSER, dbname: str = "postgres", password: str | None = None
    ) -> str:
        """A libpq URL over TCP; the superuser's password is filled in when none is given."""
        if password is None and user == SUPERUSER:
            password = self.superuser_password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def sqlalchemy_url(
        self, user: str = SUPERUSER, dbname: str = "postgres", password: str | None = None
    ) -> str:
        """The same address for SQLAlchemy 2 with the psycopg 3 driver."""
        return self.dsn(user, dbname, password).replace("postgresql://", "postgresql+psycopg://", 1)

    @property
    def log_dir(self) -> Path:
        """Where the logging collector writes (log_directory, relative to the data directory)."""
        return self.data_dir / self.settings.get("log_directory", "log")

    # -- SQL helpers -----------------------------------------------------

    def execute(
        self, sql: str, params: Sequence[Any] | None = None, *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement as superuser in autocommit; the rows it returned (empty if none)."""
        with psycopg.connect(self.dsn(dbname=dbname), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description is not None else []

    def psql(self, sql: str, *, dbname: str = "postgres") -> str:
        """Run SQL with psql over the unix socket; its stdout (unaligned, tuples only)."""
        proc = subprocess.run(
            _as_server_user(
                [
                    str(PG_BIN / "psql"),
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    str(self.socket_dir),
                    "-p",
                    str(self.port),
                    "-d",
                    dbname,
                    "-c",
                    sql,
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise PgClusterError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def create_role(self, name: str, password: str, *grants: str) -> str:
        """Create a LOGIN role (not superuser) with `grants` applied; its TCP DSN."""
        ident = pgsql.Identifier(name)
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, pgsql.Literal(password))
            )
            for grant in grants:
                conn.execute(grant.format(role=ident.as_string(conn)).encode())
        return self.dsn(user=name, password=password)

    # -- internals -------------------------------------------------------

    def _start_watchdog(self) -> subprocess.Popen[bytes]:
        """A detached shell that stops the server and removes base_dir if this process dies.

        A test run killed by a timeout or SIGKILL runs no fixture teardown; without this the
        server would outlive it.
        """
        stop = " ".join(
            _as_server_user([str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", '"$1/data"'])
        )
        script = f'while kill -0 "$0" 2>/dev/null; do sleep 1; done; {stop}; rm -rf "$1"'
        return subprocess.Popen(
            ["sh", "-c", script, str(os.getpid()), str(self.base_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        for path in (self.base_dir, self.socket_dir, pwfile):
            _hand_to_server_user(path)
        self._run_server_tool(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            what="initdb",
        )
        pwfile.unlink()

    def _write_config(self) -> None:
        conf = {
            **self.settings,
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
        }
        lines = [f"{name} = {_quote_setting(value)}" for name, value in conf.items()]
        # A file of our own, included last, so restarts rewrite it instead of appending forever.
        extra = self.data_dir / "dblogpack_test.conf"
        extra.write_text("\n".join(lines) + "\n")
        _hand_to_server_user(extra)
        main_conf = self.data_dir / "postgresql.conf"
        include = "include 'dblogpack_test.conf'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write(include)

    def _run_server_tool(self, argv: list[str], *, what: str) -> None:
        try:
            proc = subprocess.run(
                _as_server_user(argv),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=self.base_dir,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            detail = f"PostgreSQL {what} could not run: {exc}\n{self._diagnostics()}"
            raise PgClusterError(detail) from exc
        if proc.returncode != 0:
            raise PgClusterError(
                f"PostgreSQL {what} failed ({proc.returncode}): {proc.stdout.strip()} "
                f"{proc.stderr.strip()}\n{self._diagnostics()}"
            )

    def _diagnostics(self) -> str:
        parts = [f"--- {self.server_log} ---", _tail(self.server_log)]
        if self.log_dir.is_dir():
            newest = sorted(self.log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)[-1:]
            for path in newest:
                parts += [f"--- {path} ---", _tail(path)]
        return "\n".join(parts)


DEFAULT_LOG_LINE_PREFIX = "%m [%p] %q%u@%d "
PGBADGER_LOG_LINE_PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "


def managed_logging_settings(
    *,
    log_line_prefix: str = DEFAULT_LOG_LINE_PREFIX,
    log_timezone: str = "UTC",
    log_min_duration_statement: str = "100ms",
    log_rotation_size: str = "4kB",
) -> dict[str, str]:
    """Logging the way a managed database has it: collector, three destinations, rotation."""
    return {
        "logging_collector": "on",
        "log_destination": "stderr,csvlog,jsonlog",
        "log_directory": "log",
        "log_filename": "postgresql-%Y-%m-%d_%H%M%S.log",
        "log_rotation_size": log_rotation_size,
        "log_rotation_age": "0",
        "log_min_duration_statement": log_min_duration_statement,
        "log_line_prefix": log_line_prefix,
        "log_timezone": log_timezone,
        "log_min_messages": "warning",
        "log_min_error_statement": "error",
        "log_checkpoints": "off",
    }
