"""The `ssh` log source: a node's log files over SFTP with key-based auth, read by byte ranges.

asyncssh runs on one shared event-loop thread; this module gives it the synchronous face of
`LogSource`, a timeout on every network step, and errors that name the host and the cause.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import posixpath
import stat
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncssh

from dblogpack.errors import FileVanishedError, SourceError
from dblogpack.model import LogFile
from dblogpack.sources.base import LogSource, oldest_first

log = logging.getLogger(__name__)

T = TypeVar("T")

# One read call is split into spans so that `timeout` bounds the wait for each span's
# progress rather than for a whole (possibly huge) range; inside a span asyncssh keeps
# up to MAX_REQUESTS block reads in flight, which is what makes SFTP fast.
READ_SPAN = 8 * 1024 * 1024
BLOCK_SIZE = 256 * 1024
MAX_REQUESTS = 16  # 4 MiB in flight: more only adds Python overhead on a loopback-fast link

# AES-GCM runs in one C call per packet, about twice as fast here as asyncssh's first choice,
# chacha20-poly1305; the rest of asyncssh's defaults stay as fallbacks.
_CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"] + [
    name.decode()
    for name in asyncssh.encryption.get_default_encryption_algs()
    if b"-gcm@" not in name
]

_VANISHED = "file vanished (no such file on the server: it was rotated or removed)"
_NO_DIR = "no such directory on the server (check LogDir)"

# Errors meaning an established connection went away: reconnect once and retry.
_DROPPED: tuple[type[BaseException], ...] = (
    asyncssh.ConnectionLost,
    asyncssh.SFTPConnectionLost,
    asyncssh.ChannelOpenError,
    BrokenPipeError,
    ConnectionResetError,
)


class _LoopThread:
    """A private asyncio loop in a daemon thread, shared by every SftpSource of a process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="dblogpack-sftp", daemon=True).start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            # The coroutine's own asyncio timeouts should have fired first; never hang anyway.
            future.cancel()
            raise


_loop_guard = threading.Lock()
_shared_loop: _LoopThread | None = None


def _loop() -> _LoopThread:
    """The shared loop thread, recreated after a fork (threads do not survive one)."""
    global _shared_loop
    with _loop_guard:
        if _shared_loop is None or _shared_loop.pid != os.getpid():
            _shared_loop = _LoopThread()
        return _shared_loop


def _import_private_key(pem: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_private_key(pem)
    except asyncssh.KeyImportError as exc:
        raise SourceError(
            f"the SSH private key cannot be read ({exc}); give an unencrypted OpenSSH or PEM key"
        ) from exc


_TrustedKeys = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]


def _known_hosts(known_host_key: str | None) -> _TrustedKeys | None:
    """asyncssh's known_hosts argument: trust exactly this key, or (None) any key.

    Accepts a `.pub` line (`ssh-ed25519 AAAA… comment`) or an `ssh-keyscan` /
    known_hosts line (`host ssh-ed25519 AAAA…`), whichever the operator copied.
    """
    if known_host_key is None:
        return None
    line = known_host_key.strip()
    fields = line.split()
    candidates = [line, " ".join(fields[1:])] if len(fields) >= 3 else [line]
    for candidate in candidates:
        try:
            # (trusted host keys, trusted CA keys, revoked keys)
            return ([asyncssh.import_public_key(candidate)], [], [])
        except asyncssh.KeyImportError as exc:
            error = exc
    raise SourceError(
        f"SSHKnownHostKey is not an OpenSSH public key line ({error}); "
        "copy it from the host's /etc/ssh/ssh_host_ed25519_key.pub or from ssh-keyscan"
    ) from error


def _check_pattern(pattern: str) -> str:
    pattern = pattern or "*"  # as the dir source: no pattern means every file
    if "/" in pattern or pattern in (".", ".."):
        raise SourceError(f"log pattern {pattern!r} must be a file-name glob such as 'mongod.log*'")
    return pattern


class SftpSource(LogSource):
    """Log files of `log_dir` matching the glob `pattern` on `host`, read over SFTP.

    `known_host_key` is the server's OpenSSH public key line; when None the host key is not
    checked, so a man-in-the-middle could serve forged logs (and learn nothing secret: the
    private key never leaves this process). One connection is kept and re-opened if dropped.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        private_key_pem: str,
        known_host_key: str | None,
        log_dir: str,
        pattern: str,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.log_dir = log_dir
        self.pattern = _check_pattern(pattern)
        self.timeout = timeout
        self._key = _import_private_key(private_key_pem)
        self._known_hosts = _known_hosts(known_host_key)
        self._forget_connection()

    def _forget_connection(self) -> None:
        """Start afresh (also in a forked child: the parent's connection is not ours to use)."""
        self._pid = os.getpid()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connecting = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SftpSource({self.user}@{self.host}:{self.port}{self.log_dir}/{self.pattern})"

    @property
    def _where(self) -> str:
        return f"ssh {self.user}@{self.host}:{self.port}"

    # -- the LogSource interface ---------------------------------------------------------

    def list_files(self) -> list[LogFile]:
        files = self._run(self._call(self._list), what=f"listing {self.log_dir}", missing=_NO_DIR)
        return oldest_first(files)

    def read(self, name: str, offset: int, size: int) -> bytes:
        path = self._path_of(name)
        if offset < 0 or size < 0:
            raise SourceError(f"{self._where}: invalid range offset={offset} size={size}")
        if size == 0:
            return b""
        spans = -(-size // READ_SPAN)
        return self._run(
            self._call(lambda sftp: self._read(sftp, path, offset, size)), what=name, steps=spans
        )

    def check(self) -> None:
        self._run(self._call(self._list), what=f"listing {self.log_dir}", missing=_NO_DIR)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._run(self._disconnect(), what="closing")

    # -- names ---------------------------------------------------------------------------

    def _path_of(self, name: str) -> str:
        """The remote path of a listed name; anything that could leave log_dir is refused."""
        if (
            not name
            or "/" in name
            or "\\" in name
            or "\x00" in name
            or name in (".", "..")
            or not fnmatch.fnmatchcase(name, self.pattern)
        ):
            raise SourceError(
                f"{self._where}: {name!r} is not a log file name of {self.log_dir} "
                f"matching {self.pattern!r}"
            )
        return posixpath.join(self.log_dir, name)

    # -- the async side (runs on the loop thread) ----------------------------------------

    def _run(
        self, coro: Coroutine[Any, Any, T], what: str, missing: str | None = None, steps: int = 1
    ) -> T:
        """Run `coro` on the loop thread; `missing` words a "no such file" that is not a vanished
        log file (a missing directory)."""
        # Connecting, opening and each step of the operation have their own timeout inside;
        # this outer one only guards against a bug there, and must never cut a working read.
        backstop = (3 + steps) * self.timeout + 5
        if self._pid != os.getpid():
            self._forget_connection()
        try:
            return _loop().run(coro, timeout=backstop)
        except SourceError:
            raise
        except asyncssh.SFTPNoSuchFile as exc:
            if missing is not None:
                raise SourceError(f"{self._where}: {what}: {missing}") from exc
            raise FileVanishedError(f"{self._where}: {what}: {_VANISHED}") from exc
        except Exception as exc:
            raise SourceError(f"{self._where}: {what}: {_describe(exc, self)}") from exc

    async def _call(self, operation: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        reused = self._sftp is not None and self._conn is not None and not self._conn.is_closed()
        sftp = await self._client()
        try:
            return await operation(sftp)
        except _DROPPED:
            if not reused:
                raise
            log.info("%s: connection dropped, reconnecting", self._where)
            await self._disconnect()
            return await operation(await self._client())

    async def _client(self) -> asyncssh.SFTPClient:
        async with self._connecting:
            if self._sftp is None or self._conn is None or self._conn.is_closed():
                await self._disconnect()
                self._conn, self._sftp = await self._connect()
            return self._sftp

    async def _connect(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                self.host,
                self.port,
                username=self.user,
                client_keys=[self._key],
                known_hosts=self._known_hosts,
                # Only what was registered counts: no ~/.ssh/config, agent or password.
                config=None,
                agent_path=None,
                password=None,
                preferred_auth="publickey",
                encryption_algs=_CIPHERS,
                connect_timeout=self.timeout,
                keepalive_interval=max(self.timeout, 15.0),
            ),
            timeout=self.timeout + 1,
        )
        try:
            sftp = await asyncio.wait_for(conn.start_sftp_client(), timeout=self.timeout)
        except BaseException:
            conn.close()
            raise
        return conn, sftp

    async def _disconnect(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is None:
            return
        conn.close()
        try:
            await asyncio.wait_for(conn.wait_closed(), timeout=self.timeout)
        except TimeoutError:
            log.warning("%s: connection did not close within %ss", self._where, self.timeout)

    async def _list(self, sftp: asyncssh.SFTPClient) -> list[LogFile]:
        entries = await asyncio.wait_for(sftp.readdir(self.log_dir), timeout=self.timeout)
        files = []
        for entry in entries:
            name = str(entry.filename)
            if not fnmatch.fnmatchcase(name, self.pattern) or name in (".", ".."):
                continue
            attrs = entry.attrs
            if attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                # A symlinked log (e.g. a "current" link) counts when it points at a file.
                attrs = await asyncio.wait_for(
                    sftp.stat(posixpath.join(self.log_dir, name)), timeout=self.timeout
                )
            if _is_regular(attrs):
                files.append(LogFile(name=name, size=attrs.size or 0, mtime=_mtime(attrs)))
        return files

    async def _read(self, sftp: asyncssh.SFTPClient, path: str, offset: int, size: int) -> bytes:
        file = await asyncio.wait_for(
            sftp.open(path, "rb", block_size=BLOCK_SIZE, max_requests=MAX_REQUESTS),
            timeout=self.timeout,
        )
        try:
            return await self._read_spans(file, offset, size)
        finally:
            await asyncio.wait_for(file.close(), timeout=self.timeout)

    async def _read_spans(self, file: asyncssh.SFTPClientFile, offset: int, size: int) -> bytes:
        parts: list[bytes] = []
        done = 0
        while done < size:
            want = min(READ_SPAN, size - done)
            data = await asyncio.wait_for(file.read(want, offset + done), timeout=self.timeout)
            assert isinstance(data, bytes)  # opened in binary mode
            parts.append(data)
            done += len(data)
            if len(data) < want:
                break  # end of file
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _is_regular(attrs: asyncssh.SFTPAttrs) -> bool:
    if attrs.type == asyncssh.FILEXFER_TYPE_REGULAR:
        return True
    return attrs.permissions is not None and stat.S_ISREG(attrs.permissions)


def _mtime(attrs: asyncssh.SFTPAttrs) -> float | None:
    if attrs.mtime_ns is not None:
        return attrs.mtime_ns / 1e9
    return float(attrs.mtime) if attrs.mtime is not None else None


def _describe(exc: BaseException, source: SftpSource) -> str:
    """What went wrong, in words an operator can act on."""
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return f"permission denied for user {source.user!r} (make the logs readable by that user)"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (
            "host key does not match SSHKnownHostKey, connection refused "
            "(the host was reinstalled or someone is intercepting the connection)"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return (
            f"authentication failed: the server refused the private key for user {source.user!r} "
            "(add its public key to that user's authorized_keys)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running on that port?)"
    if isinstance(exc, TimeoutError | asyncssh.TimeoutError):
        return f"no answer within {source.timeout:g}s (timed out; host down or firewalled?)"
    if isinstance(exc, asyncssh.SFTPError):
        return f"SFTP error: {exc.reason}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"disconnected by the server: {exc.reason}"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
