"""Acceptance (issue #3): the whole package flow with the S3 store — a `dblogpack serve` publishing
to a bucket of a real S3-compatible server (moto, loopback), links presigned by the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support.acceptance import (
    NodeLogs,
    Package,
    download,
    generate_node_logs,
    recent_window,
    s3_store_env,
    sdk,
    wait_for_package,
)
from tests.support.apiserver import start_server
from tests.support.s3server import S3Server
from ucloud.client import Client

from dblogpack.model import LogKind, TimeWindow

BUCKET = "acceptance-packages"
PREFIX = "packages"


@dataclass
class S3World:
    s3: S3Server
    client: Client
    cluster_id: str
    node_id: str
    logs: NodeLogs
    window: TimeWindow

    def objects(self) -> list[str]:
        listed = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def world(s3server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3World]:
    s3server.create_bucket(BUCKET)
    env = {"DBLOGPACK_WORKERS": "1", **s3_store_env(
        s3server.endpoint_url, BUCKET, s3server.access_key, s3server.secret_key, PREFIX)}
    base = tmp_path_factory.mktemp("acc-s3")
    server = start_server(base / "data", env)
    try:
        logs_begin, logs_end, window = recent_window(time.time())
        logs = generate_node_logs(base / "node", "mongo-json", logs_begin, logs_end, seed=51)
        client = sdk(server, server.admin)
        cluster_id = str(client.invoke("RegisterUMongoDBCluster", {"Name": "s3"})["ClusterId"])
        node_id = str(client.invoke("RegisterUMongoDBNode", {
            "ClusterId": cluster_id, "Role": "primary", "SourceType": "dir",
            "LogDir": str(logs.directory), "LogPattern": "mongod.log*"})["NodeId"])
        yield S3World(s3server, client, cluster_id, node_id, logs, window)
    finally:
        server.stop()


def test_a_package_is_published_to_the_bucket_downloaded_by_presigned_url_and_deleted(
    world: S3World,
) -> None:
    client, scope = world.client, {"ClusterId": world.cluster_id}
    assert world.window.begin is not None and world.window.end is not None
    package_id = client.invoke("BackupUMongoDBLog", {
        **scope, "NodeId": world.node_id, "Name": "s3-slow", "Begin": int(world.window.begin),
        "End": int(world.window.end), "LogType": "SlowLog"})["PackageId"]
    info = wait_for_package(client, "ListUMongoDBLogPackage", scope, package_id)
    assert info["State"] == "Package_Success", info

    published = world.objects()
    assert len(published) == 1 and published[0].endswith("/s3-slow.tar.gz"), published
    links = client.invoke("DescribeUMongoDBBackupURL",
                          {**scope, "PackageId": package_id, "ValidTime": 300})
    url = links["InternetAddress"]
    assert urlsplit(url).netloc == urlsplit(world.s3.endpoint_url).netloc, url
    assert "Signature" in url or "X-Amz-Signature" in url, url
    data = download(url)
    expected, count = world.logs.expected(world.window, LogKind.SLOW)
    package = Package.open(data)
    assert package.logs == expected
    assert (package.manifest["totals"]["entries"], info["EntryCount"], info["Size"]) == (
        count, count, len(data))

    client.invoke("DeleteUMongoDBLogPackage", {**scope, "PackageId": package_id})
    assert world.objects() == []
    assert httpx.get(url, timeout=30).status_code in (403, 404)
