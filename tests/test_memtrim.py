"""glibc malloc settings of `mqwatch run` (agent/memtrim.py), checked in fresh interpreters
through glibc's own counters (mallinfo2: blocks that got pages of their own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
from mqwatch.agent.memtrim import tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = tune_malloc() if sys.argv[1] == "tuned" else None
big = bytearray(4 << 20)  # mmapped at any threshold; freeing it raises glibc's dynamic one
del big
before = libc.mallinfo2().hblks
blocks = [bytearray(300_000) for _ in range(8)]  # a cycle's large temporaries
print(json.dumps({"tuned": tuned, "own_pages": libc.mallinfo2().hblks - before}))
"""


def _probe(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_temporaries_keep_pages_of_their_own_after_a_larger_block_was_freed():
    """Without the fixed threshold, freeing one 4 MB block moves glibc's threshold up to 4 MB,
    and every later 300 KB block is carved from the heap, where a small block that outlives a
    collection pins its pages (the agent held 3.5-4 MB more between collections)."""
    assert _probe("default")["own_pages"] == 0  # glibc's dynamic threshold, as the test assumes
    tuned = _probe("tuned")
    assert tuned == {"tuned": True, "own_pages": 8}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_threshold_given_in_the_environment_is_left_as_it_is():
    assert _probe("tuned", MALLOC_MMAP_THRESHOLD_=str(1 << 20)) == {"tuned": False, "own_pages": 0}
