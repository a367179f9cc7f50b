"""The C library's allocator of a process that scans logs: every read is a fresh block of
megabytes, and glibc serves one that size with pages the kernel faults in one by one as the read
fills them. Scanning workers (workerpool) and a `pack` process (cli) keep the memory they free,
so their later reads land in pages faulted in already; a `pack` process also has a thread fault
in the memory of its first reads while it imports its modules (see warm_for_pack).

Through the _heap extension; where it is not built, or the C library is not glibc, nothing
changes but the speed.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from types import ModuleType

# Blocks below this come from the heap, and the heap keeps up to this much free memory at its
# top, rather than returning it: twice and four times the largest chunk a scan reads
# (chunkreads.MAX_CHUNK), so every chunk's block comes from the heap and goes back to it.
MMAP_THRESHOLD = 128 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024
# The memory faulted in ahead by a `pack` process: the reads of a small window's scan, chunks
# of 2 MiB (scanpool.THREADED_CHUNK) of which about three are alive at a time.
WARM_BYTES = 6 * 1024 * 1024


def keep_freed_memory() -> None:
    """Keep freed memory for the next chunk's read (a scanning worker process).

    Each chunk's pages faulted in anew were a third of a scanning worker's system time on a
    1.1 GB slow package (0.3-0.5 s -> 0.16-0.23 s, wall 1.64-1.93 s -> 1.52-1.58 s). The heap
    then holds what the worker's two or three live chunks need.
    """
    heap = _extension()
    if heap is not None:
        heap.tune(MMAP_THRESHOLD, TRIM_THRESHOLD)


def warm_for_pack() -> None:
    """Tune the allocator as a worker's, in one arena, and start a thread faulting in
    WARM_BYTES of it, then freeing them for the reads to come (a `pack` process). Call it first
    thing: the thread runs on the other core while this one imports the pack's modules.

    One arena: glibc gives each thread that allocates an arena of its own, and memory freed in
    one is not used by another (the warming thread's would not be the reading thread's). The
    threads of a pack allocate their big blocks a few times a second, and hardly ever at once.

    A 1-hour window's pack, medians of alternating processes: 47.0 -> 44.0 ms (41 rounds), and
    57.8 -> 54.4 ms in a slow phase of the machine (21 rounds); its reads of 2 MiB took 0.3-0.6
    ms instead of 1.4-5.6 ms. Warming 8 MiB measured no better than 6 (more pages to fault in
    beside the imports).
    """
    heap = _extension()
    if heap is not None and heap.tune(MMAP_THRESHOLD, TRIM_THRESHOLD, arenas=1):
        import _thread  # not threading: importing it costs ~0.9 ms of every pack's start

        _thread.start_new_thread(heap.warm, (WARM_BYTES,))


def _extension() -> ModuleType | None:
    try:
        from dblogpack import _heap
    except ImportError:  # a source tree whose extension is not built
        return None
    return _heap
