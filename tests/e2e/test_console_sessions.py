"""The console's sessions over plain HTTP against a real `dblogpack serve`: what the cookie holds
and refuses, CSRF and cross-site POSTs, keys that may not list resources, and projects a key may
not reach.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from tests.support.acceptance import generate_node_logs
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok, start_server

COOKIE = "dblogpack_console"


@dataclass(frozen=True)
class World:
    server: ApiServer
    admin: KeyPair
    member: KeyPair  # a non-admin key of the admin's project
    cluster_id: str
    node_id: str
    other_cluster_id: str  # in a project the member is not granted


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node_dir = tmp_path_factory.mktemp("sessions-node")
    now = time.time()
    generate_node_logs(node_dir, "mongo-json", now - 3600, now - 60, seed=3, size=50_000)
    data_dir = tmp_path_factory.mktemp("sessions") / "data"
    with start_server(data_dir, {"DBLOGPACK_WORKERS": "0"}) as server, ApiClient(server) as client:
        admin = server.admin
        member = KeyPair.of(ok(client.call("CreateAccessKey", admin, {"Description": "dba"})))
        other = ok(client.call("CreateProject", admin, {"Name": "elsewhere"}))["ProjectId"]
        clusters = [
            ok(client.call("RegisterUMongoDBCluster", admin, {"Name": name, **scope}))["ClusterId"]
            for name, scope in (("orders", {}), ("hidden", {"ProjectId": other}))
        ]
        node = ok(client.call("RegisterUMongoDBNode", admin, {
            "ClusterId": clusters[0], "Role": "primary", "SourceType": "dir",
            "LogDir": str(node_dir), "LogPattern": "mongod.log*",
        }))["NodeId"]
        yield World(server, admin, member, clusters[0], node, clusters[1])


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        yield client


def sign_in(http: httpx.Client, key: KeyPair) -> httpx.Response:
    return http.post("/console/signin",
                     data={"public_key": key.public_key, "private_key": key.private_key})


def session_cookie(http: httpx.Client, key: KeyPair) -> str:
    response = sign_in(http, key)
    assert response.status_code == 303, response.text
    match = re.match(rf"{COOKIE}=([^;]+);", response.headers["set-cookie"])
    assert match is not None
    return match.group(1)


def get(http: httpx.Client, path: str, cookie: str) -> httpx.Response:
    # Sent by hand: a Secure cookie never leaves a cookie jar over plain http.
    return http.get(path, headers={"Cookie": f"{COOKIE}={cookie}"})


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None, page.text[:500]
    return match.group(1)


def test_signing_in_sets_a_strict_httponly_secure_cookie_without_the_private_key(
    http: httpx.Client, world: World
) -> None:
    response = sign_in(http, world.admin)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert {"HttpOnly", "Secure", "SameSite=strict", "Path=/console"} <= {
        part.strip() for part in cookie.split(";")
    }
    assert world.admin.private_key not in cookie
    assert world.admin.private_key not in world.server.log_text()


def test_pages_without_a_valid_session_send_the_visitor_to_sign_in(
    http: httpx.Client, world: World
) -> None:
    cookie = session_cookie(http, world.admin)
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    for value in ("", forged, "not-a-session"):
        response = get(http, "/console/", value)
        assert response.status_code == 303
        assert response.headers["location"].endswith("/console/signin")
    assert get(http, "/console/", cookie).status_code == 303  # on to the default project


def test_an_unknown_public_key_is_refused_with_the_apis_words(
    http: httpx.Client, world: World
) -> None:
    response = http.post("/console/signin", data={"public_key": "nobody", "private_key": "x"})
    assert response.status_code == 401
    assert "PublicKey &#39;nobody&#39; is unknown" in response.text


def test_a_post_without_this_sessions_csrf_token_changes_nothing(
    http: httpx.Client, world: World
) -> None:
    cookie = session_cookie(http, world.admin)
    other_session_page = get(
        http, resource_path(world), session_cookie(http, world.admin)
    )
    form = {"name": "csrf-probe", "log_type": "ErrorLog", "node": world.node_id,
            "begin": str(int(time.time()) - 600), "end": str(int(time.time()) - 60)}
    for token in ("", csrf_of(other_session_page)):
        response = http.post(resource_path(world), data={**form, "csrf": token},
                             headers={"Cookie": f"{COOKIE}={cookie}"})
        assert response.status_code == 403
        assert "this form has expired" in response.text
    page = get(http, resource_path(world), cookie)
    assert "csrf-probe" not in page.text
    # The same form with this session's own token goes through.
    accepted = http.post(resource_path(world), data={**form, "csrf": csrf_of(page)},
                         headers={"Cookie": f"{COOKIE}={cookie}"})
    assert accepted.status_code == 303
    assert "csrf-probe" in get(http, resource_path(world), cookie).text


def test_a_post_from_another_site_is_refused(http: httpx.Client, world: World) -> None:
    cookie = session_cookie(http, world.admin)
    page = get(http, resource_path(world), cookie)
    response = http.post(
        f"/console/r/{world.admin.project_id}/mongodb/{world.cluster_id}/packages/x/delete",
        data={"csrf": csrf_of(page)},
        headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://attacker.example"},
    )
    assert response.status_code == 403
    assert "cross-site request refused" in response.text


def test_a_key_that_may_not_list_resources_opens_a_cluster_by_its_id(
    http: httpx.Client, world: World
) -> None:
    cookie = session_cookie(http, world.member)
    project = get(http, f"/console/p/{world.member.project_id}", cookie)
    assert "this action needs an admin key" in project.text
    opened = get(http, f"/console/p/{world.member.project_id}/open?kind=mongodb"
                       f"&id={world.cluster_id}", cookie)
    assert opened.headers["location"].endswith(resource_path(world))
    assert "MongoDB cluster orders" in get(http, resource_path(world), cookie).text


def test_a_cluster_or_project_outside_the_keys_projects_is_not_found(
    http: httpx.Client, world: World
) -> None:
    cookie = session_cookie(http, world.member)
    hidden = get(http, f"/console/r/{world.member.project_id}/mongodb/{world.other_cluster_id}",
                 cookie)
    assert hidden.status_code == 404
    assert f"ClusterId &#39;{world.other_cluster_id}&#39; not found" in hidden.text
    elsewhere = get(http, "/console/p/org-elsewhere", cookie)
    assert elsewhere.status_code == 404
    assert "not found or not granted to this key" in elsewhere.text


def resource_path(world: World) -> str:
    return f"/console/r/{world.admin.project_id}/mongodb/{world.cluster_id}"


def test_deleting_a_key_ends_its_console_sessions(http: httpx.Client, world: World) -> None:
    with ApiClient(world.server) as client:
        doomed = KeyPair.of(ok(client.call("CreateAccessKey", world.admin, {})))
        cookie = session_cookie(http, doomed)
        assert get(http, f"/console/p/{doomed.project_id}", cookie).status_code == 200
        ok(client.call("DeleteAccessKey", world.admin, {"TargetPublicKey": doomed.public_key}))
    response = get(http, f"/console/p/{doomed.project_id}", cookie)
    assert response.status_code == 303
    assert response.headers["location"].endswith("/console/signin")


def test_sign_ins_and_package_changes_leave_audit_records(
    http: httpx.Client, world: World
) -> None:
    http.post("/console/signin",
              data={"public_key": world.admin.public_key, "private_key": "0" * 40})
    cookie = session_cookie(http, world.admin)
    page = get(http, resource_path(world), cookie)
    refused = http.post(resource_path(world), headers={"Cookie": f"{COOKIE}={cookie}"}, data={
        "csrf": csrf_of(page), "name": "audited", "log_type": "ErrorLog", "node": world.node_id,
        "begin": "1", "end": "2",
    })
    assert refused.status_code == 400
    with ApiClient(world.server) as client:
        records = ok(client.call("ListAuditRecords", world.admin, {
            "TargetPublicKey": world.admin.public_key, "Limit": 100,
        }))["DataSet"]
    seen = {(r["Action"], r["ResourceId"], r["RetCode"]) for r in records}
    assert {("Console.SignIn", None, 171), ("Console.SignIn", None, 0),
            ("Console.BackupUMongoDBLog", world.cluster_id, 230)} <= seen


def test_signing_out_removes_the_cookie(http: httpx.Client, world: World) -> None:
    cookie = session_cookie(http, world.admin)
    page = get(http, resource_path(world), cookie)
    response = http.post("/console/signout", data={"csrf": csrf_of(page)},
                         headers={"Cookie": f"{COOKIE}={cookie}"})
    assert response.status_code == 303
    assert response.headers["location"].endswith("/console/signin")
    assert re.match(rf'{COOKIE}="?"?; .*Max-Age=0', response.headers["set-cookie"])


def test_the_progress_endpoint_reports_each_package_for_the_pages_script(
    http: httpx.Client, world: World
) -> None:
    cookie = session_cookie(http, world.admin)
    page = get(http, resource_path(world), cookie)
    now = int(time.time())
    created = http.post(resource_path(world), headers={"Cookie": f"{COOKIE}={cookie}"}, data={
        "csrf": csrf_of(page), "name": "queued-only", "log_type": "SlowLog",
        "node": world.node_id, "begin": str(now - 600), "end": str(now - 60),
    })
    package_id = created.headers["location"].split("created=")[1]
    progress = get(http, resource_path(world) + "/progress", cookie)
    assert progress.headers["content-type"] == "application/json"
    rows = {row["id"]: row for row in progress.json()["packages"]}
    # This server runs no workers: the package waits in the queue.
    assert rows[package_id] == {"id": package_id, "state": "Package_Running", "progress": 0,
                                "message": "", "size": "", "entries": None, "final": False,
                                "queued": True}


def test_a_queued_package_is_cancelled_from_its_row(http: httpx.Client, world: World) -> None:
    """The node's slots are all taken by queued packages (this server runs no workers): the
    DBA cancels one from its row, and the node takes a new package again."""
    cookie = session_cookie(http, world.admin)
    headers = {"Cookie": f"{COOKIE}={cookie}"}

    def create(name: str) -> httpx.Response:
        page = get(http, resource_path(world), cookie)
        now = int(time.time())
        return http.post(resource_path(world), headers=headers, data={
            "csrf": csrf_of(page), "name": name, "log_type": "ErrorLog", "node": world.node_id,
            "begin": str(now - 600), "end": str(now - 60),
        })

    for attempt in range(3):
        refused = create(f"night-{attempt}")
        if refused.status_code != 303:
            break
    assert "are still running" in refused.text
    with ApiClient(world.server) as client:
        listed = ok(client.call("ListUMongoDBLogPackage", world.admin,
                                {"ClusterId": world.cluster_id, "Limit": 100}))["DataSet"]
        victim = next(row for row in listed if row["State"] == "Package_Running")
        page = get(http, resource_path(world), cookie)
        assert f'aria-label="Cancel {victim["Name"]}"' in page.text
        cancelled = http.post(f"{resource_path(world)}/packages/{victim['Id']}/delete",
                              headers=headers, data={"csrf": csrf_of(page)})
        assert cancelled.status_code == 303
        assert cancelled.headers["location"].endswith(f"?deleted={victim['Name']}")
        listed = ok(client.call("ListUMongoDBLogPackage", world.admin,
                                {"ClusterId": world.cluster_id, "Limit": 100}))["DataSet"]
    assert victim["Id"] not in {row["Id"] for row in listed}
    assert create("night-again").status_code == 303  # the node has room again
