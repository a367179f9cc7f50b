"""The HTTP API as its users see it (DESIGN §4), against a real `dblogpack serve` process on
SQLite and on PostgreSQL metadata: the official SDK, signatures, encodings, return codes,
admin rights, tenant isolation, and secrets that never come back out.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tests.support.acceptance import sdk
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok, serve_for_test
from ucloud.core.exc import RetCodeException

ADMIN_ACTIONS = [
    "CreateProject", "CreateAccessKey", "DeleteAccessKey", "RegisterUPgSQLInstance",
    "DeregisterUPgSQLInstance", "ListUPgSQLInstance", "RegisterUMongoDBCluster",
    "RegisterUMongoDBNode", "DeregisterUMongoDBCluster", "ListUMongoDBInstances",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ApiServer]:
    with serve_for_test(request, tmp_path_factory) as api_server:
        yield api_server


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> KeyPair:
    return server.admin


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pglogs")
    (directory / "postgresql-2024-05-01.log").write_text(
        "2024-05-01 12:00:00.000 UTC [42] LOG:  duration: 1.5 ms  statement: SELECT 1\n")
    return directory


def new_key(client: ApiClient, admin: KeyPair, *projects: str, is_admin: bool = True) -> KeyPair:
    return KeyPair.of(ok(client.call(
        "CreateAccessKey", admin,
        {"ProjectId": list(projects), "Admin": is_admin, "Description": "t"})))


def new_project(client: ApiClient, admin: KeyPair) -> str:
    return str(ok(client.call("CreateProject", admin, {"Name": f"p-{secrets.token_hex(3)}"}))[
        "ProjectId"])


def dir_source(log_dir: Path) -> dict[str, object]:
    return {"SourceType": "dir", "LogDir": str(log_dir), "LogPattern": "*.log"}


# --- the official SDK ---------------------------------------------------------------------


def test_sdk_registers_a_dir_instance_and_lists_it(
    server: ApiServer, admin: KeyPair, log_dir: Path
) -> None:
    client = sdk(server, admin)
    registered = client.invoke("RegisterUPgSQLInstance",
                               {"Name": "orders-db", "Zone": "cn-bj2-04", **dir_source(log_dir)})
    assert registered["RetCode"] == 0
    assert registered["Action"] == "RegisterUPgSQLInstanceResponse"
    instance_id = registered["InstanceID"]
    assert instance_id.startswith("upgsql-")

    listed = client.invoke("ListUPgSQLInstance", {"Offset": 0, "Limit": 1000})
    rows = {row["InstanceID"]: row for row in listed["DataSet"]}
    assert rows[instance_id] == {"InstanceID": instance_id, "Name": "orders-db",
                                 "Region": "cn-bj2", "Zone": "cn-bj2-04", "SourceType": "dir",
                                 "LogFormat": "auto", "State": rows[instance_id]["State"]}
    assert listed["TotalCount"] >= 1


def test_sdk_with_a_wrong_private_key_raises_171_with_our_message(
    server: ApiServer, admin: KeyPair
) -> None:
    client = sdk(server, admin, private_key="0" * 40)
    with pytest.raises(RetCodeException) as caught:
        client.invoke("ListUPgSQLInstance", {})
    assert caught.value.code == 171
    assert "Signature does not match" in caught.value.message
    assert uuid.UUID(caught.value.request_uuid)


def test_sdk_missing_required_parameter_is_220_naming_it(
    server: ApiServer, admin: KeyPair, log_dir: Path
) -> None:
    with pytest.raises(RetCodeException) as caught:
        sdk(server, admin).invoke("RegisterUPgSQLInstance", dir_source(log_dir))
    assert caught.value.code == 220
    assert caught.value.message.startswith("Missing parameter Name")


def test_sdk_registers_a_mongodb_cluster_with_a_node_and_lists_both(
    server: ApiServer, admin: KeyPair, log_dir: Path
) -> None:
    client = sdk(server, admin)
    cluster_id = client.invoke("RegisterUMongoDBCluster", {"Name": "shop"})["ClusterId"]
    node = client.invoke("RegisterUMongoDBNode", {"ClusterId": cluster_id, "Role": "primary",
                                                  **dir_source(log_dir)})
    listed = client.invoke("ListUMongoDBInstances", {"Limit": 1000})
    clusters = {row["ClusterId"]: row for row in listed["DataSet"]}
    assert clusters[cluster_id]["Name"] == "shop"
    assert clusters[cluster_id]["Nodes"] == [
        {"NodeId": node["NodeId"], "Role": "primary", "SourceType": "dir"}]


# --- signatures and encodings -------------------------------------------------------------


def _documented_signature(params: dict[str, str], private_key: str) -> str:
    # DESIGN §4 written out independently of dblogpack.api.signing.
    joined = "".join(key + params[key] for key in sorted(params) if key != "Signature")
    return hashlib.sha1((joined + private_key).encode()).hexdigest()


def test_requests_signed_by_the_documented_rule_are_accepted(
    client: ApiClient, admin: KeyPair
) -> None:
    vector = {"Action": "DescribeUHostInstance", "Region": "cn-bj2", "Limit": "10",
              "PublicKey": "ucloudsomeone@example.com1296235120854146120"}
    assert _documented_signature(vector, "46f09bb9fab4f12dfc160dae12273d5332b5debe") == (
        "cba5cf5ec4d4233d206b1b54951e3787350a642f")

    params = {"Action": "ListUPgSQLInstance", "Region": "cn-bj2", "Limit": "10",
              "PublicKey": admin.public_key}
    params["Signature"] = _documented_signature(params, admin.private_key)
    assert client.send(data=params).ret_code == 0
    assert client.send(method="GET", params=params).ret_code == 0
    params["Limit"] = "11"
    assert client.send(data=params).ret_code == 171


def test_the_three_array_encodings_give_identical_results(
    client: ApiClient, admin: KeyPair
) -> None:
    first, second = new_project(client, admin), new_project(client, admin)
    base = [("Action", "CreateAccessKey"), ("Admin", "true"), ("Description", "arrays")]
    answers = [
        client.call_pairs([*base, ("ProjectId.0", first), ("ProjectId.1", second)], admin),
        client.call_pairs([*base, ("ProjectId", first), ("ProjectId", second)], admin),
        client.call("CreateAccessKey", admin, {"ProjectId": [first, second], "Admin": True,
                                               "Description": "arrays"}, encoding="json"),
    ]
    assert [(a.ret_code, a.body["ProjectId"]) for a in answers] == [(0, first)] * 3
    for answer in answers:
        key = KeyPair.of(answer.body)
        seen = client.call("ListUPgSQLInstance", key, {"ProjectId": second})
        assert seen.ret_code == 0, seen.body


def test_a_repeated_key_may_also_be_signed_in_its_indexed_form(
    client: ApiClient, admin: KeyPair
) -> None:
    first, second = new_project(client, admin), new_project(client, admin)
    pairs = [("Action", "CreateAccessKey"), ("ProjectId", first), ("ProjectId", second),
             ("PublicKey", admin.public_key)]
    indexed = {"Action": "CreateAccessKey", "ProjectId.0": first, "ProjectId.1": second,
               "PublicKey": admin.public_key}
    pairs.append(("Signature", _documented_signature(indexed, admin.private_key)))
    assert client.send_form(pairs).ret_code == 0


def test_get_form_and_json_give_identical_results(client: ApiClient, admin: KeyPair) -> None:
    params: dict[str, object] = {"Offset": 0, "Limit": 1000}
    answers = [client.call("ListUPgSQLInstance", admin, params, encoding=encoding)
               for encoding in ("get", "form", "json")]
    assert {a.ret_code for a in answers} == {0}
    assert answers[0].body["DataSet"] == answers[1].body["DataSet"] == answers[2].body["DataSet"]


# --- return codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "ret_code", "message"),
    [
        ({}, 160, "Missing Action"),
        ({"Action": "ListUPgSQLInstance"}, 170, "Missing Signature"),
        ({"Action": "ListUPgSQLInstance", "Signature": "x"}, 172, "Missing PublicKey"),
        ({"Action": "ListUPgSQLInstance", "Signature": "x", "PublicKey": "nobody"}, 172,
         "PublicKey 'nobody' is unknown"),
    ],
)
def test_unsigned_requests_are_refused_with_their_own_code(
    client: ApiClient, params: dict[str, str], ret_code: int, message: str
) -> None:
    answer = client.send(data=params)
    assert (answer.status, answer.ret_code) == (200, ret_code)
    assert answer.message.startswith(message)


@pytest.mark.parametrize(
    "action", ["CreateUDBInstance", "DescribeUHostInstance", "createproject"]
)
def test_unknown_actions_are_161(client: ApiClient, admin: KeyPair, action: str) -> None:
    answer = client.call(action, admin)
    assert (answer.ret_code, answer.body["Action"]) == (161, f"{action}Response")
    assert answer.message.startswith(f"Unknown Action {action}")


def test_every_answer_is_json_with_the_request_uuid_in_header_and_body(
    client: ApiClient, admin: KeyPair
) -> None:
    for answer in (client.call("ListUPgSQLInstance", admin), client.send(data={})):
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["X-UCLOUD-REQUEST-UUID"] == answer.body["RequestUUID"]
        assert uuid.UUID(answer.body["RequestUUID"])
        assert isinstance(answer.body["RetCode"], int)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_http_methods_get_a_json_230(client: ApiClient, method: str) -> None:
    answer = client.send(method=method)
    assert (answer.status, answer.ret_code) == (200, 230)
    assert answer.message == f"HTTP method {method} is not supported: use GET or POST"


def test_a_body_over_the_limit_is_refused_with_230(client: ApiClient) -> None:
    answer = client.send(content=b"Action=X&Pad=" + b"a" * (2 << 20),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (answer.status, answer.ret_code) == (200, 230)
    assert "Request body too large" in answer.message


def test_invalid_values_are_230_and_say_what_is_allowed(
    client: ApiClient, admin: KeyPair, log_dir: Path
) -> None:
    cases: list[tuple[str, dict[str, object], str]] = [
        ("ListUPgSQLInstance", {"Limit": "abc"},
         'Limit must be an integer from 1 to 1000, got "abc"'),
        ("RegisterUPgSQLInstance", {"Name": "x", **dir_source(log_dir), "LogTimezone": "CST"},
         'LogTimezone must be an IANA time zone name like Asia/Shanghai, got "CST"'),
        ("RegisterUMongoDBNode", {"ClusterId": "c1", "Role": "leader", **dir_source(log_dir)},
         "Role must be one of primary, secondary, arbiter, mongos, configsvr"),
        ("RegisterUPgSQLInstance", {"Name": "x", "SourceType": "dir", "LogDir": "/nonexistent"},
         "the log source does not answer"),
    ]
    for action, params, message in cases:
        answer = client.call(action, admin, params)
        assert answer.ret_code == 230, answer.body
        assert answer.message.startswith(message)


def test_rate_limit_answers_153_to_a_key_that_floods_and_lets_it_recover(
    client: ApiClient, admin: KeyPair
) -> None:
    flooder = new_key(client, admin, admin.project_id)
    codes: list[int] = []
    # Concurrent calls outpace the default 50 requests/s even on a slow machine.
    with ThreadPoolExecutor(max_workers=4) as pool:
        while 153 not in codes and len(codes) < 2000:
            codes += pool.map(lambda _: client.call("ListUPgSQLInstance", flooder).ret_code,
                              range(40))
    assert codes[0] == 0
    assert set(codes) == {0, 153}
    assert client.call("ListUPgSQLInstance", admin).ret_code == 0  # other keys unaffected
    time.sleep(0.5)
    assert client.call("ListUPgSQLInstance", flooder).ret_code == 0


# --- admin rights and tenant isolation ------------------------------------------------------


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_admin_actions_are_299_for_non_admin_keys(
    client: ApiClient, admin: KeyPair, action: str
) -> None:
    user = new_key(client, admin, admin.project_id, is_admin=False)
    answer = client.call(action, user, {"Name": "x", "InstanceID": "upgsql-x", "ClusterId": "c"})
    assert answer.ret_code == 299
    assert action in answer.message


@pytest.fixture(scope="module")
def tenants(client: ApiClient, admin: KeyPair, log_dir: Path) -> dict[str, Any]:
    """Two projects with one admin key each; project B owns an instance, a cluster and a key."""
    project_a, project_b = new_project(client, admin), new_project(client, admin)
    key_a, key_b = new_key(client, admin, project_a), new_key(client, admin, project_b)
    instance = client.call("RegisterUPgSQLInstance", key_b, {"Name": "b-pg", **dir_source(log_dir)})
    cluster = client.call("RegisterUMongoDBCluster", key_b, {"Name": "b-mongo"})
    assert (instance.ret_code, cluster.ret_code) == (0, 0)
    key_of_b = new_key(client, admin, project_b)
    return {"a": key_a, "b": key_b, "project_b": project_b,
            "InstanceID": instance.body["InstanceID"], "ClusterId": cluster.body["ClusterId"],
            "TargetPublicKey": key_of_b.public_key}


def _by_id_calls(log_dir: Path) -> list[tuple[str, str, dict[str, object]]]:
    return [
        ("DeregisterUPgSQLInstance", "InstanceID", {}),
        ("DeregisterUMongoDBCluster", "ClusterId", {}),
        ("RegisterUMongoDBNode", "ClusterId", {"Role": "primary", **dir_source(log_dir)}),
        ("DeleteAccessKey", "TargetPublicKey", {}),
    ]


def test_a_key_gets_1001_for_every_resource_of_another_project_and_no_hint(
    client: ApiClient, tenants: dict[str, Any], log_dir: Path
) -> None:
    for action, id_param, extra in _by_id_calls(log_dir):
        foreign_id = str(tenants[id_param])
        made_up_id = foreign_id[:-4] + "zzzz"
        foreign = client.call(action, tenants["a"], {id_param: foreign_id, **extra})
        missing = client.call(action, tenants["a"], {id_param: made_up_id, **extra})
        assert (foreign.ret_code, missing.ret_code) == (1001, 1001), (action, foreign.body)
        hint_free = foreign.message.replace(foreign_id, "ID")
        assert hint_free == missing.message.replace(made_up_id, "ID")


def test_lists_show_only_the_callers_project(client: ApiClient, tenants: dict[str, Any]) -> None:
    pg = client.call("ListUPgSQLInstance", tenants["a"], {"Limit": 1000})
    mongo = client.call("ListUMongoDBInstances", tenants["a"], {"Limit": 1000})
    assert (pg.body["DataSet"], pg.body["TotalCount"]) == ([], 0)
    assert (mongo.body["DataSet"], mongo.body["TotalCount"]) == ([], 0)
    named = client.call("ListUPgSQLInstance", tenants["a"], {"ProjectId": tenants["project_b"]})
    assert named.ret_code == 292


def test_the_owner_still_reaches_its_resources_but_not_in_another_region(
    client: ApiClient, tenants: dict[str, Any]
) -> None:
    elsewhere = client.call("DeregisterUMongoDBCluster", tenants["b"],
                            {"ClusterId": tenants["ClusterId"], "Region": "cn-sh2"})
    assert elsewhere.ret_code == 1001
    listed = client.call("ListUPgSQLInstance", tenants["b"], {"Limit": 1000})
    assert [row["InstanceID"] for row in listed.body["DataSet"]] == [tenants["InstanceID"]]
    assert client.call("ListUPgSQLInstance", tenants["b"], {"Region": "cn-sh2"}).body[
        "TotalCount"] == 0


# --- secrets never come back out ------------------------------------------------------------


def test_no_secret_appears_in_answers_audit_records_or_the_server_log(
    server: ApiServer, client: ApiClient, admin: KeyPair, log_dir: Path
) -> None:
    password = "pw-" + secrets.token_hex(8)
    ssh_key = ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + secrets.token_hex(32)
               + "\n-----END OPENSSH PRIVATE KEY-----\n")
    created = new_key(client, admin, admin.project_id)
    answers = [
        client.call("RegisterUPgSQLInstance", admin, {
            "Name": "with-dsn", "SourceType": "postgres",
            "DSN": f"postgresql://app:{password}@127.0.0.1:1/postgres?connect_timeout=2"}),
        client.call("RegisterUPgSQLInstance", admin, {
            "Name": "with-ssh", "SourceType": "ssh", "SSHHost": "127.0.0.1", "SSHPort": 1,
            "SSHUser": "postgres", "SSHPrivateKey": ssh_key, "LogDir": "/var/log"}),
        client.call("RegisterUPgSQLInstance", admin, {
            "Name": "bad dsn", "SourceType": "postgres", "DSN": password * 400}),
        client.call("RegisterUPgSQLInstance", admin, {
            "Name": "by-get", "SourceType": "postgres",
            "DSN": f"postgresql://app:{password}@127.0.0.1:1/db"}, encoding="get"),
        client.call("RegisterUPgSQLInstance", admin, {"Name": "ok", **dir_source(log_dir)}),
        client.call("ListUPgSQLInstance", admin, {"Limit": 1000}),
        client.call("ListUPgSQLInstance", created),
    ]
    assert [a.ret_code for a in answers[:4]] == [230, 230, 230, 230]
    secrets_to_hide = [password, secrets_line(ssh_key), admin.private_key, created.private_key]
    published = json.dumps([a.body for a in answers]) + server.log_text()
    published += json.dumps(audit_rows(server))
    for secret in secrets_to_hide:
        assert secret not in published


def secrets_line(ssh_key: str) -> str:
    return ssh_key.splitlines()[1]


def audit_rows(server: ApiServer) -> list[dict[str, Any]]:
    url = server.database_url or f"sqlite:///{server.data_dir / 'dblogpack.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM audit_records"))]
    finally:
        engine.dispose()


def test_every_signed_call_leaves_an_audit_record_without_its_signature(
    server: ApiServer, client: ApiClient, admin: KeyPair
) -> None:
    ok = client.call("ListUPgSQLInstance", admin)
    refused = client.call("DeregisterUPgSQLInstance", admin, {"InstanceID": "upgsql-none"})
    records = {row["request_uuid"]: row for row in audit_rows(server)}
    assert records[ok.body["RequestUUID"]]["ret_code"] == 0
    assert records[ok.body["RequestUUID"]]["action"] == "ListUPgSQLInstance"
    assert records[ok.body["RequestUUID"]]["public_key"] == admin.public_key
    assert records[refused.body["RequestUUID"]]["ret_code"] == 1001
    assert records[refused.body["RequestUUID"]]["resource_id"] == "upgsql-none"
    assert all("Signature" not in json.dumps(row, default=str) for row in records.values())
