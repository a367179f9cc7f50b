"""The vocabulary every layer shares: frozen values and enums, no behaviour beyond arithmetic.

Values are NamedTuples (immutable, hashable, picklable; `value._replace(field=...)` makes a changed
copy) and results plain slotted classes: `dblogpack pack` builds them at every start, and
dataclasses would cost it a quarter of its 50 ms (see records.py).
"""

from __future__ import annotations

from enum import StrEnum

from dblogpack.records import NamedTuple


class LogKind(StrEnum):
    """Which entries a package keeps."""

    SLOW = "slow"
    ERROR = "error"
    ALL = "all"


class ResourceKind(StrEnum):
    PGSQL = "pgsql"
    MONGODB = "mongodb"


class PackageState(StrEnum):
    """Job states, with the names UCloud's consoles and SDK users know."""

    RUNNING = "Package_Running"
    SUCCESS = "Package_Success"
    FAILED = "Package_Failed"
    DELETING = "Package_Deleting"
    DELETED = "Package_Deleted"
    DELETE_FAILED = "Package_DeleteFailed"


class _WindowEdges(NamedTuple):
    begin: float | None = None
    end: float | None = None


class TimeWindow(_WindowEdges):
    """Half-open window `begin <= t < end` in unix seconds; a missing edge is unbounded."""

    __slots__ = ()

    def __new__(cls, begin: float | None = None, end: float | None = None) -> TimeWindow:
        if begin is not None and end is not None and begin >= end:
            raise ValueError(f"window begin {begin} is not before end {end}")
        return super().__new__(cls, begin, end)

    def contains(self, ts: float) -> bool:
        if self.begin is not None and ts < self.begin:
            return False
        return self.end is None or ts < self.end

    def overlaps(self, first: float | None, last: float | None) -> bool:
        """Whether a file whose entries span [first, last] may hold entries of the window.

        Unknown edges (None) are taken as overlapping: such a file must be read.
        """
        if first is not None and self.end is not None and first >= self.end:
            return False
        return not (last is not None and self.begin is not None and last < self.begin)


class LogFile(NamedTuple):
    """A log file as a source lists it; timestamps are filled in by whoever reads its edges."""

    name: str
    size: int
    mtime: float | None = None
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".gz")


class FormatConfig(NamedTuple):
    """Everything needed to build a log format in any process (it must stay picklable)."""

    name: str  # auto | pg-stderr | pg-csv | pg-json | mongo-json | mongo-legacy
    log_line_prefix: str | None = None
    timezone: str | None = None  # IANA name; None means UTC


class SourceType(StrEnum):
    POSTGRES = "postgres"
    DIR = "dir"
    SSH = "ssh"


class SourceConfig(NamedTuple):
    """Where a node's logs are and how to read them, as registered.

    `dsn` and `ssh_private_key` are secrets: stored encrypted, never returned or logged.
    """

    type: SourceType
    dsn: str | None = None
    log_dir: str | None = None
    log_pattern: str | None = None
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_private_key: str | None = None
    ssh_known_host_key: str | None = None  # None: host key not checked (documented risk)
    log_format: FormatConfig = FormatConfig("auto")

    def __repr__(self) -> str:
        # Secrets must never reach a log line through a repr.
        return (
            f"SourceConfig(type={self.type.value!r}, log_dir={self.log_dir!r}, "
            f"ssh_host={self.ssh_host!r})"
        )


class Query(NamedTuple):
    """What a scan keeps: the window, the type, and whether per-entry details are wanted."""

    window: TimeWindow
    kind: LogKind
    min_duration_ms: float | None = None
    details: bool = False
    # False for a file whose times go back (spliced files, clock jumps): no chunk may then be
    # cut by bisecting its times, every entry is judged by its own.
    ordered: bool = True


# An entry's statement and message in its details (pg-stderr, pg-csv): their first this many
# characters. A summary reads at most 2000 of them (sqlshape.FINGERPRINT_CHARS; 500 for
# examples), and a 64 MiB statement decoded whole took ~470 MB of a slow package's memory.
DETAIL_CHARS = 4096
# Bytes that always hold DETAIL_CHARS characters once decoded: at most 4 bytes a character
# (UTF-8; a doubled csv quote, or a continuation line's newline and TAB, is 2), and at most 3
# bytes of a character cut at the end.
DETAIL_BYTES = 4 * DETAIL_CHARS + 4
# Selected entries alike share one parse for their details, grouped by a key that is a copy of
# the text that decides them. An entry whose key would be longer than this gets none and is
# parsed on its own (the key of a 10 MB statement was 10 MB more, twice over with the copies).
LONGEST_KEY = 64 * 1024


class EntryDetail(NamedTuple):
    """Parsed fields of one selected entry, for summaries (only built when Query.details)."""

    timestamp: float
    severity: str  # PostgreSQL: LOG, WARNING, ERROR...; MongoDB: I, W, E, F...
    duration_ms: float | None = None
    statement: str | None = None  # SQL text, or a MongoDB command's shape
    code: str | None = None  # SQLSTATE or MongoDB error code
    message: str = ""


class DetailGroup:
    """Selected entries a summary counts alike (same statement, severity and code): the first
    entry's details, how many there are and their durations. Grouping spares a parse per entry."""

    __slots__ = ("count", "fingerprint", "first", "max_ms", "total_ms")

    def __init__(
        self,
        first: EntryDetail,
        count: int = 1,
        total_ms: float = 0.0,
        max_ms: float = 0.0,
        fingerprint: str | None = None,
    ) -> None:
        self.first, self.count, self.total_ms, self.max_ms = first, count, total_ms, max_ms
        # The summary's fingerprint of the first entry's statement, when the scan has it already
        # (pg-stderr's slow scan groups by it); else the summary computes it.
        self.fingerprint = fingerprint

    def __repr__(self) -> str:
        return _repr(self)


class LogWarning(NamedTuple):
    """Something in a log that could not be read as expected; counted, never fatal."""

    file: str
    offset: int
    kind: str  # unparseable | gap | vanished | truncated | disorder ...
    detail: str


class PackageSpec(NamedTuple):
    """What one package holds; the job row carries exactly this."""

    id: str
    name: str
    kind: ResourceKind
    resource_id: str
    node_id: str | None
    log_type: LogKind
    window: TimeWindow
    min_duration_ms: float | None = None
    files: tuple[str, ...] | None = None  # PostgreSQL: names chosen by the caller; None = all


class FileResult:
    """What the packer wrote for one source file (one row of manifest.json "files")."""

    __slots__ = (
        "bytes_scanned", "bytes_written", "entries", "first_ts", "format", "last_ts", "member",
        "name", "sha256",
    )

    def __init__(self, name: str, format: str) -> None:
        self.name, self.format = name, format
        self.bytes_scanned = self.entries = self.bytes_written = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.member: str | None = None
        self.sha256: str | None = None

    def __repr__(self) -> str:
        return _repr(self)


class PackageResult:
    """What a package holds: a row per source file, the warnings, the .tar.gz's size and hash."""

    __slots__ = ("files", "sha256", "size", "summary", "warnings")

    def __init__(self) -> None:
        self.files: list[FileResult] = []
        self.warnings: list[LogWarning] = []
        self.size = 0  # bytes of the .tar.gz
        self.sha256: str | None = None
        self.summary: bytes | None = None  # summary.json as written into the package

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    def __repr__(self) -> str:
        return _repr(self)


def _repr(value: DetailGroup | FileResult | PackageResult) -> str:
    fields = ", ".join(f"{name}={getattr(value, name)!r}" for name in value.__slots__)
    return f"{type(value).__name__}({fields})"
