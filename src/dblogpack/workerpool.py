"""The pool of worker processes that scan big local files (scanpool): how they are started, and
their allocator and collector tuned for scanning.

A single-threaded caller (the CLI) forks its workers itself (`ForkPool`): they inherit the tasks,
take their numbers from a pipe and send back pickled results. A threaded caller (the server) uses
a ProcessPoolExecutor on forkserver, so no child inherits another thread's held locks.
"""

from __future__ import annotations

import os
import pickle
import threading

from dblogpack import scanpool
from dblogpack.errors import InternalError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from concurrent.futures import Executor
    from typing import Any

_DIED = "a log-scanning worker process died"


def open_pool(workers: int) -> Pool:
    """`workers` scanning processes; `map` raises InternalError when one of them dies."""
    if threading.active_count() == 1:
        return ForkPool(workers)
    return _server_pool(workers)


def _server_pool(workers: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    class TranslatedExecutor(ProcessPoolExecutor):
        """A worker that dies breaks the executor: an InternalError, not a hang."""

        def map(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from super().map(*args, **kwargs)
            except BrokenProcessPool as exc:
                raise InternalError(f"{_DIED}: {exc}") from exc

    # forkserver re-imports the main module in its children: a script must guard its entry
    # point with `if __name__ == "__main__"`, as console scripts and pytest do. The server
    # process imports the engine once (this module imports scanpool); each worker forked from it
    # inherits it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return TranslatedExecutor(workers, mp_context=context, initializer=tune_scanning_worker)


class ForkPool:
    """Worker processes forked from this (single-threaded) process when `map` is called.

    Cheaper to start than a ProcessPoolExecutor (whose modules alone take ~20 ms to import, at
    the start of every package big enough for workers): the children inherit the function and the
    tasks, read task numbers from one pipe (4-byte reads of a pipe are atomic, so each number goes
    to one child) and write length-prefixed pickles of (number, ok, result or exception) to a pipe
    of their own. A child that ends before its results are in fails the map with InternalError.
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pids: list[int] = []

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """fn(task) for every task, in order, computed by the worker processes."""
        todo = list(tasks)
        if not todo:
            return
        numbers_in, numbers_out = os.pipe()
        pipes = [self._fork(fn, todo, numbers_in, numbers_out) for _ in range(self._workers)]
        os.close(numbers_in)
        with os.fdopen(numbers_out, "wb") as numbers:  # all at once: 4 bytes a task
            numbers.write(b"".join(n.to_bytes(4, "little") for n in range(len(todo))))
        yield from _Results(pipes, len(todo))

    def _fork(
        self, fn: Callable[[Any], Any], todo: list[Any], numbers_in: int, numbers_out: int
    ) -> int:
        results_in, results_out = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                os.close(numbers_out)
                os.close(results_in)
                tune_scanning_worker()
                _work(fn, todo, numbers_in, results_out)
                code = 0
            finally:
                os._exit(code)
        self._pids.append(pid)
        os.close(results_out)
        return results_in

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers (those still scanning, after a failure, are killed) and reap them."""
        import signal

        for pid in self._pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue  # ended already, results sent: reaped below
        for pid in self._pids:
            os.waitpid(pid, 0)
        self._pids.clear()


def _work(fn: Callable[[Any], Any], todo: list[Any], numbers_in: int, results_out: int) -> None:
    """A child's loop: compute the tasks whose numbers it reads, send each result back."""
    with os.fdopen(results_out, "wb") as out:
        while number := os.read(numbers_in, 4):
            index = int.from_bytes(number, "little")
            try:
                reply = pickle.dumps((index, True, fn(todo[index])), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # sent to the parent, which raises it there
                reply = _failure(index, exc)
            out.write(len(reply).to_bytes(8, "little") + reply)
            out.flush()


def _failure(index: int, exc: Exception) -> bytes:
    try:
        return pickle.dumps((index, False, exc), pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle still fails the package, by name
        return pickle.dumps((index, False, InternalError(f"{_DIED} of {exc!r}")))


class _Results:
    """The results of the tasks in order, read from the workers' pipes as they come."""

    def __init__(self, pipes: list[int], count: int) -> None:
        self._files = {fd: os.fdopen(fd, "rb") for fd in pipes}
        self._count = count
        self._waiting: dict[int, Any] = {}

    def __iter__(self) -> Iterator[Any]:
        import selectors

        try:
            with selectors.DefaultSelector() as selector:
                for file in self._files.values():
                    selector.register(file, selectors.EVENT_READ)
                for index in range(self._count):
                    while index not in self._waiting:
                        self._read_ready(selector)
                    ok, value = self._waiting.pop(index)
                    if not ok:
                        raise value
                    yield value
        finally:
            for file in self._files.values():
                file.close()

    def _read_ready(self, selector: Any) -> None:
        if not selector.get_map():
            raise InternalError(_DIED)
        for key, _ in selector.select():
            file = key.fileobj
            header = file.read(8)
            if len(header) < 8:  # the worker ended: every task it took is answered, or lost
                selector.unregister(file)
                continue
            size = int.from_bytes(header, "little")
            reply = file.read(size)
            if len(reply) < size:
                raise InternalError(_DIED)
            index, ok, value = pickle.loads(reply)
            self._waiting[index] = (ok, value)


if TYPE_CHECKING:
    Pool = Executor | ForkPool


# glibc's mallopt parameters (malloc.h) and the values a scanning worker runs with.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 2 * scanpool.MAX_CHUNK
_TRIM_THRESHOLD = 4 * scanpool.MAX_CHUNK


def tune_scanning_worker() -> None:
    """Set a scanning worker's allocator and collector for millions of short-lived objects.

    glibc: every read is a fresh bytes object of about CHUNK bytes, which glibc serves with
    mmap and unmaps when freed, so each chunk's pages were faulted in anew: a third of a
    scanning worker's system time on a 1.1 GB slow package (0.3-0.5 s -> 0.16-0.23 s with the
    thresholds below, wall 1.64-1.93 s -> 1.52-1.58 s). The heap then holds what the worker's
    two or three live chunks need, as before. Elsewhere than glibc this part does nothing.

    gc: a scan allocates millions of tuples and match objects and no cycles; at the default
    thresholds the collector ran every 700 of them and now and then walked every object
    inherited from the parent: 2.5% of a slow pg package's CPU (perf). The inherited objects
    are frozen out of its walks and the young generation is collected 140x less often (CPU of
    the slow pg package, 5 alternating pairs: 3.09 -> 2.99 s).
    """
    import ctypes
    import gc

    gc.freeze()
    gc.set_threshold(100_000, 50, 50)
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
