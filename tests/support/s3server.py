"""A throwaway S3-compatible server for tests: moto in server mode, in its own process.

Its own process, so that the S3 server's memory never counts in a test that measures ours,
and the tests talk to it over real HTTP on a loopback port, as to any S3 endpoint.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
from tests.support.pgcluster import free_port
from tests.support.processes import terminate

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class S3ServerError(RuntimeError):
    """The S3 server could not start; the message quotes its output."""


class S3Server:
    """moto_server on 127.0.0.1; any access key works, `region` is what buckets are made in."""

    access_key = "dblogpack-test"
    secret_key = "dblogpack-test-secret"
    region = "us-east-1"

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._output = self.base_dir / "moto.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_within: float = 30.0) -> S3Server:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with self._output.open("wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=out,
            )
        self._wait_ready(ready_within)
        return self

    def client(self) -> S3Client:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, timeout=10)
        self._process = None

    def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise S3ServerError(
                    f"moto_server exited with {self._process.returncode}:\n{self._tail()}"
                )
            try:
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise S3ServerError(f"moto_server did not answer within {within}s:\n{self._tail()}")

    def _tail(self) -> str:
        try:
            return self._output.read_text(errors="replace")[-4000:]
        except OSError as exc:
            return f"({self._output} unreadable: {exc})"
