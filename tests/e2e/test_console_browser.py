"""The web console in a real browser (Debian's Chromium driven by Playwright) against a real
`dblogpack serve` with package workers and a MongoDB cluster whose node logs were generated:
sign in, see the cluster, create an ErrorLog package, watch it finish, download it, read its
summary, delete it, and read the API's words for a window longer than 24 h.

A failing test leaves a screenshot in test-output/console/. With DBLOGPACK_UPDATE_SCREENSHOT=1
the run also writes docs/console.png (a packages page with a finished package).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from tests.support.acceptance import generate_node_logs, recent_window
from tests.support.apiserver import ApiClient, ApiServer, KeyPair, ok, start_server

from dblogpack.synth import Plan, build, generate

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "console"
SCREENSHOT = REPO / "docs" / "console.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The browser's own zone, far from UTC, so local pickers and UTC beside them differ visibly.
BROWSER_ZONE = "Asia/Shanghai"
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)  # a package takes a few seconds to build


@dataclass(frozen=True)
class World:
    server: ApiServer
    admin: KeyPair
    cluster_id: str
    node_id: str
    window: tuple[float, float]
    instance_id: str
    pg_files: list[str]
    broken_cluster_id: str
    gone_node_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    logs_begin, logs_end, window = recent_window(time.time())
    node_dir = tmp_path_factory.mktemp("console-node")
    generate_node_logs(node_dir, "mongo-json", logs_begin, logs_end, seed=7, size=600_000)
    # One attempt: a package of a node whose logs are gone fails at once, with its message.
    env = {"DBLOGPACK_WORKERS": "2", "DBLOGPACK_JOB_ATTEMPTS": "1"}
    with (
        start_server(tmp_path_factory.mktemp("console") / "data", env) as server,
        ApiClient(server) as client,
    ):
        admin = server.admin
        cluster = ok(client.call("RegisterUMongoDBCluster", admin, {"Name": "orders"}))
        node = ok(client.call("RegisterUMongoDBNode", admin, {
            "ClusterId": cluster["ClusterId"], "Role": "primary", "SourceType": "dir",
            "LogDir": str(node_dir), "LogPattern": "mongod.log*",
        }))
        broken = ok(client.call("RegisterUMongoDBCluster", admin, {"Name": "retired"}))
        gone_dir = tmp_path_factory.mktemp("console-gone")
        (gone_dir / "mongod.log").write_bytes(b"")
        gone = ok(client.call("RegisterUMongoDBNode", admin, {
            "ClusterId": broken["ClusterId"], "Role": "mongos", "SourceType": "dir",
            "LogDir": str(gone_dir), "LogPattern": "mongod.log*",
        }))
        shutil.rmtree(gone_dir)  # the node's logs vanish after registration
        pg_dir = tmp_path_factory.mktemp("console-pg")
        pg_plan = Plan(start=logs_begin, end=logs_end, size=300_000, seed=5, rotate_bytes=120_000)
        generate(build("pg-stderr", timezone="UTC"), pg_dir / "postgresql.log", pg_plan)
        instance = ok(client.call("RegisterUPgSQLInstance", admin, {
            "Name": "billing", "SourceType": "dir", "LogDir": str(pg_dir),
            "LogPattern": "postgresql*.log", "LogFormat": "pg-stderr",
            "LogLinePrefix": "%m [%p] ", "LogTimezone": "UTC",
        }))
        assert window.begin is not None and window.end is not None
        yield World(server, admin, cluster["ClusterId"], node["NodeId"],
                    (window.begin, window.end), instance["InstanceID"],
                    sorted(path.name for path in pg_dir.iterdir()),
                    broken["ClusterId"], gone["NodeId"])


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    browser_context = browser.new_context(
        timezone_id=BROWSER_ZONE, accept_downloads=True, viewport={"width": 1366, "height": 900}
    )
    browser_context.set_default_timeout(TIMEOUT_MS)
    yield browser_context
    browser_context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A browser tab; screenshotted into test-output/console/ when its test fails."""
    failures_before = request.session.testsfailed
    tab = context.new_page()
    yield tab
    # The call phase is reported before teardown runs: a new failure is this test's.
    if request.session.testsfailed > failures_before:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)


def sign_in(page: Page, world: World, private_key: str | None = None) -> None:
    page.goto(world.server.url + "console")  # as typed: no trailing slash
    page.get_by_label("PublicKey").fill(world.admin.public_key)
    page.get_by_label("PrivateKey").fill(private_key or world.admin.private_key)
    page.get_by_role("button", name="Sign in").click()


def open_cluster(page: Page, world: World) -> None:
    page.get_by_role("link", name=world.cluster_id).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(world.cluster_id)


def local_picker_value(ts: float) -> str:
    """What a user types into a datetime-local picker in the browser's zone for `ts`."""
    return datetime.fromtimestamp(ts, ZoneInfo(BROWSER_ZONE)).strftime("%Y-%m-%dT%H:%M:%S")


def fill_package_form(page: Page, name: str, begin: float, end: float) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Log type").select_option("ErrorLog")
    page.get_by_label("Begin (your local time)").fill(local_picker_value(begin))
    page.get_by_label("End (your local time)").fill(local_picker_value(end))


def package_row(page: Page, name: str) -> Any:
    return page.locator("tr", has=page.get_by_text(name, exact=True))


def test_a_wrong_private_key_is_refused_and_the_right_pair_signs_in(
    page: Page, world: World, context: BrowserContext
) -> None:
    sign_in(page, world, private_key="0" * 40)
    expect(page.get_by_role("alert")).to_have_text(
        "this PrivateKey does not belong to this PublicKey"
    )
    sign_in(page, world)
    expect(page.get_by_role("heading", name="MongoDB clusters")).to_be_visible()
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert world.admin.private_key not in cookie["value"]


def test_signing_in_and_opening_a_cluster_work_from_the_keyboard(
    page: Page, world: World
) -> None:
    page.goto(world.server.url + "console/")
    expect(page.get_by_label("PublicKey")).to_be_focused()
    page.keyboard.type(world.admin.public_key)
    page.keyboard.press("Tab")
    page.keyboard.type(world.admin.private_key)
    page.keyboard.press("Enter")
    cluster_link = page.get_by_role("link", name=world.cluster_id)
    expect(cluster_link).to_be_visible()
    for _ in range(20):
        page.keyboard.press("Tab")
        if cluster_link.evaluate("link => link === document.activeElement"):
            break
    expect(cluster_link).to_be_focused()
    # The focus ring is drawn, not left to the browser's default (which some resets remove).
    assert cluster_link.evaluate("link => getComputedStyle(link).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text(world.cluster_id)


def test_the_project_page_shows_the_cluster_with_its_nodes(page: Page, world: World) -> None:
    sign_in(page, world)
    row = page.locator("tr", has=page.get_by_role("link", name=world.cluster_id))
    expect(row).to_contain_text("orders")
    expect(row).to_contain_text(f"{world.node_id} primary")


def test_an_error_log_package_is_created_watched_downloaded_summarised_and_deleted(
    page: Page, world: World, tmp_path: Path
) -> None:
    sign_in(page, world)
    open_cluster(page, world)
    begin, end = world.window
    fill_package_form(page, "console-errors", begin, end)
    expected_utc = datetime.fromtimestamp(begin, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    expect(page.locator("#begin-utc")).to_have_text(f"= {expected_utc}")
    page.get_by_role("button", name="Create package").click()

    expect(page.locator(".notice")).to_contain_text("queued")
    row = package_row(page, "console-errors")
    # The page's script follows the progress and reloads when the package is done.
    expect(row.locator(".badge")).to_have_text("Package_Success")
    expect(row).to_contain_text(expected_utc)
    if os.environ.get("DBLOGPACK_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download").click()
    saved = tmp_path / "package.tar.gz"
    download_info.value.save_as(saved)
    assert download_info.value.suggested_filename == "console-errors.tar.gz"
    manifest = read_manifest(saved.read_bytes())
    assert manifest["package"]["log_type"] == "error"
    assert manifest["package"]["node_id"] == world.node_id
    assert manifest["window"]["begin"] == begin and manifest["window"]["end"] == end
    assert manifest["totals"]["entries"] > 0
    expect(row).to_contain_text(str(manifest["totals"]["entries"]))

    row.get_by_role("link", name="Summary").click()
    expect(page.get_by_role("heading", name="Summary of console-errors")).to_be_visible()
    expect(page.locator("#summary-entries")).to_have_text(str(manifest["totals"]["entries"]))
    severities = page.locator("#by-severity tbody tr")
    expect(severities.first).to_be_visible()
    assert {cell.strip() for cell in severities.locator("td:first-child").all_inner_texts()} <= {
        "W", "E", "F"
    }
    expect(page.locator("#by-code tbody tr").first).to_be_visible()

    page.get_by_role("link", name=world.cluster_id).click()
    package_row(page, "console-errors").get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_have_text("Package console-errors deleted.")
    expect(package_row(page, "console-errors")).to_have_count(0)


def test_a_slow_log_summary_ranks_query_fingerprints_by_total_duration(
    page: Page, world: World
) -> None:
    sign_in(page, world)
    open_cluster(page, world)
    begin, end = world.window
    fill_package_form(page, "console-slow", begin, end)
    page.get_by_label("Log type").select_option("SlowLog")
    page.get_by_role("button", name="Create package").click()
    row = package_row(page, "console-slow")
    expect(row.locator(".badge")).to_have_text("Package_Success")
    row.get_by_role("link", name="Summary").click()
    rows = page.locator("#fingerprints tbody tr")
    expect(rows.first).to_be_visible()
    totals = [float(text) for text in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert totals == sorted(totals, reverse=True) and totals[0] > 0
    expect(rows.first.locator("code.statement")).not_to_be_empty()


def test_a_package_that_fails_shows_its_failure_message(page: Page, world: World) -> None:
    sign_in(page, world)
    page.get_by_role("link", name=world.broken_cluster_id).click()
    begin, end = world.window
    fill_package_form(page, "from-gone-logs", begin, end)
    page.get_by_role("button", name="Create package").click()
    row = package_row(page, "from-gone-logs")
    expect(row.locator(".badge")).to_have_text("Package_Failed")
    expect(row.locator(".failure")).to_contain_text(world.gone_node_id)
    expect(row.get_by_role("link", name="Download")).to_have_count(0)


def test_a_window_longer_than_24_hours_shows_the_apis_message(page: Page, world: World) -> None:
    sign_in(page, world)
    open_cluster(page, world)
    end = float(int(time.time()) - 60)
    fill_package_form(page, "too-long", end - 25 * 3600, end)
    page.get_by_role("button", name="Create package").click()
    expect(page.get_by_role("alert")).to_have_text(
        "End - Begin is 90000 s (25.0 h): one package covers at most 86400 s (24 h); "
        "split the window into several packages"
    )
    # The form keeps what was typed, so the user can correct it.
    expect(page.get_by_label("Name", exact=True)).to_have_value("too-long")
    expect(package_row(page, "too-long")).to_have_count(0)


def test_a_postgresql_error_package_of_chosen_files_succeeds(page: Page, world: World) -> None:
    sign_in(page, world)
    page.get_by_role("link", name=world.instance_id).click()
    files = page.get_by_role("group", name="Log files").get_by_role("checkbox")
    expect(files).to_have_count(len(world.pg_files))
    chosen = world.pg_files[0]
    page.get_by_role("checkbox", name=chosen).check()
    page.get_by_label("Name", exact=True).fill("pg-errors")
    page.get_by_label("Log type").select_option("error")
    page.get_by_role("button", name="Create package").click()
    row = package_row(page, "pg-errors")
    expect(row.locator(".badge")).to_have_text("Package_Success")
    entries = int(row.locator('[data-field="entries"]').inner_text())
    assert entries > 0


def test_a_postgresql_package_without_files_shows_the_apis_message(
    page: Page, world: World
) -> None:
    sign_in(page, world)
    page.get_by_role("link", name=world.instance_id).click()
    page.get_by_label("Name", exact=True).fill("no-files")
    page.get_by_role("button", name="Create package").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Missing parameter BackupFile: name one or more log files"
    )


def read_manifest(data: bytes) -> dict[str, Any]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest: dict[str, Any] = json.loads(handle.read())
    return manifest
