"""The one interface every log source implements: list files, read byte ranges, check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from dblogpack.model import LogFile
from dblogpack.records import NamedTuple


class LoggingSettings(NamedTuple):
    """How the server writes its logs, when the source can ask it (PostgreSQL's SHOW)."""

    log_destination: str | None = None
    log_line_prefix: str | None = None
    log_timezone: str | None = None
    log_directory: str | None = None


def oldest_first(files: Iterable[LogFile]) -> list[LogFile]:
    """`files` in the order `list_files` returns them: by mtime, the name breaking ties
    (PostgreSQL's rotation names sort by time too)."""
    return sorted(files, key=lambda f: (f.mtime or 0.0, f.name))


class LogSource(ABC):
    """A node's log files, read with random access.

    Every network call has a timeout; failures raise `errors.SourceError`
    naming the node and what went wrong (connection, auth, permission, a file
    that vanished).
    """

    @abstractmethod
    def list_files(self) -> list[LogFile]:
        """The node's log files, oldest first, with name, size and mtime (no timestamps)."""

    @abstractmethod
    def read(self, name: str, offset: int, size: int) -> bytes:
        """Up to `size` raw bytes of file `name` from `offset` (fewer only at end of file).

        `name` must be one of `list_files()`'s names; anything else (paths,
        `..`) raises SourceError.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise SourceError with an actionable message unless the source answers."""

    def local_path(self, name: str) -> str | None:
        """A path this process and its children can open directly (zero-copy reads), if any.

        Only local sources have one; the same confinement rules as `read` apply.
        """
        return None

    def logging_settings(self) -> LoggingSettings | None:
        """What the server says of its logging, when the source can ask it."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release connections."""

    def __enter__(self) -> LogSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
