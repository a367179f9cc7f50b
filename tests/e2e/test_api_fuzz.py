"""Whatever arrives at `/` — any parameter names, values, encodings and signatures — the running
server answers HTTP 200 with a JSON object whose RetCode is an integer below 2000: a request
can be refused, it never breaks the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, serve_for_test

from dblogpack.api.signing import signed

ACTIONS = [
    "CreateProject", "CreateAccessKey", "DeleteAccessKey", "RegisterUPgSQLInstance",
    "DeregisterUPgSQLInstance", "ListUPgSQLInstance", "RegisterUMongoDBCluster",
    "RegisterUMongoDBNode", "DeregisterUMongoDBCluster", "ListUMongoDBInstances",
    "BackupUPgSQLLog",
]
PARAMETER_NAMES = [
    "Name", "Limit", "Offset", "ProjectId", "ProjectId.0", "ProjectId.1", "Admin", "Description",
    "TargetPublicKey", "InstanceID", "ClusterId", "NodeId", "Role", "Region", "Zone",
    "SourceType", "LogDir", "LogPattern", "LogFormat", "LogLinePrefix", "LogTimezone",
    "SSHPort", "Action", "PublicKey", "Signature",
]
# Values a careless or hostile client sends; "postgres"/"ssh" are left out so no example waits
# on a network connection to a random host.
ODD_VALUES = [
    "", "0", "-1", "1001", "99999999999999999999999", "1e3", "true", "false", "dir", "auto",
    "primary", "Asia/Shanghai", "../../etc", "/tmp", "\x00", "a\x00b", "é", "\U0001f600",
    "%FF", "x" * 300, "cn-bj2", "org-zzzzzzzz", "upgsql-zzzzzzzz",
]
HOSTILE_BODIES = [
    b'{"Action":' + b"[" * 1020 + b"]" * 1020 + b"}", b'{"A": 1e999}', b'{"A": -0.0}',
    b'{"A": 123456789012345678901234567890}', b'{"A": "\\ud800"}', b"[]", b"null", b"{}",
    b"Action=" + b"%" * 200, b"&&&==&=", b"\xff\xfe{", b'{"": "", "Action": {"A": 1}}',
]
KNOWN_RET_CODES = {0, 153, 160, 161, 170, 171, 172, 220, 230, 292, 299, 1001, 1002, 1003, 1004}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ApiServer]:
    # A limit high enough that fuzzing reaches the handlers instead of RetCode 153.
    limit = {"DBLOGPACK_RATE_LIMIT": "100000"}
    with serve_for_test(request, tmp_path_factory, limit) as api_server:
        yield api_server


names = st.one_of(st.sampled_from(PARAMETER_NAMES), st.text(max_size=12))
scalars = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=40))
json_values = st.recursive(
    st.one_of(scalars, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
# Nearly valid parameters, so many examples get past validation into the service.
nearly_valid = st.fixed_dictionaries(
    {"Name": st.sampled_from(["fuzz-1", "x y", ""]), "SourceType": st.just("dir"),
     "LogDir": st.sampled_from(["/tmp", "/nonexistent", "a\x00b", "."])},
    optional={"ClusterId": st.sampled_from(["umongodb-zzzzzzzz", "c", "é"]),
              "Role": st.sampled_from(["primary", "mongos", "boss"]),
              "LogTimezone": st.sampled_from(["UTC", "CST", "../etc/x", "Asia/Shanghai"]),
              "LogFormat": st.sampled_from(["auto", "pg-csv", "mongo-json", "x"]),
              "InstanceID": scalars, "Region": scalars, "ProjectId": scalars,
              "Limit": scalars, "Offset": scalars, "Admin": scalars},
)
requests = st.fixed_dictionaries({
    "action": st.one_of(st.sampled_from(ACTIONS), st.sampled_from(ACTIONS), st.text(max_size=20)),
    "params": st.one_of(st.dictionaries(names, scalars, max_size=8), nearly_valid),
    "json_params": st.dictionaries(names, json_values, max_size=6),
    "encoding": st.sampled_from(["form", "get", "json", "raw"]),
    "signing": st.sampled_from(["valid", "valid", "valid", "wrong", "missing", "unknown key"]),
    "raw_body": st.one_of(st.binary(max_size=300), st.sampled_from(HOSTILE_BODIES)),
    "content_type": st.sampled_from([None, "application/json", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data"]),
})


def _signed_pairs(case: dict[str, Any], admin: KeyPair) -> dict[str, str]:
    params: dict[str, object] = {**case["params"], "Action": case["action"]}
    if case["encoding"] == "json":
        params = {**case["json_params"], "Action": case["action"]}
    key = admin if case["signing"] != "unknown key" else KeyPair("nobody", "x", "")
    wire = signed(params, key.public_key, key.private_key)
    if case["signing"] == "wrong":
        wire["Signature"] = wire["Signature"][::-1]
    if case["signing"] == "missing":
        del wire["Signature"]
    return wire


def _send(client: ApiClient, case: dict[str, Any], admin: KeyPair) -> Any:
    if case["encoding"] == "raw":
        headers = {"Content-Type": case["content_type"]} if case["content_type"] else {}
        return client.http.post("/", content=case["raw_body"], headers=headers)
    wire = _signed_pairs(case, admin)
    if case["encoding"] == "get":
        return client.http.get("/", params=wire)
    if case["encoding"] == "json":
        document = {**case["json_params"], **{k: wire[k] for k in ("Action", "PublicKey")}}
        if "Signature" in wire:
            document["Signature"] = wire["Signature"]
        return client.http.post("/", content=json.dumps(document).encode(),
                                headers={"Content-Type": "application/json"})
    return client.http.post("/", data=wire)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=requests)
def test_any_request_gets_a_json_answer_with_a_known_ret_code(
    server: ApiServer, client: ApiClient, case: dict[str, Any]
) -> None:
    response = _send(client, case, server.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body["RetCode"], int) and not isinstance(body["RetCode"], bool)
    assert body["RetCode"] in KNOWN_RET_CODES, body
    assert response.headers["X-UCLOUD-REQUEST-UUID"] == body["RequestUUID"]
