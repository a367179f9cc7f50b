"""/healthz's check on a real embedded service (SQLite catalog, file store): a store that works
is trusted for a few seconds, a broken one is reported with its reason until it works again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dblogpack.app import Services, open_services
from dblogpack.server import HealthCheck
from dblogpack.settings import load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    opened = open_services(load_settings({"data_dir": str(tmp_path / "data")}))
    yield opened
    opened.close()


def break_store(services: Services) -> Path:
    store = services.settings.data_dir / "packages"
    shutil.rmtree(store, ignore_errors=True)  # made by the first package or probe
    store.write_text("not a directory")
    return store


def test_a_working_service_is_healthy(services: Services) -> None:
    assert HealthCheck(services).report() == (
        True, {"status": "ok", "database": "ok", "store": "ok"})


def test_a_good_store_probe_is_trusted_for_its_ttl_then_probed_again(services: Services) -> None:
    clock = Clock()
    health = HealthCheck(services, store_ttl=5.0, clock=clock)
    assert health.report()[0]
    store = break_store(services)
    clock.now += 4.9
    assert health.report()[0], "within the TTL the last good probe stands"
    clock.now += 0.2
    healthy, report = health.report()
    assert not healthy
    assert report["status"] == "unavailable" and report["database"] == "ok"
    assert str(store) in report["store"]


def test_a_failed_store_probe_is_repeated_so_recovery_shows_at_once(services: Services) -> None:
    clock = Clock()
    health = HealthCheck(services, store_ttl=5.0, clock=clock)
    store = break_store(services)
    assert not health.report()[0]
    store.unlink()
    store.mkdir()
    assert health.report() == (True, {"status": "ok", "database": "ok", "store": "ok"})
