"""Request signatures of the UCloud-style API: parameter flattening and SHA-1 signing (pure).

The rules are exactly those of the official ucloud-sdk-python3 (`core/typesystem/encoder.py`,
`core/auth/_cfg.py`), so a request the SDK signs verifies here byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

SIGNATURE = "Signature"


def encode_value(value: object) -> str:
    """One parameter value as the SDK writes it: `true`/`false`, floats without a zero fraction."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # The UCloud gateway decodes floats as ints in Lua, so 10.0 travels as "10".
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


def flatten(params: Mapping[str, object]) -> dict[str, str]:
    """Nested dicts become `Key.Sub`, lists become `Key.0, Key.1, …` (0-based), leaves strings."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        _flatten_into(flat, str(key), value)
    return flat


def _flatten_into(flat: dict[str, str], key: str, value: object) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _flatten_into(flat, f"{key}.{sub_key}", sub_value)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten_into(flat, f"{key}.{index}", item)
    elif value is not None:
        flat[key] = encode_value(value)


def string_to_sign(pairs: Iterable[tuple[str, str]], private_key: str) -> str:
    """`key+value` of every pair but Signature, sorted by key (stable for repeats), then the key."""
    ordered = sorted((pair for pair in pairs if pair[0] != SIGNATURE), key=lambda pair: pair[0])
    return "".join(key + value for key, value in ordered) + private_key


def signature_of_pairs(pairs: Iterable[tuple[str, str]], private_key: str) -> str:
    return hashlib.sha1(string_to_sign(pairs, private_key).encode("utf-8")).hexdigest()


def sign(params: Mapping[str, object], private_key: str) -> str:
    """The Signature of a request's parameters (flattened first, as the SDK does)."""
    return signature_of_pairs(flatten(params).items(), private_key)


def signed(params: Mapping[str, object], public_key: str, private_key: str) -> dict[str, str]:
    """Flattened parameters with PublicKey and Signature added: ready to send as a form or query."""
    flat = flatten(params)
    flat["PublicKey"] = public_key
    flat.pop(SIGNATURE, None)
    flat[SIGNATURE] = signature_of_pairs(flat.items(), private_key)
    return flat


def signature_matches(expected: str, received: str) -> bool:
    """Constant-time comparison, so response timing tells nothing about a guessed signature."""
    return hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8"))
