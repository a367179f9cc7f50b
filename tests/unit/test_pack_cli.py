"""`dblogpack pack`: the offline engine from the command line, as a user runs it."""

from __future__ import annotations

import gc
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.unit.engine_logs import BASE_MS, members, mixed, reference, write_log

from dblogpack.cli import build_parser
from dblogpack.cli.pack import add_pack, plain_pack_args
from dblogpack.model import LogKind, TimeWindow

DBLOGPACK = [sys.executable, "-m", "dblogpack.cli"]


def dblogpack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DBLOGPACK, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_pack_writes_the_package_and_says_what_it_holds(tmp_path: Path) -> None:
    entries = mixed(BASE_MS, 300)
    (tmp_path / "logs").mkdir()
    write_log(tmp_path / "logs" / "postgresql.log", entries)
    out = tmp_path / "slow.tar.gz"
    begin, end = (BASE_MS + 10_000) / 1000, (BASE_MS + 200_000) / 1000

    done = dblogpack("pack", str(tmp_path / "logs"), "--type", "slow", "--begin", str(begin),
                     "--end", str(end), "--out", str(out))

    assert done.returncode == 0, done.stderr
    expected = reference(entries, TimeWindow(begin, end), LogKind.SLOW)
    assert done.stdout.startswith(f"{out}: {expected.count(b'duration: ')} entries from 1 of 1")
    package = members(out)
    assert package["logs/postgresql.log"] == expected
    manifest = json.loads(package["manifest.json"])
    assert manifest["package"]["name"] == "slow" and manifest["package"]["kind"] == "pgsql"
    # Hashed by stringzilla in this process (members.sha256): hashlib's digest all the same.
    assert manifest["files"][0]["sha256"] == hashlib.sha256(expected).hexdigest()
    assert not (tmp_path / "slow.tar.gz.part").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "slow", "--format", "syslog"], "unknown --format 'syslog'"),
        (["--type", "slow", "--begin", "200", "--end", "100"], "--begin 200 must be before"),
        (["--type", "fast"], "--type 'fast' is not one of slow, error, all"),
        ([], "--type slow|error|all is required"),
        (["--type", "all", "--level", "9"], "--level 9 is out of range"),
    ],
)
def test_bad_input_ends_with_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    write_log(tmp_path / "a.log", mixed(BASE_MS, 5))

    done = dblogpack("pack", str(tmp_path / "a.log"), *args, "--out", str(tmp_path / "o.tar.gz"))

    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "o.tar.gz").exists()


def test_an_unreadable_path_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"

    done = dblogpack("pack", str(missing), "--type", "error", "--out", str(tmp_path / "o.tar.gz"))

    assert done.returncode == 1
    assert done.stderr.strip() == f"dblogpack pack: no such file or directory: {missing}"


def test_an_unknown_timezone_is_one_line(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", mixed(BASE_MS, 5))

    done = dblogpack("pack", str(tmp_path / "a.log"), "--type", "all", "--format", "pg-stderr",
                     "--timezone", "Mars/Olympus", "--out", str(tmp_path / "o.tar.gz"))

    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and "Mars/Olympus" in done.stderr


def test_help_shows_an_example_and_loads_no_server_or_engine_modules() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from dblogpack.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as text:\n"
        "    try:\n"
        "        main(['pack', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(text.getvalue())\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)

    help_text, modules = done.stdout.split("MODULES ")
    assert "example" in help_text and "dblogpack pack" in help_text
    loaded = set(modules.split())
    heavy = {"sqlalchemy", "starlette", "boto3", "isal", "dblogpack.pipeline", "dblogpack.formats",
             "asyncssh", "httpx", "multiprocessing"}
    assert not loaded & heavy


def test_packing_local_files_leaves_the_stream_scanner_unloaded(tmp_path: Path) -> None:
    # Remote and gzip files only are streamed: `pack`'s start-up on local files skips that code.
    # A small package hashes with stringzilla: OpenSSL's library is not loaded.
    write_log(tmp_path / "a.log", mixed(BASE_MS, 5))
    probe = (
        "import sys\n"
        "from dblogpack.cli import main\n"
        f"main(['pack', {str(tmp_path / 'a.log')!r}, '--type', 'all',"
        f" '--out', {str(tmp_path / 'o.tar.gz')!r}])\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)

    loaded = set(done.stdout.split("MODULES ")[1].split())
    assert "dblogpack.pipeline" in loaded and "dblogpack.streamscan" not in loaded
    assert not loaded & {"hashlib", "_hashlib"}


def test_a_caller_passing_its_arguments_gets_the_exit_status_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the process's own command line ends the process early after a pack (no teardown)
    # and changes its collector's thresholds.
    from dblogpack.cli import main

    write_log(tmp_path / "a.log", mixed(BASE_MS, 5))
    out = tmp_path / "o.tar.gz"
    thresholds = gc.get_threshold()

    code = main(["pack", str(tmp_path / "a.log"), "--type", "all", "--out", str(out)])

    assert code == 0 and out.exists()
    assert gc.get_threshold() == thresholds
    assert capsys.readouterr().out.startswith(f"{out}: 5 entries from 1 of 1 files")


def test_package_ids_are_version_4_uuids() -> None:
    import uuid

    from dblogpack.cli.pack import package_id

    ids = {package_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(uuid.UUID(hex=i).version == 4 and uuid.UUID(hex=i).hex == i for i in ids)


WORDS = [
    "a.log", "logs", "--type", "all", "slow", "--begin", "1714824000", "--end", "1714827600.5",
    "-5", "1e3", "x", "--min-duration", "--level", "2", "--workers", "--out", "o.tar.gz",
    "--format", "pg-stderr", "--name", "", "--timezone", "UTC", "--log-line-prefix", "%m [%p] ",
    "--ty", "--type=all", "-h", "--", "--data-dir", "-",
]


@given(st.lists(st.sampled_from(WORDS), max_size=14))
@example(["a.log", "--type", "all", "--begin", "1714824000", "--end", "1714827600.5",
          "--format", "pg-stderr", "--log-line-prefix", "%m [%p] ", "--out", "o.tar.gz"])
@example(["--type", "slow", "a.log", "logs", "--min-duration", "1e3", "--level", "2"])
def test_a_plain_pack_command_line_reads_as_argparse_reads_it(words: list[str]) -> None:
    # `pack` reads plain command lines without building argparse's parsers (a whole process
    # must take < 50 ms); what it reads must be what argparse reads, and any other command line
    # is left to argparse (None).
    argv = ["pack", *words]
    fast = plain_pack_args(argv)
    if fast is not None:
        assert vars(fast) == vars(build_parser([add_pack]).parse_args(argv))


def test_help_and_abbreviations_are_left_to_argparse() -> None:
    for words in (
        ["-h"],
        ["a.log", "--ty", "all"],
        ["a.log", "--type=all"],
        ["a.log", "x", "--out", "o", "b.log"],
        ["a.log", "--begin", "-5"],
        ["--type", "all"],
    ):
        assert plain_pack_args(["pack", *words]) is None
    assert plain_pack_args(["pack", "a.log", "--type", "all"]) is not None
