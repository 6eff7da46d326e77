"""Hand the memory a collection cycle freed back to the operating system.

A large Kafka cycle allocates tens of MB for a moment (reply objects of 100k offsets) in
Python's and librdkafka's threads. glibc keeps freed pages in its per-thread arenas, so
without a trim the agent's RSS stays at the peak of its largest cycle and creeps up as
fragments accumulate. malloc_trim is glibc-only; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_trim = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
    _trim.argtypes = [ctypes.c_size_t]
    _trim.restype = ctypes.c_int
except (OSError, AttributeError):
    _trim = None


def release_free_memory() -> bool:
    """Returns True when memory was handed back."""
    return bool(_trim(0)) if _trim is not None else False
