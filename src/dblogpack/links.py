"""Signed, expiring download links for packages dblogpack serves itself, and HTTP Range parsing.

Pure functions: no clock and no I/O; callers pass `now` and the server secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from dblogpack.errors import DblogpackError

# Binds the MAC to this purpose, so the server secret's other uses can never mint a link.
_CONTEXT = b"dblogpack download link v1\x00"
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII | re.IGNORECASE)


class LinkError(DblogpackError):
    """The download link is not valid."""


class LinkTamperedError(LinkError):
    """The download link is not valid: it was altered or signed by another server."""


class LinkExpiredError(LinkError):
    """The download link has expired: ask for a new one."""


class RangeNotSatisfiableError(DblogpackError):
    """The requested byte range lies outside the package (answer 416 with `bytes */size`)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range is outside the package's {size} bytes")
        self.size = size


def sign_download(key: str, expires_at: int, secret: bytes) -> str:
    """A URL-safe token that grants reading store `key` until unix time `expires_at`."""
    payload = f"{int(expires_at)}:{key}".encode()
    return f"{_b64(payload)}.{_b64(_mac(payload, secret))}"


def verify_download(token: str, secret: bytes, now: float) -> str:
    """The store key a token grants; LinkTamperedError if it was not signed with `secret`,
    LinkExpiredError once `now` reaches its expiry (checked only after the signature)."""
    encoded_payload, _, encoded_mac = token.partition(".")
    payload = _unb64(encoded_payload)
    if not hmac.compare_digest(_unb64(encoded_mac), _mac(payload, secret)):
        raise LinkTamperedError()
    expires_at, _, key = payload.decode().partition(":")
    if now >= int(expires_at):
        raise LinkExpiredError()
    return key


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range `(first, last)` a `Range` header asks of `size` bytes.

    None means "send the whole body": no header, another unit, several ranges or bad syntax
    (RFC 9110 lets a server ignore those). RangeNotSatisfiableError when it starts past the end.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        return _suffix_range(last_text, size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # syntactically invalid: ignored, not refused
    if first >= size:
        raise RangeNotSatisfiableError(size)
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _suffix_range(length_text: str, size: int) -> tuple[int, int] | None:
    """`bytes=-N`: the last N bytes."""
    if not length_text:
        return None  # "bytes=-" says nothing
    length = int(length_text)
    if length == 0 or size == 0:
        raise RangeNotSatisfiableError(size)
    return max(0, size - length), size - 1


def _mac(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict base64url: a non-canonical spelling of the same bytes is a tampered token."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkTamperedError() from exc
    if not text or _b64(data) != text:
        raise LinkTamperedError()
    return data
