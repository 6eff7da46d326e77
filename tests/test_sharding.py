"""agent/sharding.py: an even, stable split that moves little when N changes, and the shard
setting's forms, precedence and errors."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys
from collections import Counter

import pytest

from mqwatch.agent import sharding
from mqwatch.agent.sharding import Shard, ShardError, owner, parse, resolve
from tests.helpers import config_for

NAMES = [f"orders.eu-{i}" for i in range(10_000)]


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_ten_thousand_names_spread_evenly(count):
    per_shard = Counter(owner(n, count) for n in NAMES)
    fair = len(NAMES) / count
    assert set(per_shard) == set(range(count))
    # binomial spread: 4 standard deviations is about 4 * sqrt(fair) names
    assert all(abs(n - fair) < 4 * fair ** 0.5 for n in per_shard.values()), per_shard


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_adding_a_shard_moves_only_what_the_new_shard_takes(count):
    before = {n: owner(n, count) for n in NAMES}
    after = {n: owner(n, count + 1) for n in NAMES}
    moved = [n for n in NAMES if before[n] != after[n]]
    assert all(after[n] == count for n in moved)  # nothing moves between the old shards
    share = len(moved) / len(NAMES)
    assert abs(share - 1 / (count + 1)) < 0.02, share


def test_every_name_has_exactly_one_owner_and_it_is_stable_across_processes():
    shards = [Shard(i, 3) for i in range(3)]
    assert all(sum(s.owns(n) for s in shards) == 1 for n in NAMES[:2000])
    # not Python's per-process salted hash(): another interpreter agrees
    code = "from mqwatch.agent.sharding import owner; print([owner(f'orders.eu-{i}', 3) for i in range(50)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=Path(__file__).resolve().parents[1])
    assert other.stdout.strip() == str([owner(f"orders.eu-{i}", 3) for i in range(50)])
    assert owner(b"jobs:emails", 3) == owner("jobs:emails", 3)


def test_forms_and_errors():
    assert parse("1/3") == Shard(1, 3) and parse(" 0 / 1 ") == Shard(0, 1)
    assert parse("auto/3", hostname="mqwatch-2") == Shard(2, 3)
    assert parse("auto/12", hostname="mqwatch-shard-10") == Shard(10, 12)
    for bad, words in [("3/3", "index must be below"), ("1/0", "must be 1 to"), ("a/b", "expected I/N"),
                       ("-1/3", "expected I/N"), ("1", "expected I/N")]:
        with pytest.raises(ShardError, match=words):
            parse(bad, where="--shard")
    with pytest.raises(ShardError, match=r"HOSTNAME is 'mqwatch'.*e\.g\. 0/3"):
        parse("auto/3", hostname="mqwatch")
    with pytest.raises(ShardError, match="gives index 3, but there are only 3 shards"):
        parse("auto/3", hostname="mqwatch-3")


def test_flag_wins_over_environment_which_wins_over_config():
    env = {"MQWATCH_SHARD": "1/4", "HOSTNAME": "mqwatch-2"}
    assert resolve("auto/3", env, "0/2") == Shard(2, 3)
    assert resolve(None, env, "0/2") == Shard(1, 4)
    assert resolve(None, {"HOSTNAME": "x"}, "0/2") == Shard(0, 2)
    assert resolve(None, {"HOSTNAME": "x"}, "") == sharding.WHOLE
    with pytest.raises(ShardError, match="^MQWATCH_SHARD: '9/4'"):
        resolve(None, {"MQWATCH_SHARD": "9/4"}, "0/2")


def test_config_key_is_validated_with_file_line_and_key():
    assert config_for({"kind": "redis", "name": "r"}, {"shard": "auto/3"}).agent.shard == "auto/3"
    with pytest.raises(Exception) as e:
        config_for({"kind": "redis", "name": "r"}, {"shard": "3/3"})
    assert "test.yaml:2: agent.shard: '3/3': the index must be below the number of shards (0..2), got 3" in str(e.value)
