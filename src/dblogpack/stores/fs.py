"""The file-system package store: packages under one root directory, published atomically.

A package is written to `.partial-…` beside its final name, fsynced, then `os.replace`d, so a
reader sees either nothing or the whole file; dblogpack serves these files itself.
"""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from dblogpack.errors import StoreError
from dblogpack.stores import PARTIAL_PREFIX, check_key
from dblogpack.stores.base import PackageStore

# Published packages are readable by the service's group (e.g. a front web server), not others.
PACKAGE_MODE = 0o640


@contextmanager
def _store_errors(verb: str, path: Path) -> Iterator[None]:
    """OSErrors become StoreErrors naming the package; a missing file stays FileNotFoundError."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot {verb} package {path}: {exc.strerror}") from exc


class FileStore(PackageStore):
    """Packages as files under `root` (created when missing); keys map to relative paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """The file a key is published as (for serving it with sendfile and Range)."""
        return self.root.joinpath(*check_key(key).split("/"))

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        target = self.path_of(key)
        fd, partial = self._create_partial(target)
        try:
            with os.fdopen(fd, "wb") as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
                os.fchmod(file.fileno(), PACKAGE_MODE)
            os.replace(partial, target)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        _fsync_dir(target.parent)

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        with _store_errors("open", path):
            return path.open("rb")

    def size(self, key: str) -> int:
        path = self.path_of(key)
        with _store_errors("stat", path):
            return path.stat().st_size

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        with _store_errors("delete", path):
            path.unlink(missing_ok=True)
        self._prune_empty_dirs(path.parent)

    def presigned_url(self, key: str, valid_seconds: int, filename: str) -> str | None:
        return None  # dblogpack serves these files itself, behind a signed link (links.py)

    def check(self) -> None:
        probe = f"_dblogpack_probe/{uuid.uuid4().hex}"
        try:
            with self.writer(probe) as file:
                file.write(b"dblogpack store probe\n")
            self.delete(probe)
        except OSError as exc:
            raise StoreError(
                f"package directory {self.root} is not writable: {exc.strerror or exc} "
                "(create it and give the service user write access)"
            ) from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        # Walk only the directory the prefix lies in; the prefix is a string prefix, as on S3.
        directories = prefix.split("/")[:-1]
        if prefix.startswith("/") or any(d in ("", ".", "..") for d in directories):
            raise ValueError(f"invalid key prefix {prefix!r}: want a relative name like 'proj/'")
        start = self.root.joinpath(*directories)
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith(PARTIAL_PREFIX):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    yield key

    def remove_abandoned(self, idle_since: float) -> int:
        # A live writer writes its partial file all along, so its mtime stays recent.
        removed = 0
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(PARTIAL_PREFIX):
                    continue
                path = Path(dirpath) / name
                with suppress(FileNotFoundError), _store_errors("remove the unfinished", path):
                    if path.stat().st_mtime < idle_since:
                        path.unlink()
                        removed += 1
                        self._prune_empty_dirs(path.parent)
        return removed

    def _create_partial(self, target: Path) -> tuple[int, str]:
        try:
            try:
                return _mkstemp_beside(target)
            except FileNotFoundError:
                # A concurrent delete pruned the directory between mkdir and mkstemp: once more.
                return _mkstemp_beside(target)
        except OSError as exc:
            raise StoreError(
                f"cannot create a package file in {target.parent}: {exc.strerror}"
            ) from exc

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove directories left empty by a delete, up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return  # still in use (or already gone): that is where pruning stops
                raise StoreError(f"cannot remove {directory}: {exc.strerror}") from exc
            directory = directory.parent


def _mkstemp_beside(target: Path) -> tuple[int, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (the file's data was fsynced before it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
