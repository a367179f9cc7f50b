"""Download links: a signed token grants one package until it expires, and any change to it,
or another server's secret, is refused; Range headers map to the bytes a client may get.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dblogpack.links import (
    LinkExpiredError,
    LinkTamperedError,
    RangeNotSatisfiableError,
    parse_range,
    sign_download,
    verify_download,
)

SECRET = b"s" * 32
KEY = "proj-1/pkg-42/slow-logs.tar.gz"
EXPIRES = 1_700_000_000


def test_a_token_grants_its_key_until_it_expires() -> None:
    token = sign_download(KEY, EXPIRES, SECRET)

    assert verify_download(token, SECRET, now=EXPIRES - 1) == KEY
    with pytest.raises(LinkExpiredError, match="expired"):
        verify_download(token, SECRET, now=EXPIRES)


def test_tokens_are_url_safe() -> None:
    token = sign_download("proj/ü ?&=+/#.tar.gz", EXPIRES, SECRET)
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()
    assert verify_download(token, SECRET, now=0) == "proj/ü ?&=+/#.tar.gz"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = sign_download(KEY, EXPIRES, b"another server")
    with pytest.raises(LinkTamperedError, match="altered"):
        verify_download(token, SECRET, now=0)


def test_changing_any_character_of_a_token_invalidates_it() -> None:
    token = sign_download(KEY, EXPIRES, SECRET)
    for position, char in enumerate(token):
        for replacement in {"A", "B", "-", "_", "."} - {char}:
            forged = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(LinkTamperedError):
                verify_download(forged, SECRET, now=0)


def test_extending_the_expiry_invalidates_the_token() -> None:
    genuine = sign_download(KEY, EXPIRES, SECRET)
    later = sign_download(KEY, EXPIRES + 86400, b"guess")
    forged = later.split(".")[0] + "." + genuine.split(".")[1]
    with pytest.raises(LinkTamperedError):
        verify_download(forged, SECRET, now=0)


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "!!!.???"])
def test_garbage_is_refused_as_tampered(token: str) -> None:
    with pytest.raises(LinkTamperedError):
        verify_download(token, SECRET, now=0)


# -- Range ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("BYTES=1-1", (1, 1)),
        (" bytes=0-0 ", (0, 0)),
    ],
)
def test_a_single_range_is_clamped_to_the_package(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 1000) == expected


NON_ASCII_DIGITS = "bytes=\u0661-\u0662"


@pytest.mark.parametrize(
    "header",
    [None, "", "items=0-1", "bytes=5-1", "bytes=0-1,5-9", "bytes=-", "bytes=a-b", NON_ASCII_DIGITS],
)
def test_absent_invalid_or_multiple_ranges_mean_the_whole_body(header: str | None) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0), ("bytes=-9", 0)],
)
def test_a_range_past_the_end_is_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiableError) as info:
        parse_range(header, size)
    assert info.value.size == size


@given(size=st.integers(1, 10**12), first=st.integers(0, 10**12), length=st.integers(1, 10**12))
def test_every_satisfiable_range_lies_inside_the_package(
    size: int, first: int, length: int
) -> None:
    header = f"bytes={first}-{first + length - 1}"
    if first >= size:
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(header, size)
        return
    assert parse_range(header, size) == (first, min(first + length - 1, size - 1))
