"""Configuration: one settings table, read from dblogpack.toml < env < flags, and documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dblogpack.errors import ConfigError
from dblogpack.settings import SETTINGS, Settings, load_settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"


def write_toml(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "dblogpack.toml").write_text(text)


def test_defaults_keep_everything_inside_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/dblogpack.sqlite3"
    assert settings.store_url == f"file://{tmp_path.resolve()}/packages"
    assert settings.public_base_url == "http://127.0.0.1:8080"
    assert settings.internal_base_url == settings.public_base_url
    assert (settings.port, settings.retention_days, settings.demo) == (8080, 7, False)


def test_links_never_point_at_a_wildcard_address(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "host": "0.0.0.0"}, environ={})
    assert settings.public_base_url == "http://127.0.0.1:8080"
    given = load_settings(
        {"data_dir": str(tmp_path), "public_base_url": "https://logs.example.com"}, environ={}
    )
    assert given.public_base_url == given.internal_base_url == "https://logs.example.com"


def test_toml_overrides_defaults_env_overrides_toml_and_flags_override_env(tmp_path: Path) -> None:
    write_toml(tmp_path, 'port = 9001\nlog_level = "DEBUG"\nretention_days = 3\n')
    env = {
        "DBLOGPACK_DATA_DIR": str(tmp_path),
        "DBLOGPACK_PORT": "9002",
        "DBLOGPACK_LOG_LEVEL": "ERROR",
    }

    from_file = load_settings(environ={"DBLOGPACK_DATA_DIR": str(tmp_path)})
    from_env = load_settings(environ=env)
    from_flags = load_settings({"port": 9003}, environ=env)

    assert (from_file.port, from_file.log_level, from_file.retention_days) == (9001, "DEBUG", 3)
    assert (from_env.port, from_env.log_level, from_env.retention_days) == (9002, "ERROR", 3)
    assert (from_flags.port, from_flags.log_level, from_flags.retention_days) == (9003, "ERROR", 3)


def test_the_data_directory_flag_decides_which_toml_file_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path / "a", "port = 1111\n")
    write_toml(tmp_path / "b", "port = 2222\n")
    env = {"DBLOGPACK_DATA_DIR": str(tmp_path / "a")}
    assert load_settings(environ=env).port == 1111
    assert load_settings({"data_dir": str(tmp_path / "b")}, environ=env).port == 2222


def test_flags_that_were_not_given_do_not_override(tmp_path: Path) -> None:
    env = {"DBLOGPACK_DATA_DIR": str(tmp_path), "DBLOGPACK_HOST": "0.0.0.0"}
    assert load_settings({"host": None, "port": None}, environ=env).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("on", True), ("false", False), ("0", False)],
)
def test_booleans_from_the_environment(tmp_path: Path, text: str, expected: bool) -> None:
    env = {"DBLOGPACK_DATA_DIR": str(tmp_path), "DBLOGPACK_DEMO": text}
    assert load_settings(environ=env).demo is expected


def test_a_value_of_the_wrong_type_names_where_it_came_from(tmp_path: Path) -> None:
    env = {"DBLOGPACK_DATA_DIR": str(tmp_path), "DBLOGPACK_PORT": "eighty"}
    with pytest.raises(ConfigError, match=r"DBLOGPACK_PORT: port must be an integer, got 'eighty'"):
        load_settings(environ=env)
    write_toml(tmp_path, 'workers = "many"\n')
    with pytest.raises(ConfigError, match=r"dblogpack.toml: workers must be an integer"):
        load_settings({"data_dir": str(tmp_path)}, environ={})


def test_unknown_keys_and_out_of_range_values_are_refused(tmp_path: Path) -> None:
    write_toml(tmp_path, "prot = 80\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*prot"):
        load_settings({"data_dir": str(tmp_path)}, environ={})
    with pytest.raises(ConfigError, match="compress_level must be from 1 to 9"):
        load_settings({"data_dir": str(tmp_path / "x"), "compress_level": 0}, environ={})
    with pytest.raises(ConfigError, match="must not exceed url_valid_seconds_max"):
        load_settings(
            {"data_dir": str(tmp_path / "x"), "url_valid_seconds": 10, "url_valid_seconds_max": 5},
            environ={},
        )


def test_a_broken_toml_file_is_reported_with_its_path(tmp_path: Path) -> None:
    write_toml(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "dblogpack.toml"))):
        load_settings({"data_dir": str(tmp_path)}, environ={})


def test_secrets_never_appear_in_the_settings_repr(tmp_path: Path) -> None:
    env = {
        "DBLOGPACK_DATA_DIR": str(tmp_path),
        "DBLOGPACK_PRIVATE_KEY": "private-key-value",
        "DBLOGPACK_DATABASE_URL": "postgresql+psycopg://u:db-password@h/d",
        "DBLOGPACK_S3_SECRET_ACCESS_KEY": "s3-secret-value",
    }
    shown = repr(load_settings(environ=env))
    for secret in ("private-key-value", "db-password", "s3-secret-value"):
        assert secret not in shown
    assert "port=8080" in shown


def test_the_settings_table_and_the_settings_object_name_the_same_settings() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]


@pytest.mark.parametrize("doc_path", [DOC, README], ids=["docs/configuration.md", "README.md"])
def test_every_setting_is_documented(doc_path: Path) -> None:
    doc = doc_path.read_text()
    start = doc.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = doc.index("<!-- settings-table:end -->")
    assert doc[start:end] == markdown_table(), (
        f"{doc_path.name} is out of date: paste dblogpack.settings.markdown_table() "
        "between the settings-table markers"
    )
    for setting in SETTINGS:
        assert f"| `{setting.name}` | `{setting.env_name}` | `{setting.flag}` |" in doc
