"""The one interface every package store implements: publish atomically, open, link, delete."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO


class PackageStore(ABC):
    """Where finished packages live. Keys are relative names like `proj/pkg-id/name.tar.gz`."""

    @abstractmethod
    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A file to write a package into, published under `key` only when the block exits cleanly.

        Until then nothing is visible under `key`; on an exception the partial
        object is removed. Publishing the same key twice replaces it atomically.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Read a published package; FileNotFoundError when there is none."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes of a published package; FileNotFoundError when there is none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a published package; deleting a missing key is not an error."""

    @abstractmethod
    def presigned_url(self, key: str, valid_seconds: int, filename: str) -> str | None:
        """A URL the store itself serves (S3), or None when dblogpack serves the bytes."""

    @abstractmethod
    def check(self) -> None:
        """Raise StoreError with an actionable message unless the store is writable."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Published keys under `prefix` (for sweeping, and to prove no partial object is left)."""

    @abstractmethod
    def remove_abandoned(self, idle_since: float) -> int:
        """Remove the unfinished writes of writers that died (a SIGKILLed worker cannot clean
        up): those untouched since `idle_since` (unix seconds). Returns how many."""
