"""Which part of the work this agent owns when N replicas share it (`--shard I/N`).

Rendezvous (highest-random-weight) hashing: every shard scores a key with a stable hash of
(shard, key) and the highest score owns it. No coordinator, no shared state: each replica
decides alone and they agree. Changing N from N to N+1 moves only the keys the new shard
wins, about 1/(N+1) of them; nothing moves between the old shards.

The hash is blake2b from the standard library, not Python's hash(), which is salted per
process (PYTHONHASHSEED) and would make two replicas disagree.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "MQWATCH_SHARD"
FORMAT_HINT = "expected I/N (0 <= I < N, e.g. 1/3) or auto/N (I from the number at the end of HOSTNAME)"
MAX_SHARDS = 1024  # a bound, not a design point: beyond this the per-key scoring cost grows with N
_SPEC = re.compile(r"\s*(\d+|auto)\s*/\s*(\d+)\s*")
_ORDINAL = re.compile(r"(\d+)$")


class ShardError(ValueError):
    """A shard setting that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def first(self) -> bool:
        """Shard 0 exports the cluster-wide series (broker counts, controller, server health)
        that every shard could read, so that each is exported exactly once."""
        return self.index == 0

    def owns(self, key: str | bytes) -> bool:
        """True if this shard is the one that reads `key` (a topic, a Redis key, a group)."""
        if self.count == 1:
            return True
        return owner(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard()


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finalizer: a stable 64-bit bijection that spreads every input bit."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


_SEEDS = [_mix(i + 1) for i in range(MAX_SHARDS)]  # one per shard index


def owner(key: str | bytes, count: int) -> int:
    """The shard of `count` that owns `key`: the one whose score for (shard, key) is highest.
    The key is hashed once (blake2b); each shard's score mixes that hash with the shard's seed,
    so a million Redis keys cost a million hashes, not N million (~1.5 us a key at N=3)."""
    data = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
    h = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    scores = [_mix(h ^ _SEEDS[i]) for i in range(count)]
    return scores.index(max(scores))


def check_spec(text: str) -> str:
    """Validate the form of a shard setting without resolving `auto` (config validation)."""
    _split(text)
    return text.strip()


def parse(text: str, hostname: str | None = None, where: str = "shard") -> Shard:
    """`I/N` or `auto/N` -> Shard; `auto` takes I from the ordinal ending `hostname`
    (a StatefulSet pod `mqwatch-2` is shard 2)."""
    index, count = _split(text, where)
    if index == "auto":
        m = _ORDINAL.search(hostname or "")
        if not m:
            raise ShardError(f"{where}: {text.strip()!r} takes the shard index from the number at the end of "
                             f"HOSTNAME, but HOSTNAME is {hostname!r}: run as a StatefulSet pod (name-0, name-1, ...) "
                             f"or give the index, e.g. 0/{count}")
        index = int(m.group(1))
        if index >= count:
            raise ShardError(f"{where}: HOSTNAME {hostname!r} gives index {index}, but there are only {count} "
                             f"shards (0..{count - 1}): the StatefulSet has more replicas than auto/{count} says")
    return Shard(int(index), count)


def _split(text, where: str = "shard") -> tuple[int | str, int]:
    m = _SPEC.fullmatch(str(text))
    if not m:
        raise ShardError(f"{where}: {text!r} is not valid: {FORMAT_HINT}")
    index, count = m.group(1), int(m.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"{where}: {text.strip()!r}: the number of shards must be 1 to {MAX_SHARDS}, got {count}")
    if index != "auto":
        index = int(index)
        if index >= count:
            raise ShardError(f"{where}: {text.strip()!r}: the index must be below the number of shards "
                             f"(0..{count - 1}), got {index}")
    return index, count


def resolve(flag: str | None, environ: Mapping[str, str], configured: str | None) -> Shard:
    """The shard to run as: `--shard` wins over MQWATCH_SHARD, which wins over agent.shard."""
    hostname = environ.get("HOSTNAME") or socket.gethostname()
    for value, where in ((flag, "--shard"), (environ.get(ENV_VAR), ENV_VAR), (configured, "agent.shard")):
        if value not in (None, ""):
            return parse(value, hostname, where)
    return WHOLE
