"""Request signatures: the documented test vector and byte-for-byte agreement with the SDK."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ucloud.core.auth import Credential
from ucloud.core.typesystem import encoder

from dblogpack.api.signing import flatten, sign, signature_matches, signed

VECTOR_PUBLIC = "ucloudsomeone@example.com1296235120854146120"
VECTOR_PRIVATE = "46f09bb9fab4f12dfc160dae12273d5332b5debe"
VECTOR_SIGNATURE = "cba5cf5ec4d4233d206b1b54951e3787350a642f"


def test_the_documented_test_vector_signs_to_the_documented_signature() -> None:
    params = {"Action": "DescribeUHostInstance", "Region": "cn-bj2", "Limit": 10}
    assert signed(params, VECTOR_PUBLIC, VECTOR_PRIVATE)["Signature"] == VECTOR_SIGNATURE
    assert sign({**params, "PublicKey": VECTOR_PUBLIC}, VECTOR_PRIVATE) == VECTOR_SIGNATURE


def test_signature_parameter_itself_is_never_signed() -> None:
    params = {"Action": "DescribeUHostInstance", "Region": "cn-bj2", "Limit": 10,
              "PublicKey": VECTOR_PUBLIC}
    assert sign({**params, "Signature": "anything"}, VECTOR_PRIVATE) == VECTOR_SIGNATURE


def test_arrays_flatten_zero_based_and_nested_objects_by_dotted_key() -> None:
    flat = flatten({"BackupFile": ["a.log", "b.log"], "Tag": {"Env": "prod"},
                    "Nodes": [{"Id": "n1"}], "Skipped": None})
    assert flat == {"BackupFile.0": "a.log", "BackupFile.1": "b.log", "Tag.Env": "prod",
                    "Nodes.0.Id": "n1"}


def test_booleans_are_lowercase_and_floats_drop_a_zero_fraction() -> None:
    assert flatten({"A": True, "B": False, "C": 10.0, "D": 1.5, "E": 7}) == {
        "A": "true", "B": "false", "C": "10", "D": "1.5", "E": "7"}


def test_comparison_accepts_only_the_exact_signature() -> None:
    assert signature_matches(VECTOR_SIGNATURE, VECTOR_SIGNATURE)
    assert not signature_matches(VECTOR_SIGNATURE, VECTOR_SIGNATURE.upper())
    assert not signature_matches(VECTOR_SIGNATURE, VECTOR_SIGNATURE[:-1])
    assert not signature_matches(VECTOR_SIGNATURE, "é")


_leaf = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
                  st.floats(allow_nan=False, allow_infinity=False, width=32))
_key = st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,8}\Z")
_value = st.one_of(_leaf, st.lists(_leaf, max_size=3), st.dictionaries(_key, _leaf, max_size=3),
                   st.lists(st.dictionaries(_key, _leaf, max_size=2), max_size=2))


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(_key, _value, min_size=1, max_size=6), private_key=st.text())
def test_signature_equals_what_the_official_sdk_computes(
    params: dict[str, object], private_key: str
) -> None:
    sdk_payload = encoder.encode(params)
    assert flatten(params) == sdk_payload
    sdk_signature = Credential("pub", private_key).verify_ac(dict(sdk_payload))
    assert signed(params, "pub", private_key)["Signature"] == sdk_signature
