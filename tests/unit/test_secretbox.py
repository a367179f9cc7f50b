"""The server secret: made once, private to its owner; what it seals cannot be read or forged."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from dblogpack.errors import ConfigError
from dblogpack.secretbox import SecretBox, SecretDecryptError, load_or_create_secret


def test_the_secret_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "data" / "server-secret"
    first = load_or_create_secret(path)
    assert len(first) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_a_damaged_secret_file_stops_the_start_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "server-secret"
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="restore the original file"):
        load_or_create_secret(path)


def test_sealed_values_round_trip_and_never_repeat() -> None:
    box = SecretBox(secrets.token_bytes(32))
    sealed = [box.encrypt("dsn-password") for _ in range(2)]
    assert sealed[0] != sealed[1] and all("dsn-password" not in s for s in sealed)
    assert [box.decrypt(s) for s in sealed] == ["dsn-password"] * 2


@pytest.mark.parametrize("position", [0, 5, 20, -2])
def test_a_tampered_token_is_refused(position: int) -> None:
    box = SecretBox(secrets.token_bytes(32))
    token = bytearray(box.encrypt("private-key").encode())
    token[position] = ord("A") if token[position] != ord("A") else ord("B")
    with pytest.raises(SecretDecryptError):
        box.decrypt(token.decode())


def test_another_secret_can_neither_read_nor_verify() -> None:
    box, other = SecretBox(secrets.token_bytes(32)), SecretBox(secrets.token_bytes(32))
    with pytest.raises(SecretDecryptError):
        other.decrypt(box.encrypt("x"))
    signature = box.sign(b"download:key:1700000000")
    assert box.verify(b"download:key:1700000000", signature)
    assert not other.verify(b"download:key:1700000000", signature)
    assert not box.verify(b"download:key:1700000001", signature)


def test_the_box_never_shows_its_keys() -> None:
    secret = secrets.token_bytes(32)
    box = SecretBox(secret)
    assert repr(box) == "SecretBox(***)" and secret.hex() not in repr(box)
