"""Download links of the file-system store, served by `dblogpack serve` itself: whole and ranged
GETs (206, 416, If-Range), ETag and Content-Disposition; tampered and expired links refused with
403, a deleted package's link with 404; an unfinished package has no link (1003). The packages
are built by a separate `dblogpack worker` process (serve runs none), started once the
unfinished-package rules are checked.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.apiserver import DBLOGPACK, Answer, ApiClient, ApiServer, ok, serve_for_test

from dblogpack.synth import Plan, build, generate

LIST = "ListUMongoDBLogPackage"


@dataclass
class Package:
    cluster_id: str
    package_id: str
    row: dict[str, Any]
    url: str
    data: bytes


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    # serve_for_test starts no in-process workers
    with serve_for_test(request, tmp_path_factory, backend="sqlite") as api_server:
        yield api_server


@pytest.fixture(scope="module")
def cluster(server: ApiServer, client: ApiClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    log_dir = tmp_path_factory.mktemp("mongo-downloads")
    now = int(time.time())
    generate(build("mongo-json"), log_dir / "mongod.log",
             Plan(start=now - 3600, end=now - 60, size=300_000, seed=3))
    cluster_id = ok(client.call("RegisterUMongoDBCluster", server.admin, {"Name": "dl"}))[
        "ClusterId"
    ]
    ok(client.call("RegisterUMongoDBNode", server.admin, {
        "ClusterId": cluster_id, "NodeId": "dl-primary", "Role": "primary",
        "SourceType": "dir", "LogDir": str(log_dir),
    }))
    return cluster_id


def request_package(client: ApiClient, server: ApiServer, cluster_id: str, name: str) -> str:
    now = int(time.time())
    return str(ok(client.call("BackupUMongoDBLog", server.admin, {
        "ClusterId": cluster_id, "NodeId": "dl-primary", "Name": name, "Begin": now - 3000,
        "End": now - 100, "LogType": "ErrorLog",
    }))["PackageId"])


def rows(client: ApiClient, server: ApiServer, cluster_id: str) -> dict[str, dict[str, Any]]:
    answer = ok(client.call(LIST, server.admin, {"ClusterId": cluster_id, "Limit": 100}))
    return {row["Id"]: row for row in answer["DataSet"]}


def url_of(client: ApiClient, server: ApiServer, cluster_id: str, package_id: str,
           **extra: object) -> Answer:
    return client.call("DescribeUMongoDBBackupURL", server.admin,
                       {"ClusterId": cluster_id, "PackageId": package_id, **extra})


@pytest.fixture(scope="module")
def queued(client: ApiClient, server: ApiServer, cluster: str) -> list[str]:
    """Two packages queued while no worker runs."""
    return [request_package(client, server, cluster, name) for name in ("first", "second")]


def test_an_unfinished_package_has_no_link(
    client: ApiClient, server: ApiServer, cluster: str, queued: list[str]
) -> None:
    # Deleting it would cancel it (tests/e2e/test_package_cancel.py); this one is built below.
    row = rows(client, server, cluster)[queued[0]]
    assert (row["State"], row["Progress"]) == ("Package_Running", 0)
    link = url_of(client, server, cluster, queued[0])
    assert link.ret_code == 1003 and "still being built" in link.message


def test_a_node_with_per_node_concurrency_packages_queued_takes_no_more(
    client: ApiClient, server: ApiServer, cluster: str, queued: list[str]
) -> None:
    now = int(time.time())
    answer = client.call("BackupUMongoDBLog", server.admin, {
        "ClusterId": cluster, "NodeId": "dl-primary", "Name": "third", "Begin": now - 3000,
        "End": now - 100, "LogType": "SlowLog",
    })
    assert answer.ret_code == 1004, answer.body
    assert "2 package(s) of dl-primary are still running" in answer.message


@pytest.fixture(scope="module")
def built(
    client: ApiClient, server: ApiServer, cluster: str, queued: list[str]
) -> Iterator[list[Package]]:
    """The queued packages, built by a `dblogpack worker` process beside the server."""
    env = {**os.environ, "DBLOGPACK_WORKERS": "1"}
    log = server.data_dir.parent / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(DBLOGPACK), "--data-dir", str(server.data_dir), "worker"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        yield [_finished(client, server, cluster, pid, worker, log) for pid in queued]
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0, Path(log).read_text()


def _finished(client: ApiClient, server: ApiServer, cluster: str, package_id: str,
              worker: subprocess.Popen[bytes], log: Path) -> Package:
    deadline = time.monotonic() + 60
    while (row := rows(client, server, cluster)[package_id])["State"] == "Package_Running":
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{package_id} not built in 60 s: {log.read_text()}"
        time.sleep(0.2)
    assert row["State"] == "Package_Success", row
    url = ok(url_of(client, server, cluster, package_id))["InternetAddress"]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    return Package(cluster, package_id, row, url, response.content)


def test_the_link_serves_the_whole_package_as_an_attachment(built: list[Package]) -> None:
    package = built[0]
    response = httpx.get(package.url, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(package.row["Size"]) == str(
        len(package.data)
    )
    assert response.headers["etag"] == f'"{package.row["Checksum"]}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == 'attachment; filename="first.tar.gz"'
    assert package.data[:2] == b"\x1f\x8b"  # gzip
    head = httpx.head(package.url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(package.data))


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-64", -64, None),
     ("bytes=10-999999999", 10, None)],
)
def test_a_range_request_returns_exactly_those_bytes(
    built: list[Package], header: str, first: int, last: int | None
) -> None:
    package = built[0]
    size = len(package.data)
    start = first % size
    stop = size - 1 if last is None else last
    response = httpx.get(package.url, headers={"Range": header}, timeout=30)
    assert response.status_code == 206
    assert response.content == package.data[start : stop + 1]
    assert response.headers["content-range"] == f"bytes {start}-{stop}/{size}"
    assert response.headers["content-length"] == str(stop - start + 1)


def test_a_range_past_the_end_is_not_satisfiable(built: list[Package]) -> None:
    package = built[0]
    size = len(package.data)
    response = httpx.get(package.url, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_if_range_with_another_version_gets_the_whole_package(built: list[Package]) -> None:
    package = built[0]
    response = httpx.get(package.url, headers={"Range": "bytes=0-9", "If-Range": '"other"'},
                         timeout=30)
    assert response.status_code == 200 and response.content == package.data
    matching = httpx.get(package.url, timeout=30, headers={
        "Range": "bytes=0-9", "If-Range": f'"{package.row["Checksum"]}"',
    })
    assert matching.status_code == 206 and matching.content == package.data[:10]


def test_a_tampered_link_is_refused(built: list[Package]) -> None:
    package = built[0]
    prefix, _, rest = package.url.partition("/download/")
    token, _, filename = rest.partition("/")
    payload, _, mac = token.partition(".")
    other_package = built[1].url.partition("/download/")[2].partition(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (f"{payload}.{flipped}", f"{other_package}.{mac}", payload, "x.y"):
        response = httpx.get(f"{prefix}/download/{forged}/{filename}", timeout=30)
        assert response.status_code == 403, forged
        assert b"\x1f\x8b" not in response.content


def test_an_expired_link_is_refused(
    client: ApiClient, server: ApiServer, built: list[Package]
) -> None:
    package = built[0]
    url = ok(url_of(client, server, package.cluster_id, package.package_id, ValidTime=1))[
        "InternetAddress"
    ]
    time.sleep(1.1)
    response = httpx.get(url, timeout=30)
    assert response.status_code == 403 and b"expired" in response.content


def test_valid_time_is_bounded(client: ApiClient, server: ApiServer, built: list[Package]) -> None:
    package = built[0]
    answer = url_of(client, server, package.cluster_id, package.package_id, ValidTime=604801)
    assert answer.ret_code == 230 and "ValidTime must be from 1 to 604800" in answer.message


def test_a_deleted_package_link_is_not_found(
    client: ApiClient, server: ApiServer, built: list[Package]
) -> None:
    package = built[1]
    assert httpx.get(package.url, timeout=30).status_code == 200
    ok(client.call("DeleteUMongoDBLogPackage", server.admin,
                   {"ClusterId": package.cluster_id, "PackageId": package.package_id}))
    response = httpx.get(package.url, timeout=30)
    assert response.status_code == 404
    assert not list((server.data_dir / "packages").rglob("second.tar.gz"))
