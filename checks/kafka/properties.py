"""librdkafka's own configuration properties, asked from the library confluent-kafka loads.

`client:` keys are checked at `validate` time against the very librdkafka build the agent
will run with (no shipped list to drift): the property table from
rd_kafka_conf_properties_show() for names and did-you-mean hints, and rd_kafka_conf_set()
for values, so a bad value gets librdkafka's own message. Both are plain C calls through
ctypes on the bundled shared library; when it cannot be found (an unusual install), the
check is skipped and the client reports bad settings when it is created.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import re

import confluent_kafka

_CONF_UNKNOWN, _CONF_INVALID = -2, -1
# Setting this one loads shared libraries: not something validation should do.
_NOT_TRIED = ("plugin.library.paths",)


@functools.lru_cache(maxsize=1)
def _library():
    here = os.path.dirname(confluent_kafka.__file__)
    candidates = glob.glob(os.path.join(here, "..", "confluent_kafka.libs", "librdkafka*.so*"))
    candidates += glob.glob(os.path.join(here, ".dylibs", "librdkafka*.dylib"))
    for path in candidates + ["librdkafka.so.1"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_size_t]
        lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
        return lib
    return None


@functools.lru_cache(maxsize=1)
def known_properties() -> frozenset:
    """Every global and topic property name of this librdkafka, or empty when it cannot be asked."""
    lib = _library()
    if lib is None:
        return frozenset()
    libc = ctypes.CDLL(None)
    libc.tmpfile.restype = ctypes.c_void_p
    libc.fflush.argtypes = libc.rewind.argtypes = libc.fclose.argtypes = [ctypes.c_void_p]
    libc.fread.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    fp = libc.tmpfile()
    if not fp:
        return frozenset()
    try:
        lib.rd_kafka_conf_properties_show(fp)
        libc.fflush(fp)
        libc.rewind(fp)
        chunks = []
        buf = ctypes.create_string_buffer(1 << 16)
        while n := libc.fread(buf, 1, len(buf), fp):
            chunks.append(buf.raw[:n])
    finally:
        libc.fclose(fp)
    table = b"".join(chunks).decode("utf-8", "replace")
    return frozenset(re.findall(r"^([a-z][a-z0-9._-]+)\s+\|", table, re.M))


def problem(name: str, value) -> str | None:
    """Why librdkafka would refuse `name: value`, or None when it accepts it (or cannot be asked)."""
    lib = _library()
    if lib is None or name in _NOT_TRIED:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    conf = lib.rd_kafka_conf_new()
    errstr = ctypes.create_string_buffer(512)
    try:
        rc = lib.rd_kafka_conf_set(conf, name.encode(), str(value).encode(), errstr, len(errstr))
    finally:
        lib.rd_kafka_conf_destroy(conf)
    if rc == _CONF_UNKNOWN:
        return "unknown librdkafka property"
    if rc == _CONF_INVALID:
        return errstr.value.decode("utf-8", "replace")
    return None
