"""The pool of worker processes that scan big local files (scanpool): how they are started, and
their allocator and collector tuned for scanning.
"""

from __future__ import annotations

import threading

# scanpool: imported for the forkserver preload below (its workers' code), not used here.
from dblogpack import scanpool  # noqa: F401
from dblogpack.chunkreads import MAX_CHUNK
from dblogpack.collector import tune_for_scanning

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from concurrent.futures import Executor


def open_pool(workers: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is fastest, and safe while this process runs one thread (the CLI); a threaded
    # server uses forkserver so no child inherits another thread's held locks.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    # (forkserver re-imports the main module in its children: a script must guard its entry
    # point with `if __name__ == "__main__"`, as console scripts and pytest do.) A worker that
    # dies breaks the executor with an error instead of hanging the package.
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # The server process imports the engine once (this module imports scanpool); each
        # worker forked from it inherits it.
        context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=tune_scanning_worker)


# glibc's mallopt parameters (malloc.h) and the values a scanning worker runs with.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 2 * MAX_CHUNK
_TRIM_THRESHOLD = 4 * MAX_CHUNK


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
    tune_for_scanning()
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
