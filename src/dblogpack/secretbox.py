"""The server secret and what it protects: encryption of stored secrets, HMAC signing of links.

The secret is generated on first start, stored 0600 in the data directory and never logged;
every process sharing a metadata database must be given the same file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dblogpack.errors import ConfigError, DblogpackError

SECRET_BYTES = 32
_NONCE_BYTES = 12
_TOKEN_VERSION = b"\x01"


class SecretDecryptError(DblogpackError):
    """A stored secret cannot be decrypted: the server secret is not the one that sealed it."""


def load_or_create_secret(path: Path) -> bytes:
    """The server secret at `path`, created (0600, exclusive) on first use."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our create: use theirs.
        return _read_secret(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(SECRET_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != SECRET_BYTES:
        raise ConfigError(
            f"{path}: the server secret must be exactly {SECRET_BYTES} bytes; restore the "
            "original file (stored secrets cannot be read without it)"
        )
    return data


def _derive(secret: bytes, purpose: bytes) -> bytes:
    # Separate keys per use, so a signing key can never decrypt and vice versa.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class SecretBox:
    """Encrypts stored secrets (AES-256-GCM) and signs messages (HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise ConfigError(f"the server secret must be {SECRET_BYTES} bytes")
        self._aead = AESGCM(_derive(secret, b"dblogpack/encrypt/v1"))
        self._signing_key = _derive(secret, b"dblogpack/sign/v1")

    def __repr__(self) -> str:
        return "SecretBox(***)"

    @property
    def signing_key(self) -> bytes:
        """Key for HMACs computed elsewhere (download-link tokens in `links`)."""
        return self._signing_key

    def encrypt(self, plaintext: str) -> str:
        """A URL-safe token holding `plaintext`, different at every call."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _TOKEN_VERSION)
        return base64.urlsafe_b64encode(_TOKEN_VERSION + nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of `encrypt`'s token; SecretDecryptError if tampered with."""
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SecretDecryptError("a stored secret is not a valid token") from exc
        version, nonce, sealed = raw[:1], raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        if version != _TOKEN_VERSION:
            raise SecretDecryptError("a stored secret has an unknown token version")
        try:
            return self._aead.decrypt(nonce, sealed, version).decode()
        except InvalidTag as exc:
            raise SecretDecryptError() from exc

    def sign(self, message: bytes) -> str:
        """Hex HMAC-SHA256 of `message`."""
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        """Whether `signature` is `sign(message)`, compared in constant time."""
        return hmac.compare_digest(self.sign(message), signature)
