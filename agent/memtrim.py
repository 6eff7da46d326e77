"""Hand the memory a collection cycle freed back to the operating system, and keep it from scattering.

A large Kafka cycle allocates tens of MB for a moment (reply objects of 100k offsets) in
Python's and librdkafka's threads. glibc keeps freed pages in its per-thread arenas, so
without a trim the agent's RSS stays at the peak of its largest cycle and creeps up as
fragments accumulate. malloc_trim is glibc-only; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_trim = _mallopt = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
    _trim.argtypes = [ctypes.c_size_t]
    _trim.restype = ctypes.c_int
    _mallopt = _libc.mallopt
    _mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _mallopt.restype = ctypes.c_int
except (OSError, AttributeError):
    _trim = _mallopt = None

_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed


def tune_malloc(arenas: int = 2, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold; call before any thread starts.
    Returns True when it set both; a setting given in the environment (MALLOC_ARENA_MAX,
    MALLOC_MMAP_THRESHOLD_) is left as it is, and then it returns False.

    Arenas: glibc gives new threads arenas of their own (up to 8 per core). Every record read
    starts a librdkafka consumer with fresh threads, and what those threads leave in
    their arenas is never reused by the next ones: measured on 500-partition reads, RSS
    crept up 10 MB over ten reads with the default and stayed flat with 2 arenas. The
    agent's threads mostly wait on sockets, so sharing arenas costs nothing noticeable.

    mmap threshold: blocks this large get pages of their own, unmapped when freed. glibc
    raises the threshold each time such a block is freed (up to 32 MB), after which a
    cycle's large temporaries (the tables of dicts with 100k committed offsets, reply
    buffers) are carved from the heap instead, where one small block that outlives the
    cycle keeps the pages around it. On 10k partitions x 50 groups (benchmarks/bench_memory.py,
    2026-12-01), fixed at 128 KB: peak 81.8 and 84.3 MB, trough 68.9 and 69.9 MB; the same
    day without: 86.2 and 71.9 MB. Single runs, and runs of the same code differ by up to 4 MB.
    """
    if _mallopt is None:
        return False
    done = True
    for variable, option, value in (("MALLOC_ARENA_MAX", _M_ARENA_MAX, arenas),
                                    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, mmap_threshold)):
        done = (not os.environ.get(variable) and bool(_mallopt(option, value))) and done
    return done


def release_free_memory() -> bool:
    """Returns True when memory was handed back."""
    return bool(_trim(0)) if _trim is not None else False
