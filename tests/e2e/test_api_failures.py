"""When the metadata database breaks under a running server: answers stay JSON, an internal
error is RetCode 5000 quoting a RequestUUID that the server log explains, and a lost audit
record is loud in the log without failing the call it describes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from tests.support.apiserver import ApiClient, ApiServer, serve_for_test


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ApiServer]:
    with serve_for_test(request, tmp_path_factory) as api_server:
        yield api_server


@contextmanager
def table_missing(server: ApiServer, table: str) -> Iterator[None]:
    """The server's `table` renamed away for the duration of the block."""
    url = server.database_url or f"sqlite:///{server.data_dir / 'dblogpack.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        yield
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
    finally:
        engine.dispose()


def log_records(server: ApiServer, request_uuid: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.log_text().splitlines() if request_uuid in line]
    return [line for line in lines if isinstance(line, dict)]


def test_a_broken_metadata_database_is_5000_with_a_request_uuid_the_log_explains(
    server: ApiServer, client: ApiClient
) -> None:
    admin = server.admin
    with table_missing(server, "access_keys"):
        answer = client.call("ListUPgSQLInstance", admin)
    assert (answer.status, answer.ret_code) == (200, 5000)
    request_uuid = answer.body["RequestUUID"]
    assert answer.message == (
        f"Internal error; the server log has the details under RequestUUID {request_uuid}")
    assert "access_keys" not in answer.message
    logged = log_records(server, request_uuid)
    assert any(r["level"] == "ERROR" and "access_keys" in str(r.get("exception")) for r in logged)
    assert admin.private_key not in server.log_text()
    assert client.call("ListUPgSQLInstance", admin).ret_code == 0  # and it recovers


def test_a_lost_audit_record_is_logged_and_the_call_still_answers(
    server: ApiServer, client: ApiClient
) -> None:
    with table_missing(server, "audit_records"):
        answer = client.call("ListUPgSQLInstance", server.admin)
    assert answer.ret_code == 0
    logged = log_records(server, answer.body["RequestUUID"])
    assert any(r["level"] == "ERROR" and "audit record lost" in str(r["message"]) for r in logged)
