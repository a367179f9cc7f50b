"""A throwaway OpenSSH server for tests: generated host and client keys, SFTP, loopback only.

The login user defaults to `nobody` (internal-sftp needs no shell): being non-root is what
lets tests see real "permission denied" answers, which root would never get.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.pgcluster import free_port
from tests.support.processes import terminate

SSHD = Path(os.environ.get("DBLOGPACK_TEST_SSHD", "/usr/sbin/sshd"))
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")


class SshdError(RuntimeError):
    """sshd could not be configured or started; the message quotes its own output."""


def generate_key(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A new unencrypted key pair at `path` / `path.pub`: (private key text, public key line)."""
    result = subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", f"test-{path.name}", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SshdError(f"ssh-keygen failed: {result.stderr.strip()}")
    return path.read_text(), Path(f"{path}.pub").read_text().strip()


class Sshd:
    """One sshd on 127.0.0.1 serving SFTP to `user`, who logs in with `client_key`."""

    def __init__(self, base_dir: str | Path, user: str = "nobody") -> None:
        self.base_dir = Path(base_dir)
        self.user = user
        self.port = 0
        self.host_public_key = ""
        self.client_key = ""
        self.client_public_key = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = self.base_dir / "sshd.stderr"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise SshdError("sshd is not running")
        return self._process.pid

    def start(self, ready_within: float = 15.0) -> Sshd:
        if not SSHD.exists():
            raise SshdError(f"{SSHD} not found: install openssh-server")
        pwd.getpwnam(self.user)  # KeyError tells which user is missing
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # sshd reads authorized_keys as the login user, who must traverse base_dir (mkdtemp: 0700).
        self.base_dir.chmod(0o755)
        _, self.host_public_key = generate_key(self.base_dir / "ssh_host_ed25519_key")
        self.client_key, self.client_public_key = generate_key(self.base_dir / "client_key")
        (self.base_dir / "authorized_keys").write_text(self.client_public_key + "\n")
        self.port = free_port()
        config = self._write_config()
        with self._stderr.open("wb") as err:
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)], stdout=err, stderr=err
            )
        self._wait_ready(ready_within)
        return self

    def make_readable_dir(self, name: str) -> Path:
        """A directory under base_dir that the login user can list and read."""
        path = self.base_dir / name
        path.mkdir(exist_ok=True)
        path.chmod(0o755)
        return path

    def connection_children(self) -> list[int]:
        """Pids of the per-connection sshd processes (kill one to drop that connection)."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(stat_fields[1]) == self.pid:
                children.append(int(entry.name))
        return children

    def drop_connections(self) -> int:
        pids = self.connection_children()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, timeout=10)
        self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _write_config(self) -> Path:
        config = self.base_dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.base_dir / 'ssh_host_ed25519_key'}",
                    f"PidFile {self.base_dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.base_dir / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    "Subsystem sftp internal-sftp",
                    "MaxStartups 50:30:100",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        return config

    def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise SshdError(f"sshd exited with {self._process.returncode}:\n{self._output()}")
            if _answers_banner(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise SshdError(
            f"sshd did not answer on port {self.port} within {within}s:\n{self._output()}"
        )

    def _output(self) -> str:
        try:
            return self._stderr.read_text(errors="replace")[-4000:]
        except OSError as exc:
            return f"({self._stderr} unreadable: {exc})"


def _answers_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False
