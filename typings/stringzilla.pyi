# Types of the stringzilla functions dblogpack calls (the package ships none). Each takes any
# buffer (bytes, bytearray, memoryview) without copying it; offsets are byte offsets, as in
# the matching bytes methods.
from collections.abc import Iterator
from typing import overload

from typing_extensions import Buffer

__version__: str

def count(
    text: Buffer | str,
    substring: Buffer | str,
    start: int = ...,
    end: int = ...,
    allowoverlap: bool = ...,
) -> int: ...
def find(text: Buffer | str, substring: Buffer | str, start: int = ..., end: int = ...) -> int: ...
def rfind(text: Buffer | str, substring: Buffer | str, start: int = ..., end: int = ...) -> int: ...
def find_first_of(
    text: Buffer | str, chars: Buffer | str, start: int = ..., end: int = ...
) -> int: ...
@overload
def translate(
    text: Buffer | str,
    table: Buffer | str | dict[int, int],
    inplace: bool = ...,
    start: int = ...,
    end: int = ...,
) -> bytes: ...
@overload
def translate(
    text: Buffer | str,
    table: Buffer | str | dict[int, int],
    inplace: bool = ...,
    start: int = ...,
    end: int = ...,
    *,
    out: Buffer,
) -> Buffer: ...

class Str:
    """A view of a buffer's bytes (what split_iter yields)."""

    def __len__(self) -> int: ...

def split_iter(
    text: Buffer | str,
    separator: Buffer | str,
    keepseparator: bool = ...,
    skip_empty: bool = ...,
) -> Iterator[Str]: ...

class Sha256:
    """sha256 as hashlib's hashers give it (it holds the GIL as it hashes)."""

    def update(self, data: Buffer, /) -> Sha256: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
