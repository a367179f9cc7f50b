"""The demo's PostgreSQL 15 cluster: created in `<data_dir>/demo/pg`, logging like a managed
database (collector, stderr + csvlog + jsonlog, slow statements, rotation), run as `postgres`
when we are root (PostgreSQL refuses root), stopped with the process that started it.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql as pgsql

from dblogpack.errors import ConfigError

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"
READER_ROLE = "dblogpack_reader"
LOG_LINE_PREFIX = "%m [%p] %q%u@%d "
CONNECT_TIMEOUT_S = 10

# Managed services log like this: the collector writes log/, statements slower than 200 ms are
# logged with their duration, files rotate by size so there are several. One destination only:
# csvlog/jsonlog would repeat every entry in files that a package of "every file" takes too.
MANAGED_LOGGING = {
    "logging_collector": "on",
    "log_destination": "stderr",
    "log_directory": "log",
    "log_filename": "postgresql-%Y-%m-%d_%H%M%S.log",
    "log_rotation_size": "1MB",
    "log_rotation_age": "1d",
    "log_min_duration_statement": "200ms",
    "log_line_prefix": LOG_LINE_PREFIX,
    "log_timezone": "UTC",
    "log_min_messages": "warning",
    "log_min_error_statement": "error",
    "log_connections": "off",
    "log_checkpoints": "off",
}
# A demo needs no durability; it must stay small beside the user's own work.
SMALL_FOOTPRINT = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "20",
    "max_wal_size": "128MB",
}


class DemoPgError(ConfigError):
    """The demo PostgreSQL cluster could not be created, started or stopped."""


@dataclass(frozen=True, slots=True)
class PgCredentials:
    """What the demo remembers between starts (saved 0600 in the demo directory)."""

    port: int
    superuser_password: str
    reader_password: str

    @classmethod
    def fresh(cls) -> PgCredentials:
        return cls(free_port(), secrets.token_hex(16), secrets.token_hex(16))


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(argv: Sequence[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if _running_as_root() else list(argv)


def _quote_setting(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def open_path_to_server_user(data_dir: Path, demo_dir: Path) -> None:
    """Let the `postgres` user reach the cluster below our private data directory.

    Only its group gets search permission (0710 and group postgres): it can walk to
    demo/pg but list nothing, and nobody else gains anything.
    """
    if not _running_as_root():
        return
    gid = grp.getgrnam(SERVER_USER).gr_gid
    for path in (data_dir, demo_dir):
        os.chown(path, -1, gid)
        os.chmod(path, 0o710)
    for ancestor in data_dir.parents:
        if not _server_user_may_enter(ancestor, gid):
            raise DemoPgError(f"the {SERVER_USER} user cannot enter {ancestor}, above the data "
                              f"directory: the demo PostgreSQL runs as {SERVER_USER}; choose "
                              f"another --data-dir or `chmod o+x {ancestor}`")


def _server_user_may_enter(path: Path, gid: int) -> bool:
    info = path.stat()
    uid = pwd.getpwnam(SERVER_USER).pw_uid
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


class DemoPgCluster:
    """One PostgreSQL 15 cluster under `base_dir` (`data/`, `data/log/`, `pg_ctl.log`)."""

    def __init__(self, base_dir: Path, credentials: PgCredentials) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.server_log = base_dir / "pg_ctl.log"
        self.credentials = credentials
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.credentials.port

    @property
    def log_dir(self) -> Path:
        return self.data_dir / MANAGED_LOGGING["log_directory"]

    def start(self) -> None:
        """Create the cluster on first use, then start it and wait until it accepts connections."""
        if not PG_BIN.joinpath("pg_ctl").exists():
            raise DemoPgError(f"PostgreSQL 15 is not installed ({PG_BIN} is missing): run "
                              "`make install` or apt-get install postgresql-15")
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._stop_leftover_server()
        if port_in_use(self.port):
            raise DemoPgError(f"port {self.port} of the demo PostgreSQL is taken by another "
                              f"program: free it, or delete {self.base_dir.parent} to start over")
        self._write_config()
        # Watch from before the start: a serve killed while pg_ctl waits leaves no server either.
        self._watchdog = self._start_watchdog()
        try:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.server_log))
        except DemoPgError:
            self._stop_watchdog()
            raise

    def stop(self) -> None:
        """Fast shutdown; the files stay for the next start."""
        if self._watchdog is None:
            return
        self._stop_watchdog()
        self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")

    # -- roles and addresses -------------------------------------------------------------

    def dsn(self, user: str, password: str, dbname: str = "postgres") -> str:
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        return self.dsn(SERVER_USER, self.credentials.superuser_password, dbname)

    def reader_dsn(self) -> str:
        """The least-privileged role dblogpack reads the logs with (docs/sources.md)."""
        return self.dsn(READER_ROLE, self.credentials.reader_password)

    def ensure_reader_role(self, grants: Sequence[str]) -> None:
        """Create the log-reading role with exactly `grants` (`{role}` filled in), if missing."""
        ident = pgsql.Identifier(READER_ROLE)
        password = pgsql.Literal(self.credentials.reader_password)
        try:
            with psycopg.connect(self.superuser_dsn(), autocommit=True,
                                 connect_timeout=CONNECT_TIMEOUT_S) as conn:
                exists = conn.execute(b"SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      [READER_ROLE]).fetchone()
                if exists is None:
                    conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        ident, password))
                    for grant in grants:
                        conn.execute(grant.format(role=ident.as_string(conn)).encode())
        except psycopg.Error as exc:
            raise DemoPgError(f"cannot create the demo's {READER_ROLE} role: {exc}") from exc

    # -- internals ------------------------------------------------------------------------

    def _initdb(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster of an interrupted first start
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.credentials.superuser_password + "\n")
        for path in (self.base_dir, pwfile):
            self._hand_to_server_user(path)
        try:
            self._run([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER,
                       "-E", "UTF8", "--locale=C", "--no-sync", "--auth-local=peer",
                       "--auth-host=scram-sha-256", f"--pwfile={pwfile}"], what="initdb")
        finally:
            pwfile.unlink()

    def _hand_to_server_user(self, path: Path) -> None:
        if _running_as_root():
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_config(self) -> None:
        conf = {**SMALL_FOOTPRINT, **MANAGED_LOGGING, "listen_addresses": "127.0.0.1",
                "port": str(self.port), "unix_socket_directories": ""}
        # A file of our own, included last, so restarts rewrite it instead of appending.
        extra = self.data_dir / "dblogpack_demo.conf"
        extra.write_text("".join(f"{k} = {_quote_setting(v)}\n" for k, v in conf.items()))
        self._hand_to_server_user(extra)
        main_conf = self.data_dir / "postgresql.conf"
        include = "include 'dblogpack_demo.conf'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write(include)

    def _stop_leftover_server(self) -> None:
        # A serve killed with SIGKILL before its watchdog acted may have left the server up.
        if (self.data_dir / "postmaster.pid").exists():
            status = subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "status", "-D",
                                                     str(self.data_dir)]),
                                    capture_output=True, check=False, timeout=30)
            if status.returncode == 0:
                self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")

    def _pg_ctl(self, command: str, *options: str) -> None:
        argv = [str(PG_BIN / "pg_ctl"), command, "-D", str(self.data_dir), *options]
        self._run(argv, what=f"pg_ctl {command}")

    def _run(self, argv: list[str], *, what: str) -> None:
        try:
            proc = subprocess.run(_as_server_user(argv), capture_output=True, text=True,
                                  timeout=120, check=False, cwd=self.base_dir)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DemoPgError(f"demo PostgreSQL: {what} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise DemoPgError(f"demo PostgreSQL: {what} failed ({proc.returncode}): "
                              f"{proc.stderr.strip() or proc.stdout.strip()}; "
                              f"see {self.server_log}")

    def _start_watchdog(self) -> subprocess.Popen[bytes]:
        """A detached shell that stops the server if this process dies without stopping it."""
        stop = " ".join(_as_server_user(
            [str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", '"$1"']))
        script = f'while kill -0 "$0" 2>/dev/null; do sleep 1; done; {stop}'
        return subprocess.Popen(
            ["sh", "-c", script, str(os.getpid()), str(self.data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
