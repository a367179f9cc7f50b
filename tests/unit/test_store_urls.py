"""Store URLs as an operator writes them in settings, and the package keys every store accepts."""

from __future__ import annotations

import pytest

from dblogpack.errors import ConfigError
from dblogpack.stores import check_key, parse_store_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///var/lib/dblogpack/packages", ("file", {"root": "/var/lib/dblogpack/packages"})),
        ("file://localhost/srv/p%20kg", ("file", {"root": "/srv/p kg"})),
        ("s3://logs-bucket", ("s3", {"bucket": "logs-bucket", "prefix": ""})),
        (
            "s3://logs-bucket/dblogpack/prod/",
            ("s3", {"bucket": "logs-bucket", "prefix": "dblogpack/prod"}),
        ),
        (
            "s3://b/p?endpoint_url=http://127.0.0.1:9000&region=cn-bj2",
            (
                "s3",
                {
                    "bucket": "b",
                    "prefix": "p",
                    "endpoint_url": "http://127.0.0.1:9000",
                    "region": "cn-bj2",
                },
            ),
        ),
    ],
)
def test_store_urls_name_the_kind_and_its_constructor_arguments(
    url: str, expected: tuple[str, dict[str, str]]
) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("file://relative/path", "file:///absolute/path"),
        ("s3:///prefix-only", "s3://bucket/prefix"),
        ("s3://b/p?access_key=AKIA", "unknown option 'access_key'"),
        ("ftp://host/dir", "file:// or s3://"),
        ("/plain/path", "file:// or s3://"),
    ],
)
def test_bad_store_urls_say_how_to_write_them(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint.replace("?", r"\?")):
        parse_store_url(url)


def test_relative_slash_separated_keys_are_accepted() -> None:
    assert check_key("proj-1/pkg-2/my.logs.tar.gz") == "proj-1/pkg-2/my.logs.tar.gz"


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a/../b", "..", "a//b", "a/./b", "trailing/", "a\\b", "nul\x00", ".partial-x"],
)
def test_keys_that_could_escape_a_store_root_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="invalid package key"):
        check_key(key)
