"""The member hash of a `pack` process (members.sha256): OpenSSL's SHA-256 loaded by the hashing
thread (_sha256.c) gives hashlib's digests, however the bytes are cut, and falls back to the
hasher it is given where libcrypto cannot be loaded."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack import _sha256


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.booleans())
def test_digests_are_hashlibs_however_the_bytes_are_cut(pieces: list[bytes], views: bool) -> None:
    hasher = _sha256.Sha256(lambda: hashlib.sha256())
    expected = hashlib.sha256()
    for piece in pieces:
        hasher.update(memoryview(piece) if views else piece)
        expected.update(piece)
        assert hasher.hexdigest() == expected.hexdigest()  # a digest so far, then more bytes
    assert hasher.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_a_big_buffer_and_no_bytes_at_all() -> None:
    data = bytes(range(256)) * 40_000
    hasher = _sha256.Sha256(lambda: hashlib.sha256())
    hasher.update(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert _sha256.Sha256(lambda: hashlib.sha256()).hexdigest() == hashlib.sha256().hexdigest()


def test_where_libcrypto_cannot_be_loaded_the_fallback_hashes() -> None:
    code = (
        "import hashlib; from dblogpack import _sha256; made = [];"
        "print(_sha256.libcrypto('libcrypto-that-is-not-here.so'));"
        "h = _sha256.Sha256(lambda: made.append(1) or hashlib.sha256());"
        "h.update(b'ab'); h.update(memoryview(b'c'));"
        "print(_sha256.libcrypto(), len(made), h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "1", hashlib.sha256(b"abc").hexdigest()]
    assert _sha256.libcrypto()  # here
