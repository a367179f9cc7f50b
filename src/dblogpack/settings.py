"""The one settings table and its loader: `<data_dir>/dblogpack.toml` < `DBLOGPACK_*` < flags.

The only reader of `os.environ`; docs/configuration.md documents every row of SETTINGS.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dblogpack.errors import ConfigError

ENV_PREFIX = "DBLOGPACK_"
CONFIG_FILE_NAME = "dblogpack.toml"
DEFAULT_DATA_DIR = "./dblogpack-data"

SettingValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Setting:
    """One configurable value: its name (TOML key, env suffix, `--flag`), default and meaning."""

    name: str
    default: SettingValue
    help: str
    secret: bool = False  # never shown in full by `repr` or in logs

    @property
    def kind(self) -> type[SettingValue]:
        return type(self.default)

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# Empty-string defaults are filled from the data directory or the listening address (see
# _derived): they depend on other settings, and a table of constants documents them best.
SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", DEFAULT_DATA_DIR,
            "Directory holding dblogpack.toml, the server secret, the admin key, the SQLite "
            "metadata database and the file-system package store."),
    Setting("host", "127.0.0.1", "Address `serve` listens on."),
    Setting("port", 8080, "TCP port `serve` listens on."),
    Setting("database_url", "",
            "SQLAlchemy URL of the metadata database and job queue; empty means "
            "`sqlite:///<data_dir>/dblogpack.sqlite3`. Use `postgresql+psycopg://…` to share it "
            "between several machines.", secret=True),
    Setting("store_url", "",
            "Where packages are published: `file:///path` or `s3://bucket/prefix`; empty means "
            "`file://<data_dir>/packages`."),
    Setting("s3_endpoint_url", "", "Endpoint of an S3-compatible store; empty means AWS."),
    Setting("s3_region", "us-east-1", "Region of the S3 store."),
    Setting("s3_access_key_id", "",
            "Access key of the S3 store; empty means boto3's default chain."),
    Setting("s3_secret_access_key", "", "Secret key of the S3 store.", secret=True),
    Setting("public_base_url", "",
            "Base URL users reach this service at (for download links, `BackupPath`); empty means "
            "`http://<host>:<port>` (loopback when listening on all addresses)."),
    Setting("internal_base_url", "",
            "Base URL inside the private network (`InnerBackupPath`); empty means the public one."),
    Setting("retention_days", 7, "Days a finished package is kept before the sweeper deletes it."),
    Setting("per_node_concurrency", 2,
            "Packages that may run at the same time against one database node."),
    Setting("workers", 2,
            "Package worker threads `serve` runs in-process (0: only `dblogpack worker` processes "
            "build), and the threads of each `dblogpack worker`."),
    Setting("job_attempts", 3,
            "Times a package is tried (worker crash, unreachable source or store) before "
            "`Package_Failed`."),
    Setting("job_lease_seconds", 30.0,
            "How long a worker's claim on a package lasts without a heartbeat; a crashed "
            "worker's package is retried after this."),
    Setting("max_body_bytes", 1048576, "Largest request body the API accepts, in bytes."),
    Setting("rate_limit", 50.0,
            "API requests per second allowed per PublicKey (bursts of twice that); 0 disables."),
    Setting("log_level", "INFO", "Level of the structured JSON log: DEBUG, INFO, WARNING, ERROR."),
    Setting("metrics_port", 0,
            "TCP port (on `host`) where `dblogpack worker` serves `/metrics`; 0: none. `serve` "
            "serves `/metrics` on its own port."),
    Setting("default_region", "cn-bj2", "Region given to resources registered without `Region`."),
    Setting("default_zone", "cn-bj2-01", "Zone given to resources registered without `Zone`."),
    Setting("url_valid_seconds", 3600, "Lifetime of a download link when `ValidTime` is omitted."),
    Setting("url_valid_seconds_max", 604800, "Longest `ValidTime` a caller may ask for."),
    Setting("compress_level", 1, "gzip level of packages, 1 (fastest) to 9 (smallest)."),
    Setting("demo", False,
            "Demo mode of `serve` (`make run` turns it on, `--no-demo` off): a throwaway "
            "PostgreSQL 15 with a workload and a MongoDB cluster fed with live logs, kept in "
            "`<data_dir>/demo` and registered in the admin's default project (docs/demo.md)."),
    Setting("endpoint", "http://127.0.0.1:8080/", "API endpoint the client commands call."),
    Setting("public_key", "", "PublicKey the client commands sign with."),
    Setting("private_key", "", "PrivateKey the client commands sign with.", secret=True),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved configuration; field names are exactly the names of SETTINGS."""

    data_dir: Path
    host: str
    port: int
    database_url: str
    store_url: str
    s3_endpoint_url: str
    s3_region: str
    s3_access_key_id: str
    s3_secret_access_key: str
    public_base_url: str
    internal_base_url: str
    retention_days: int
    per_node_concurrency: int
    workers: int
    job_attempts: int
    job_lease_seconds: float
    max_body_bytes: int
    rate_limit: float
    log_level: str
    metrics_port: int
    default_region: str
    default_zone: str
    url_valid_seconds: int
    url_valid_seconds_max: int
    compress_level: int
    demo: bool
    endpoint: str
    public_key: str
    private_key: str

    def __repr__(self) -> str:
        shown = (
            f"{f.name}={'***' if _is_secret(f.name) else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Settings({', '.join(shown)})"

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "server-secret"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin-key.json"


def _is_secret(name: str) -> bool:
    return SETTINGS_BY_NAME[name].secret


def parse_value(setting: Setting, raw: object, origin: str) -> SettingValue:
    """Convert a TOML, env or flag value to the setting's type; ConfigError naming `origin`."""
    kind = setting.kind
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        return _parse_text(setting, raw, origin)
    raise ConfigError(f"{origin}: {setting.name} must be {_kind_words(kind)}, got {raw!r}")


def _parse_text(setting: Setting, text: str, origin: str) -> SettingValue:
    kind = setting.kind
    if kind is str:
        return text
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
    else:
        try:
            return kind(text.strip())
        except ValueError:
            pass
    raise ConfigError(f"{origin}: {setting.name} must be {_kind_words(kind)}, got {text!r}")


def _kind_words(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a string")


def load_settings(
    flags: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: defaults < `<data_dir>/dblogpack.toml` < `DBLOGPACK_*` < `flags`.

    `flags` maps setting names to values given on the command line; None values are ignored
    (an argparse flag that was not given).
    """
    env = os.environ if environ is None else environ
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    _reject_unknown(given_flags, "command line")
    env_values = _from_env(env)
    data_dir = Path(str(given_flags.get("data_dir", env_values.get("data_dir", DEFAULT_DATA_DIR))))
    values: dict[str, SettingValue] = {s.name: s.default for s in SETTINGS}
    values.update(_from_toml(data_dir / CONFIG_FILE_NAME))
    values.update(env_values)
    for name, raw in given_flags.items():
        values[name] = parse_value(SETTINGS_BY_NAME[name], raw, "command line")
    values["data_dir"] = str(data_dir.expanduser().resolve())
    return _build(_derived(values))


def _reject_unknown(values: Mapping[str, object], origin: str) -> None:
    unknown = sorted(set(values) - set(SETTINGS_BY_NAME))
    if unknown:
        raise ConfigError(f"{origin}: unknown setting(s) {', '.join(unknown)}")


def _from_env(env: Mapping[str, str]) -> dict[str, SettingValue]:
    return {
        s.name: parse_value(s, env[s.env_name], f"environment variable {s.env_name}")
        for s in SETTINGS
        if s.env_name in env
    }


def _from_toml(path: Path) -> dict[str, SettingValue]:
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
    _reject_unknown(document, str(path))
    if "data_dir" in document:
        raise ConfigError(f"{path}: data_dir cannot be set inside the data directory's own file")
    return {
        name: parse_value(SETTINGS_BY_NAME[name], raw, str(path)) for name, raw in document.items()
    }


def _derived(values: dict[str, SettingValue]) -> dict[str, SettingValue]:
    data_dir = Path(str(values["data_dir"]))
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{data_dir / 'dblogpack.sqlite3'}"
    if not values["store_url"]:
        values["store_url"] = (data_dir / "packages").as_uri()
    if not values["public_base_url"]:
        # A wildcard listen address is no address to send users to; loopback at least works.
        host = "127.0.0.1" if values["host"] in ("0.0.0.0", "::", "") else values["host"]
        values["public_base_url"] = f"http://{host}:{values['port']}"
    if not values["internal_base_url"]:
        values["internal_base_url"] = values["public_base_url"]
    return values


def _build(values: dict[str, SettingValue]) -> Settings:
    settings = Settings(**{**values, "data_dir": Path(str(values["data_dir"]))})  # type: ignore[arg-type]
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    checks = (
        (1 <= settings.port <= 65535, "port must be from 1 to 65535"),
        (1 <= settings.compress_level <= 9, "compress_level must be from 1 to 9"),
        (settings.retention_days >= 1, "retention_days must be at least 1"),
        (settings.per_node_concurrency >= 1, "per_node_concurrency must be at least 1"),
        (settings.workers >= 0, "workers must be 0 or more"),
        (settings.job_attempts >= 1, "job_attempts must be at least 1"),
        (settings.job_lease_seconds >= 1, "job_lease_seconds must be at least 1"),
        (settings.max_body_bytes >= 1024, "max_body_bytes must be at least 1024"),
        (settings.url_valid_seconds >= 1, "url_valid_seconds must be at least 1"),
        (
            settings.url_valid_seconds <= settings.url_valid_seconds_max,
            "url_valid_seconds must not exceed url_valid_seconds_max",
        ),
        (
            settings.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
            "log_level must be DEBUG, INFO, WARNING or ERROR",
        ),
    )
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def markdown_table() -> str:
    """The settings table as docs/configuration.md shows it (kept identical by a test)."""
    lines = [
        "| Setting (TOML key) | Environment variable | Flag | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = str(s.default).lower() if isinstance(s.default, bool) else str(s.default)
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{s.name}` | `{s.env_name}` | `{s.flag}` | {shown} | {s.help} |")
    return "\n".join(lines) + "\n"
