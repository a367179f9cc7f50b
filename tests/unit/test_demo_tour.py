"""What `serve --demo` prints and keeps: the tour's key lines and commands, and bounded logs.

No processes here: the demo's parts are built but not started (tests/e2e/test_demo.py runs them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dblogpack.demo import Demo
from dblogpack.demo.announce import announcement
from dblogpack.demo.mongo import MongoFeeders, demo_nodes, prune_oldest
from dblogpack.demo.pgcluster import DemoPgCluster, PgCredentials
from dblogpack.demo.workload import ShopWorkload
from dblogpack.settings import Settings, load_settings

KEY = {"PublicKey": "PubKey123", "PrivateKey": "0123456789abcdef" * 2 + "deadbeef",
       "ProjectId": "org-demo"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    loaded = load_settings({"data_dir": str(tmp_path / "data"), "port": 18080}, environ={})
    loaded.data_dir.mkdir()
    loaded.admin_key_path.write_text(json.dumps(KEY))
    return loaded


@pytest.fixture
def demo(settings: Settings) -> Demo:
    demo_dir = settings.data_dir / "demo"
    cluster = DemoPgCluster(demo_dir / "pg", PgCredentials(54321, "su", "reader"))
    nodes = {"primary": "udb-p", "secondary": "udb-s", "mongos": "udb-m"}
    return Demo("upgsql-demo", "umongodb-demo", nodes, cluster,
                ShopWorkload("postgresql://x", "postgresql://y"),
                MongoFeeders(demo_nodes(demo_dir / "mongo")))


def test_the_tour_names_the_console_the_endpoint_and_every_demo_resource(
    demo: Demo, settings: Settings
) -> None:
    text = announcement(demo, settings, show_private_key=True)
    assert "http://127.0.0.1:18080/console" in text
    assert "export DBLOGPACK_ENDPOINT=http://127.0.0.1:18080/" in text
    for resource_id in ("upgsql-demo", "umongodb-demo", "udb-p", "udb-s", "udb-m"):
        assert resource_id in text


def test_the_three_commands_build_a_package_of_each_demo_resource(
    demo: Demo, settings: Settings
) -> None:
    commands = [line for line in announcement(demo, settings, show_private_key=True).splitlines()
                if " package " in line and "--wait" in line]
    assert len(commands) == 3
    assert all("--wait --out" in line for line in commands)
    assert "--node-id udb-p --type slow" in commands[0]
    assert "--node-id udb-m --type error" in commands[1]  # mongos has no slow log to package
    assert "package pgsql --instance-id upgsql-demo --type slow" in commands[2]


def test_on_a_terminal_the_tour_shows_the_private_key(demo: Demo, settings: Settings) -> None:
    text = announcement(demo, settings, show_private_key=True)
    assert f"export DBLOGPACK_PRIVATE_KEY={KEY['PrivateKey']}" in text


def test_captured_tour_reads_the_private_key_from_the_file_instead(
    demo: Demo, settings: Settings
) -> None:
    text = announcement(demo, settings, show_private_key=False)
    assert KEY["PrivateKey"] not in text
    export = next(line for line in text.splitlines() if "DBLOGPACK_PRIVATE_KEY=" in line)
    # Pasted into a shell, the line sets the real key.
    script = f'{export.strip()}; printf %s "$DBLOGPACK_PRIVATE_KEY"'
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                           timeout=30)
    assert shell.stdout == KEY["PrivateKey"]


def test_pruning_keeps_the_newest_rotated_logs(tmp_path: Path) -> None:
    for age in range(5):
        path = tmp_path / f"mongod.log.2026-01-0{age + 1}T00-00-00"
        path.write_text("x")
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    (tmp_path / "mongod.log").write_text("live")
    assert prune_oldest(tmp_path, "mongod.log.*", keep=2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mongod.log", "mongod.log.2026-01-04T00-00-00", "mongod.log.2026-01-05T00-00-00"]
