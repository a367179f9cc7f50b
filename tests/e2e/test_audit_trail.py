"""The audit trail of a real `dblogpack serve` under concurrent signed calls: every answered call
has its record, none twice, also when the server is stopped (SIGTERM) in the middle of them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from tests.support.apiserver import ApiClient, ApiServer, ok, start_server

CLIENTS = 8
UNLIMITED = {"DBLOGPACK_RATE_LIMIT": "0"}  # a rate-limited call (153) is refused before auditing


def _call_until(server: ApiServer, stop: threading.Event, answered: list[str]) -> None:
    """List calls until `stop` or until the server goes away; the RequestUUIDs answered."""
    with ApiClient(server) as client:
        while not stop.is_set():
            try:
                answer = client.call("ListUPgSQLLogPackage", server.admin, {"Limit": 5})
            except httpx.HTTPError:
                return  # the server is stopping
            answered.append(ok(answer)["RequestUUID"])


def _audited(server: ApiServer) -> list[str]:
    with ApiClient(server) as client:
        uuids: list[str] = []
        while True:
            page = ok(client.call("ListAuditRecords", server.admin, {
                "TargetAction": "ListUPgSQLLogPackage", "Offset": len(uuids), "Limit": 1000,
            }))
            uuids += [record["RequestUUID"] for record in page["DataSet"]]
            if len(uuids) >= page["TotalCount"]:
                return uuids


def test_every_answered_call_is_audited_once_even_across_a_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    answered: list[str] = []
    stop = threading.Event()
    with start_server(data_dir, UNLIMITED) as server:
        threads = [threading.Thread(target=_call_until, args=(server, stop, answered))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        server.stop()  # SIGTERM while the clients keep calling
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(answered) > 100
    with start_server(data_dir, UNLIMITED) as restarted:
        audited = _audited(restarted)
    assert len(audited) == len(set(audited))
    assert set(answered) <= set(audited)
