"""PostgreSQL packages through the HTTP API of a real `dblogpack serve` with in-process workers,
on a `dir` instance whose rotated stderr logs were generated: ListUPgSQLLog with each file's
first and last times, BackupUPgSQLLog with BackupFile in every array encoding (the official SDK's
included), names checked against the instance's real files, slow/error/all and MinDuration
packages matching the generator's record, and GetUPgSQLInstanceLog bounded by MaxLine.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.acceptance import sdk
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok, serve_for_test, wait_built
from ucloud.core.exc import RetCodeException

from dblogpack.model import LogKind, TimeWindow
from dblogpack.synth import Mix, Plan, build, generate, read_spans, select
from dblogpack.synth.generate import GenerateResult

START = 1714564800  # 2024-05-01T12:00:00Z: PostgreSQL packages have no age limit
LIST = "ListUPgSQLLogPackage"
ALL_TIME = TimeWindow()


@dataclass
class Instance:
    instance_id: str
    log_dir: Path
    logs: GenerateResult

    @property
    def files(self) -> list[str]:
        return list(self.logs.record.files)

    def expected(
        self, files: list[str], kind: LogKind, window: TimeWindow = ALL_TIME,
        min_duration_ms: float | None = None,
    ) -> tuple[int, bytes]:
        """Entries and member bytes a package of these files must hold (from the record)."""
        record = self.logs.record
        blocks = [b for b in record.blocks() if record.files[b.file_index] in files]
        chosen = select(record.files, blocks, window, kind, min_duration_ms)
        data = b"".join(
            b"".join(read_spans(self.log_dir / name, spans))
            for name, spans in chosen.spans.items()
        )
        return chosen.entries, data


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    workers = {"DBLOGPACK_WORKERS": "2"}
    with serve_for_test(request, tmp_path_factory, workers, backend="sqlite") as api_server:
        yield api_server


@pytest.fixture(scope="module")
def instance(
    server: ApiServer, client: ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Instance:
    log_dir = tmp_path_factory.mktemp("pg-instance")
    plan = Plan(start=START, end=START + 3600, size=500_000, seed=5, rotate_bytes=120_000,
                mix=Mix(slow=0.1, error=0.05, other=0.85))
    logs = generate(build("pg-stderr", log_line_prefix="%m [%p] "), log_dir / "postgresql.log",
                    plan)
    assert len(logs.record.files) >= 3
    answer = client.call("RegisterUPgSQLInstance", server.admin, {
        "Name": "orders", "SourceType": "dir", "LogDir": str(log_dir), "LogPattern": "*.log",
    })
    return Instance(ok(answer)["InstanceID"], log_dir, logs)


def wait_done(client: ApiClient, key: KeyPair, instance_id: str, backup_id: str) -> dict[str, Any]:
    return wait_built(client, key, LIST, {"InstanceID": instance_id, "Limit": 1000}, backup_id)


def packed(client: ApiClient, key: KeyPair, instance_id: str, backup_id: str) -> dict[str, bytes]:
    """The members of a finished package, downloaded through its BackupPath."""
    url = ok(client.call("GetUPgSQLLogPackageURL", key,
                         {"InstanceID": instance_id, "BackupID": backup_id}))["BackupPath"]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def logs_of(members: dict[str, bytes]) -> bytes:
    manifest = json.loads(members["manifest.json"])
    return b"".join(members[f["member"]] for f in manifest["files"] if f["member"])


def test_list_gives_every_file_with_its_first_and_last_entry_times(
    client: ApiClient, server: ApiServer, instance: Instance
) -> None:
    answer = ok(client.call("ListUPgSQLLog", server.admin, {"InstanceID": instance.instance_id}))
    listed = {row["Name"]: row for row in answer["DataSet"]}
    written = {f.name: f for f in instance.logs.files}
    assert set(listed) == set(written) and answer["TotalCount"] == len(written)
    for name, row in listed.items():
        assert row["Size"] == (instance.log_dir / name).stat().st_size
        assert row["BeginTime"] == (written[name].first_ts_ms or 0) // 1000
        assert row["EndTime"] == (written[name].last_ts_ms or 0) // 1000


def test_list_keeps_only_files_overlapping_the_window(
    client: ApiClient, server: ApiServer, instance: Instance
) -> None:
    first = instance.logs.files[0]
    assert first.last_ts_ms is not None
    end = first.last_ts_ms // 1000 - 1
    answer = ok(client.call("ListUPgSQLLog", server.admin, {
        "InstanceID": instance.instance_id, "BeginTime": START, "EndTime": end,
    }))
    assert [row["Name"] for row in answer["DataSet"]] == [first.name]


def test_a_whole_flow_through_the_official_sdk(
    client: ApiClient, server: ApiServer, instance: Instance
) -> None:
    sdk_client = sdk(server, server.admin)
    files = instance.files[:2]
    window = TimeWindow(START + 300, START + 3000)
    answer = sdk_client.invoke("BackupUPgSQLLog", {
        "InstanceID": instance.instance_id, "BackupName": "sdk-slow", "BackupFile": files,
        "LogType": "slow", "BeginTime": int(window.begin or 0), "EndTime": int(window.end or 0),
    })
    backup_id = answer["BackupID"]
    row = wait_done(client, server.admin, instance.instance_id, backup_id)
    entries, data = instance.expected(files, LogKind.SLOW, window)
    assert (row["State"], row["PackageType"], row["EntryCount"]) == (
        "Package_Success", "SlowLog", entries
    )
    assert row["InstanceID"] == instance.instance_id and row["NodeId"] == ""
    listed = sdk_client.invoke(LIST, {"InstanceID": instance.instance_id, "Limit": 100})
    assert backup_id in {r["Id"] for r in listed["DataSet"]}
    url = sdk_client.invoke("GetUPgSQLLogPackageURL", {
        "InstanceID": instance.instance_id, "BackupID": backup_id, "ValidTime": 120,
    })
    assert url["InnerBackupPath"].endswith("/sdk-slow.tar.gz")
    assert logs_of(packed(client, server.admin, instance.instance_id, backup_id)) == data
    sdk_client.invoke("DeleteUPgSQLLogPackage",
                      {"InstanceID": instance.instance_id, "BackupID": backup_id})
    with pytest.raises(RetCodeException) as refused:
        sdk_client.invoke("DeleteUPgSQLLogPackage",
                          {"InstanceID": instance.instance_id, "BackupID": backup_id})
    assert refused.value.code == 1003


@pytest.mark.parametrize("encoding", ["indexed", "repeated", "json"])
def test_backup_file_arrives_in_every_array_encoding(
    client: ApiClient, server: ApiServer, instance: Instance, encoding: str
) -> None:
    files = instance.files[1:3]
    name = f"errors-{encoding}"
    base: dict[str, object] = {
        "Action": "BackupUPgSQLLog", "InstanceID": instance.instance_id, "BackupName": name,
        "LogType": "error",
    }
    if encoding == "repeated":
        pairs = [(k, str(v)) for k, v in base.items()] + [("BackupFile", f) for f in files]
        answer = client.call_pairs(pairs, server.admin)
    else:
        params = {k: v for k, v in base.items() if k != "Action"}
        answer = client.call("BackupUPgSQLLog", server.admin, {**params, "BackupFile": files},
                             encoding="json" if encoding == "json" else "form")
    backup_id = ok(answer)["BackupID"]
    row = wait_done(client, server.admin, instance.instance_id, backup_id)
    entries, data = instance.expected(files, LogKind.ERROR)
    assert (row["State"], row["EntryCount"]) == ("Package_Success", entries)
    members = packed(client, server.admin, instance.instance_id, backup_id)
    manifest = json.loads(members["manifest.json"])
    assert sorted(f["name"] for f in manifest["files"]) == sorted(files)
    assert logs_of(members) == data


def test_all_entries_when_log_type_is_omitted_and_min_duration_raises_the_bar(
    client: ApiClient, server: ApiServer, instance: Instance
) -> None:
    files = instance.files[:1]
    everything = ok(client.call("BackupUPgSQLLog", server.admin, {
        "InstanceID": instance.instance_id, "BackupName": "everything", "BackupFile": files,
    }))["BackupID"]
    slowest = ok(client.call("BackupUPgSQLLog", server.admin, {
        "InstanceID": instance.instance_id, "BackupName": "slowest", "BackupFile": files,
        "LogType": "slow", "MinDuration": 500,
    }))["BackupID"]
    row = wait_done(client, server.admin, instance.instance_id, everything)
    assert row["PackageType"] == "All"
    assert row["EntryCount"] == instance.expected(files, LogKind.ALL)[0]
    row = wait_done(client, server.admin, instance.instance_id, slowest)
    expected = instance.expected(files, LogKind.SLOW, min_duration_ms=500)[0]
    assert 0 < row["EntryCount"] == expected < instance.expected(files, LogKind.SLOW)[0]


@pytest.mark.parametrize(
    ("files", "words"),
    [
        (["postgresql-1999-01-01_000000.log"], "'postgresql-1999-01-01_000000.log' is not a log"),
        (["../../etc/passwd"], "'../../etc/passwd' is not a log file"),
    ],
)
def test_a_file_the_instance_does_not_have_is_refused_by_name(
    client: ApiClient, server: ApiServer, instance: Instance, files: list[str], words: str
) -> None:
    answer = client.call("BackupUPgSQLLog", server.admin, {
        "InstanceID": instance.instance_id, "BackupName": "unknown-file",
        "BackupFile": [instance.files[0], *files],
    })
    assert answer.ret_code == 230, answer.body
    assert words in answer.message and "ListUPgSQLLog" in answer.message
    assert str(instance.log_dir) not in answer.message


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"BackupFile": None}, 220, "BackupFile"),
        ({"BackupName": None}, 220, "BackupName"),
        ({"BackupName": "a/b"}, 230, "BackupName must be 1 to 64 characters"),
        ({"LogType": "slowest"}, 230, "LogType must be slow or error"),
        ({"BeginTime": START + 100, "EndTime": START + 100}, 230, "EndTime must be after"),
        ({"InstanceID": "upgsql-missing"}, 1001, "upgsql-missing"),
    ],
)
def test_a_backup_request_breaking_a_rule_is_refused(
    client: ApiClient, server: ApiServer, instance: Instance, params: dict[str, object],
    code: int, words: str,
) -> None:
    request: dict[str, object] = {
        "InstanceID": instance.instance_id, "BackupName": "refused",
        "BackupFile": instance.files[:1], **params,
    }
    answer = client.call("BackupUPgSQLLog", server.admin,
                         {k: v for k, v in request.items() if v is not None})
    assert answer.ret_code == code, answer.body
    assert words in answer.message


def test_get_instance_log_is_bounded_by_max_line(
    client: ApiClient, server: ApiServer, instance: Instance
) -> None:
    window = TimeWindow(START + 600, START + 2400)
    _, data = instance.expected(instance.files, LogKind.ERROR, window)
    request = {"InstanceID": instance.instance_id, "LogType": "error",
               "BeginTime": window.begin, "EndTime": window.end}
    whole = ok(client.call("GetUPgSQLInstanceLog", server.admin, {**request, "MaxLine": 10_000}))
    assert whole["IsTruncate"] is False and whole["Log"] == data.decode()
    lines = whole["LineCount"]
    assert lines > 10
    part = ok(client.call("GetUPgSQLInstanceLog", server.admin, {**request, "MaxLine": 10}))
    assert part["IsTruncate"] is True and part["MaxLine"] == 10
    assert 0 < part["LineCount"] <= 10 and whole["Log"].startswith(part["Log"])
    rest = ok(client.call("GetUPgSQLInstanceLog", server.admin,
                          {**request, "BeginTime": part["NextTime"], "MaxLine": 10_000}))
    assert part["Log"] + rest["Log"] == whole["Log"]
