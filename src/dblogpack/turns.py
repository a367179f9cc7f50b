"""Turns at writing into one package file, shared by a pack process and its scanning workers.

A worker writes its piece's gzip member straight into the package when its turn has come: the
piece before it is in, and it writes at the offset where that one ended. Otherwise it writes the
member to a file of its own, which the pack process copies in when it gets that piece's result.
Every piece is written in the package once, in file order, by whoever held its turn.

The turns and offsets live in shared memory (two integers behind a lock). A worker never waits
for a turn without bound, so a worker that fails or dies holding one stalls nobody: the pieces
after it go through files, and the failure ends the package as before.
"""

from __future__ import annotations

import time

from dblogpack.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from multiprocessing.synchronize import Lock

# No turn is open (between files, after a failure): no piece's number is this.
CLOSED = -1
# How often a waiting worker looks at the turn.
_POLL = 0.0005
# A lock held longer than this is a process that died holding it (nothing else holds it for
# more than a few stores).
_LOCK_TIMEOUT = 1.0
# A piece's gzip member waits in its worker's memory for its turn up to this size; past it, it
# goes to a file.
WAITING_MAX = 16 * 1024 * 1024
# A finished piece waits for its turn about as long as writing its member to a file and the
# parent's copy of it into the package would cost (bytes of member a second).
SPILL_RATE = 500 * 1024 * 1024


class WriteTarget(NamedTuple):
    """Where a worker may write its piece: the package's path, the file it must still be there
    (device and inode: a file replaced under that name is not written to), and the piece's turn."""

    path: str
    device: int
    inode: int
    turn: int


class PackageTurns:
    """Whose turn it is to write into the package, and at which offset.

    Created with the worker pool, so that workers get it at their start (it is shared memory,
    passed on to processes as they start, never in a task)."""

    def __init__(self, context: BaseContext) -> None:
        self._state = context.RawArray("q", [CLOSED, 0])  # [turn, offset]
        self._lock = context.Lock()
        self._next = 0  # the pack process's next free turn number
        # How long a piece may wait for its turn, decided here for every worker given these
        # turns (a forkserver's workers do not share this process's module state).
        self.waiting_max, self.spill_rate = WAITING_MAX, SPILL_RATE

    def reserve(self, count: int) -> int:
        """The first of `count` turns for one member's pieces (pack process). A number is left
        out after them: the last piece's writer passes the turn to nobody, so no piece of the
        next member can write before that member is opened with `grant`."""
        first = self._next
        self._next += count + 1
        return first

    def grant(self, turn: int, offset: int) -> None:
        """Open `turn` at `offset` (pack process: a member's header is written up to there)."""
        self._set(turn, offset)

    def close(self) -> int:
        """Close the turns (pack process, once every piece is in); returns the offset reached."""
        with self._locked():
            offset = int(self._state[1])
            self._state[0] = CLOSED
        return offset

    def offset_if_mine(self, turn: int) -> int | None:
        """The offset to write at when `turn` is open, else None."""
        with self._locked():
            return int(self._state[1]) if self._state[0] == turn else None

    def wait(self, turn: int, seconds: float) -> int | None:
        """The offset to write at once `turn` opens, within `seconds`; None if it does not."""
        deadline = time.monotonic() + seconds
        while (offset := self.offset_if_mine(turn)) is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL)
        return offset

    def pass_on(self, turn: int, offset: int) -> None:
        """The holder of `turn` is done: the next turn opens at `offset`."""
        self._set(turn + 1, offset)

    def _set(self, turn: int, offset: int) -> None:
        with self._locked():
            self._state[1] = offset
            self._state[0] = turn

    def _locked(self) -> _Held:
        return _Held(self._lock)


class _Held:
    """The turns' lock held for a few stores; one a dead process left held is taken anyway, so
    that nothing waits on it (the pool is broken then, and the package fails)."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._taken = False

    def __enter__(self) -> None:
        self._taken = self._lock.acquire(timeout=_LOCK_TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        if self._taken:
            self._lock.release()
