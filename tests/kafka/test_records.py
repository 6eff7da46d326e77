"""The assign()-only record reader: ranges of many partitions in one read, and a safe close."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil

from mqwatch.checks.kafka.readerprocess import IsolatedReader
from mqwatch.checks.kafka.records import RecordReader
from tests.helpers import kafka_create_topics, kafka_produce, unique


def test_reads_the_asked_ranges_of_several_partitions_in_one_go(kafka_bootstrap):
    topic = unique("rd-orders")
    kafka_create_topics(kafka_bootstrap, {topic: 3})
    kafka_produce(kafka_bootstrap, topic, {0: 5, 1: 2, 2: 1}, headers=[("h", b"v")])
    reader = RecordReader({"bootstrap.servers": kafka_bootstrap})
    try:
        got = reader.read({(topic, 0): (2, 4), (topic, 1): (1, 2), (topic, 2): (1, 5)}, timeout=5)
    finally:
        reader.close()
    assert [r.offset for r in got.records[(topic, 0)]] == [2, 3]
    assert [r.offset for r in got.records[(topic, 1)]] == [1]
    assert got.records[(topic, 2)] == []  # nothing at or after offset 1: complete, not an error
    assert got.complete == {(topic, 0), (topic, 1), (topic, 2)} and got.errors == []
    assert got.records[(topic, 0)][0].headers == (("h", b"v"),) and got.records[(topic, 0)][0].timestamp > 0


def test_a_small_read_ends_as_soon_as_its_partitions_are_answered(kafka_bootstrap):
    """A DLQ's partition or a stopped consumer's: the read asked the client for 500 messages at a
    time, and the client waits for that many or its 0.2 s poll, so every read of a few partitions
    took at least 0.2 s (a one-partition read takes a few ms here)."""
    topic = unique("rd-small")
    kafka_create_topics(kafka_bootstrap, {topic: 2})
    kafka_produce(kafka_bootstrap, topic, {0: 3, 1: 3})
    reader = RecordReader({"bootstrap.servers": kafka_bootstrap})
    took = []
    try:
        for _ in range(3):  # the fastest of three: one slow connection on a busy machine is not the bug
            t0 = time.monotonic()
            got = reader.read({(topic, 0): (0, 3), (topic, 1): (2, 3)}, timeout=5)
            took.append(time.monotonic() - t0)
            assert [r.offset for r in got.records[(topic, 0)]] == [0, 1, 2]
            assert [r.offset for r in got.records[(topic, 1)]] == [2]
            assert got.complete == {(topic, 0), (topic, 1)}
    finally:
        reader.close()
    assert min(took) < 0.1, took


def test_close_from_another_thread_during_a_read_neither_crashes_nor_hangs(fresh_tansu):
    """What happens when the agent drops a check whose collection hung mid-read on a frozen broker."""
    topic = unique("rd-wait")
    kafka_create_topics(fresh_tansu.address, {topic: 1})
    kafka_produce(fresh_tansu.address, topic, {0: 3})
    reader = RecordReader({"bootstrap.servers": fresh_tansu.address})
    assert len(reader.read({(topic, 0): (0, 1)}, timeout=5).records[(topic, 0)]) == 1  # connected
    fresh_tansu.pause()
    started, done = threading.Event(), {}

    def read():
        started.set()
        t0 = time.monotonic()
        done["result"] = reader.read({(topic, 0): (1, 3)}, timeout=2.0)
        done["took"] = time.monotonic() - t0

    t = threading.Thread(target=read)
    t.start()
    started.wait()
    time.sleep(0.5)
    t0 = time.monotonic()
    reader.close()
    assert time.monotonic() - t0 < 0.5  # close does not wait for the read
    t.join(5)
    assert not t.is_alive() and done["took"] >= 1.9  # the read was still running when close came
    assert done["result"].records[(topic, 0)] == [] and done["result"].complete == set()
    assert reader.read({(topic, 0): (0, 1)}, timeout=1).records[(topic, 0)] == []  # closed: reads nothing


def test_reads_in_a_child_process_that_is_replaced_when_it_dies(kafka_bootstrap):
    """librdkafka can segfault on a topic deleted mid-read (tests/faults/test_kafka_topic_churn.py):
    the check's reads go through IsolatedReader, whose child takes the crash instead of the agent."""
    topic = unique("rd-child")
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 2}, headers=[("h", b"v")])
    reader = IsolatedReader({"bootstrap.servers": kafka_bootstrap})
    try:
        got = reader.read({(topic, 0): (0, 2)}, timeout=5)
        assert [r.offset for r in got.records[(topic, 0)]] == [0, 1] and got.errors == []
        assert got.records[(topic, 0)][0].headers == (("h", b"v"),)
        child = reader._proc
        os.kill(child.pid, signal.SIGSEGV)  # what librdkafka's crash does to it
        child.wait(5)
        again = reader.read({(topic, 0): (1, 2)}, timeout=5)
        assert [r.offset for r in again.records[(topic, 0)]] == [1] and again.errors == []
        assert reader._proc.pid != child.pid
    finally:
        reader.close()
    assert reader._proc is None and reader.read({(topic, 0): (0, 1)}, timeout=1).records[(topic, 0)] == []


def test_an_idle_reader_child_ends_and_the_next_read_starts_another(kafka_bootstrap):
    """A running agent with `time_lag: estimate` stops reading records after its first cycles:
    its reader child (an interpreter with confluent-kafka) must not stay behind, idle, in the
    agent's memory budget, and a read after that must still work."""
    topic = unique("rd-idle")
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 2})
    me = psutil.Process()

    def children() -> set:
        return {c.pid for c in me.children()}

    def wait_gone(pid: int) -> None:
        deadline = time.monotonic() + 30
        while pid in children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid not in children()  # ended and reaped: not even a zombie

    reader = IsolatedReader({"bootstrap.servers": kafka_bootstrap}, idle_exit=1.0)
    try:
        reader.start()  # started ahead of a first read (check.py) that then does not come
        wait_gone(reader_pid := reader._proc.pid)
        assert [r.offset for r in reader.read({(topic, 0): (0, 2)}, timeout=5).records[(topic, 0)]] == [0, 1]
        first = reader._proc.pid
        assert first != reader_pid and first in children()
        wait_gone(first)
        again = reader.read({(topic, 0): (1, 2)}, timeout=5)
        assert [r.offset for r in again.records[(topic, 0)]] == [1] and again.errors == []
        assert reader._proc.pid != first and reader._proc.pid in children()
    finally:
        reader.close()
    assert reader._proc is None
