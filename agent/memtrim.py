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

_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before any thread starts. Returns True when set.

    glibc gives new threads arenas of their own (up to 8 per core). Every record read
    starts a librdkafka consumer with fresh threads, and what those threads leave in
    their arenas is never reused by the next ones: measured on 500-partition reads, RSS
    crept up 10 MB over ten reads with the default and stayed flat with 2 arenas. The
    agent's threads mostly wait on sockets, so sharing arenas costs nothing noticeable.
    An explicit MALLOC_ARENA_MAX in the environment is left as it is.
    """
    if _mallopt is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(_mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Returns True when memory was handed back."""
    return bool(_trim(0)) if _trim is not None else False
