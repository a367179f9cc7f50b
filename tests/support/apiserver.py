"""A real `dblogpack serve` process for API tests, and a small signed HTTP client for it.

The server runs with its own data directory, on SQLite or on a PostgreSQL database, with no
package workers; everything it logs goes to a file the tests can search (for secrets).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from tests.support.pgcluster import free_port
from tests.support.processes import terminate

from dblogpack.api.signing import signature_of_pairs, signed

DBLOGPACK = Path(sys.executable).with_name("dblogpack")
READY_TIMEOUT = 60.0


class ApiServerError(RuntimeError):
    """The server did not start; the message quotes its output."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    public_key: str
    private_key: str
    project_id: str

    @classmethod
    def of(cls, answer: dict[str, Any]) -> KeyPair:
        return cls(answer["PublicKey"], answer["PrivateKey"], answer["ProjectId"])


@dataclass(slots=True)
class Answer:
    """One HTTP answer of the API, decoded."""

    status: int
    headers: httpx.Headers
    body: dict[str, Any]

    @property
    def ret_code(self) -> int:
        code = self.body["RetCode"]
        assert isinstance(code, int)
        return code

    @property
    def message(self) -> str:
        return str(self.body["Message"])


def ok(answer: Answer) -> dict[str, Any]:
    """The body of an answer that must have succeeded (RetCode 0)."""
    assert answer.ret_code == 0, answer.body
    return answer.body


@dataclass(slots=True)
class ApiServer:
    data_dir: Path
    database_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    @property
    def admin(self) -> KeyPair:
        return KeyPair.of(json.loads((self.data_dir / "admin-key.json").read_text()))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> ApiServer:
        env = {**os.environ, "DBLOGPACK_WORKERS": "0", "DBLOGPACK_LOG_LEVEL": "INFO", **self.env}
        if self.database_url:
            env["DBLOGPACK_DATABASE_URL"] = self.database_url
        argv = [
            str(DBLOGPACK),
            "--data-dir",
            str(self.data_dir),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ApiServerError(f"dblogpack serve exited:\n{self.log_text()[-3000:]}")
            if self._healthy():
                return
            time.sleep(0.1)
        raise ApiServerError(f"dblogpack serve not ready in {READY_TIMEOUT}s:\n{self.log_text()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False  # not listening yet

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, timeout=15, kill_timeout=15)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_for_test(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    env: dict[str, str] | None = None,
    backend: str | None = None,
) -> ApiServer:
    """A started server on the metadata backend `backend` names (sqlite | postgresql), by default
    the one `request.param` names.

    PostgreSQL metadata gets a fresh database on the session's `pg_metadata_cluster`.
    """
    backend = backend or request.param
    database_url = None
    if backend == "postgresql":
        cluster = request.getfixturevalue("pg_metadata_cluster")
        database = f"api_{secrets.token_hex(6)}"
        cluster.execute(f"CREATE DATABASE {database}")
        database_url = cluster.sqlalchemy_url(dbname=database)
    data_dir = tmp_path_factory.mktemp(f"api-{backend}") / "data"
    return start_server(data_dir, env or {}, database_url)


def start_server(
    data_dir: Path, env: dict[str, str], database_url: str | None = None
) -> ApiServer:
    """A started `dblogpack serve` (env overrides its settings); the test fails if it cannot."""
    server = ApiServer(data_dir, database_url, env)
    try:
        return server.start()
    except ApiServerError as exc:
        server.stop()
        pytest.fail(str(exc), pytrace=False)


def wait_built(
    client: ApiClient, key: KeyPair, action: str, params: dict[str, object], package_id: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The row of `package_id` in the list `action` answers to `params`, once it is no longer
    Package_Running (polled every 0.2 s; fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = ok(client.call(action, key, params))["DataSet"]
        row = next(r for r in rows if r["Id"] == package_id)
        if row["State"] != "Package_Running":
            return dict(row)
        time.sleep(0.2)
    raise AssertionError(f"package {package_id} still running after {timeout:g} s")


class ApiClient:
    """Signed calls over HTTP in each encoding the API accepts."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(
        self,
        action: str,
        key: KeyPair,
        params: dict[str, object] | None = None,
        *,
        encoding: str = "form",
    ) -> Answer:
        """Sign `params` (flattened like the SDK) with `key` and send them as `encoding`:
        `form` (POST form, what the SDK sends), `get` (signed query string) or `json`."""
        wire = signed({"Action": action, **(params or {})}, key.public_key, key.private_key)
        if encoding == "json":
            document: dict[str, object] = {
                "Action": action,
                **(params or {}),
                "PublicKey": key.public_key,
                "Signature": wire["Signature"],
            }
            return self.send(
                content=json.dumps(document).encode(), headers={"Content-Type": "application/json"}
            )
        if encoding == "get":
            return self.send(method="GET", params=wire)
        return self.send(data=wire)

    def call_pairs(self, pairs: list[tuple[str, str]], key: KeyPair) -> Answer:
        """A form of raw (key, value) pairs (repeated keys kept), signed as received."""
        pairs = [*pairs, ("PublicKey", key.public_key)]
        pairs.append(("Signature", signature_of_pairs(pairs, key.private_key)))
        return self.send_form(pairs)

    def send_form(self, pairs: list[tuple[str, str]]) -> Answer:
        """POST a form of (key, value) pairs exactly as given (repeated keys included)."""
        return self.send(
            content=urlencode(pairs).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def send(self, method: str = "POST", **kwargs: Any) -> Answer:
        response = self.http.request(method, "/", **kwargs)
        return Answer(response.status_code, response.headers, response.json())
