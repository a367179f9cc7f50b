"""The pool of worker processes that scan big local files (scanpool): how they are started, and
their allocator and collector tuned for scanning.
"""

from __future__ import annotations

import threading

# scanpool: imported for the forkserver preload below (its workers' code), not used here.
from dblogpack import scanpool  # noqa: F401
from dblogpack.allocator import keep_freed_memory
from dblogpack.collector import tune_for_scanning
from dblogpack.pieces import use_turns
from dblogpack.turns import PackageTurns

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from concurrent.futures import Executor


def open_pool(workers: int) -> tuple[Executor, PackageTurns]:
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
    turns = PackageTurns(context)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(turns,)
    )
    return pool, turns


def _start_worker(turns: PackageTurns) -> None:
    tune_scanning_worker()
    use_turns(turns)


def tune_scanning_worker() -> None:
    """Set a scanning worker's allocator and collector for millions of short-lived objects.

    The allocator keeps the memory of each chunk read for the next (see allocator).

    gc: a scan allocates millions of tuples and match objects and no cycles; at the default
    thresholds the collector ran every 700 of them and now and then walked every object
    inherited from the parent: 2.5% of a slow pg package's CPU (perf). The inherited objects
    are frozen out of its walks and the young generation is collected 140x less often (CPU of
    the slow pg package, 5 alternating pairs: 3.09 -> 2.99 s).
    """
    import gc

    gc.freeze()
    tune_for_scanning()
    keep_freed_memory()
