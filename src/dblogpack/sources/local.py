"""Log files on a local or mounted file system: a directory plus a glob (`DirSource`), or the
explicit files and directories given to `dblogpack pack` (`PathsSource`). Reads use os.pread.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence

from dblogpack.errors import SourceError
from dblogpack.model import LogFile
from dblogpack.sources.base import LogSource, oldest_first


def _stat_regular(path: str) -> os.stat_result | None:
    """The stat of a regular file (symlinks followed); None for anything else or a vanished one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"cannot stat {path}: {exc.strerror}") from exc
    return st if stat.S_ISREG(st.st_mode) else None


def _pread(path: str, offset: int, size: int) -> bytes:
    """Up to `size` bytes from `offset`; short only at end of file."""
    if offset < 0 or size < 0:
        raise SourceError(f"invalid byte range {offset}+{size} of {path}")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise SourceError(f"log file vanished: {path}") from exc
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        return _pread_fd(fd, offset, size)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _pread_fd(fd: int, offset: int, size: int) -> bytes:
    first = os.pread(fd, size, offset)
    if len(first) == size or not first:
        return first
    # A short read before end of file (large reads on some file systems): keep reading.
    parts = [first]
    got = len(first)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class DirSource(LogSource):
    """The files of one directory whose names match a glob (not recursive).

    Names are confined to the directory: no separators, no `..`, and a symlink
    must resolve inside the directory, else SourceError.
    """

    def __init__(self, log_dir: str | os.PathLike[str], pattern: str = "*") -> None:
        self.log_dir = os.fspath(log_dir)
        self.pattern = pattern or "*"

    def __repr__(self) -> str:
        return f"DirSource({self.log_dir!r}, {self.pattern!r})"

    def check(self) -> None:
        if not os.path.isdir(self.log_dir):
            raise SourceError(f"log directory {self.log_dir} does not exist or is not a directory")
        if not os.access(self.log_dir, os.R_OK | os.X_OK):
            raise SourceError(f"log directory {self.log_dir} is not readable by this process")

    def list_files(self) -> list[LogFile]:
        try:
            names = os.listdir(self.log_dir)
        except OSError as exc:
            raise SourceError(f"cannot list log directory {self.log_dir}: {exc.strerror}") from exc
        root = os.path.realpath(self.log_dir)  # resolved once per listing, not once per file
        files = []
        for name in fnmatch.filter(names, self.pattern):
            path = os.path.join(self.log_dir, name)
            st = _stat_regular(path) if _resolves_into(root, path) else None
            if st is not None:
                files.append(LogFile(name=name, size=st.st_size, mtime=st.st_mtime))
        return oldest_first(files)

    def read(self, name: str, offset: int, size: int) -> bytes:
        return _pread(self.local_path(name), offset, size)

    def local_path(self, name: str) -> str:
        """The confined path of file `name`; SourceError for anything outside the directory."""
        if not name or name in (".", "..") or "/" in name or "\0" in name or os.sep in name:
            raise SourceError(f"invalid log file name {name!r}: a plain file name is expected")
        if not fnmatch.fnmatch(name, self.pattern):
            raise SourceError(f"log file {name!r} does not match the pattern {self.pattern!r}")
        path = os.path.join(self.log_dir, name)
        if not _resolves_into(os.path.realpath(self.log_dir), path):
            raise SourceError(f"log file {name!r} links outside {self.log_dir}")
        return path


def _resolves_into(root: str, path: str) -> bool:
    """Whether `path`, symlinks resolved, is a file directly inside the resolved `root`."""
    return os.path.dirname(os.path.realpath(path)) == root


class PathsSource(LogSource):
    """Explicit files and directories (every regular file directly inside) named on a command line.

    Files are known by their base name, which must be unique across the paths.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self._by_name: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"PathsSource({self.paths!r})"

    def check(self) -> None:
        self._resolve()

    def list_files(self) -> list[LogFile]:
        files = []
        for name, path in self._resolve().items():
            st = _stat_regular(path)
            if st is None:
                raise SourceError(f"log file vanished: {path}")
            files.append(LogFile(name=name, size=st.st_size, mtime=st.st_mtime))
        return oldest_first(files)

    def read(self, name: str, offset: int, size: int) -> bytes:
        return _pread(self.local_path(name), offset, size)

    def local_path(self, name: str) -> str:
        path = self._resolve().get(name)
        if path is None:
            raise SourceError(f"unknown log file {name!r}: not among the paths given")
        return path

    def _resolve(self) -> dict[str, str]:
        if self._by_name is None:
            by_name: dict[str, str] = {}
            for path in self.paths:
                for file_path in self._expand(path):
                    self._add_unique(by_name, file_path)
            self._by_name = by_name
        return self._by_name

    @staticmethod
    def _expand(path: str) -> list[str]:
        if os.path.isdir(path):
            try:
                entries = sorted(os.listdir(path))
            except OSError as exc:
                raise SourceError(f"cannot list directory {path}: {exc.strerror}") from exc
            candidates = [os.path.join(path, e) for e in entries]
            return [c for c in candidates if _stat_regular(c) is not None]
        if not os.path.exists(path):
            raise SourceError(f"no such file or directory: {path}")
        if _stat_regular(path) is None:
            raise SourceError(f"not a regular file: {path}")
        if not os.access(path, os.R_OK):
            raise SourceError(f"cannot read {path}: permission denied")
        return [path]

    @staticmethod
    def _add_unique(by_name: dict[str, str], path: str) -> None:
        name = os.path.basename(path)
        other = by_name.get(name)
        if other is not None and os.path.realpath(other) != os.path.realpath(path):
            raise SourceError(
                f"two files are named {name!r} ({other}, {path}): pack them separately"
            )
        by_name[name] = path
