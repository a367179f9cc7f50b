"""Where packages are kept: one module per kind of store behind `base.PackageStore`.

Also the two pure rules every store shares: what a key may look like, and how a store URL
(`file:///path`, `s3://bucket/prefix?endpoint_url=…&region=…`) names a store.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from dblogpack.errors import ConfigError

# Name prefix of a file store's not-yet-published temporary files; never a key segment.
PARTIAL_PREFIX = ".partial-"

_S3_QUERY_KEYS = frozenset({"endpoint_url", "region"})


def check_key(key: str) -> str:
    """`key` itself when it is a relative `a/b/c` name that cannot escape a store's root."""
    segments = key.split("/")
    bad = (
        not key
        or "\\" in key
        or "\x00" in key
        or any(s in ("", ".", "..") or s.startswith(PARTIAL_PREFIX) for s in segments)
    )
    if bad:
        raise ValueError(f"invalid package key {key!r}: want a relative name like 'proj/id/x'")
    return key


def parse_store_url(url: str) -> tuple[str, dict[str, str]]:
    """("file", {"root"}) or ("s3", {"bucket", "prefix", ["endpoint_url"], ["region"]}).

    Credentials never go in the URL; the composition root passes them from settings.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"store URL {url!r}: write a file store as file:///absolute/path")
        return "file", {"root": unquote(parts.path)}
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"store URL {url!r}: write an S3 store as s3://bucket/prefix")
        params = {"bucket": parts.netloc, "prefix": unquote(parts.path).strip("/")}
        for name, value in parse_qsl(parts.query, keep_blank_values=False, strict_parsing=False):
            if name not in _S3_QUERY_KEYS:
                raise ConfigError(
                    f"store URL {url!r}: unknown option {name!r} (allowed: endpoint_url, region)"
                )
            params[name] = value
        return "s3", params
    raise ConfigError(f"store URL {url!r}: the scheme must be file:// or s3://")
