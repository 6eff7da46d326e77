"""Record reads in a child process, so a librdkafka crash costs one read instead of the agent.

librdkafka 2.16 segfaults when a consumer fetches a partition whose topic has just been
deleted and the broker answers the Fetch (v13+, topics named by id) with a zero topic id and
a CurrentLeader tag, as tansu does: rd_kafka_handle_Fetch_metadata_update queues a KIP-951
metadata update for a topic with neither id nor name, and rd_kafka_metadata_update_op looks
the NULL name up (strcmp in rd_kafka_metadata_cache_find, thread rdk:main). The first Fetch
after the deletion crashes, before any metadata refresh could tell the consumer; no setting
caps the Fetch version; and a topic can be deleted during any read. So RecordReader's
consumer runs in a child process (one per check, started on the first read or ahead of it
by start(), kept across reads): when it dies, that read reports its partitions as errors,
and the next read starts a new child. librdkafka's log lines of the child go to the
check's ClientLog as before.

The child (an interpreter with confluent-kafka: 22 MB of its own after a 500-partition read)
ends once no read came for IDLE_EXIT seconds, and the next read starts a new one (about
0.3 s). With the default `time_lag: estimate`, a running agent reads records only in its
first cycles (until its end-offset history dates the committed offsets), for new committed
offsets and when DLQs get records, so most of the time it has no child at all; a read every
interval or two keeps the child. The parent ends it under the read lock, so a read never
finds a child that is exiting.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from mqwatch.checks.kafka.records import ClosableReader, ReadResult, RecordReader

log = logging.getLogger("mqwatch.kafka.records")
START_TIMEOUT = 10.0  # the child's interpreter and confluent-kafka, on a loaded machine
GRACE = 1.0  # past the read's own deadline, for the consumer's close; a child late by more is killed
_MAX_LINES = 200  # log lines carried back per read
IDLE_EXIT = 30.0  # s without a read after which the child ends: two default (15 s) intervals


class IsolatedReader(ClosableReader):
    """RecordReader's read() and close(), with the consumer in a child process."""

    def __init__(self, base_config: dict, idle_exit: float = IDLE_EXIT):
        super().__init__()
        # The logger and callbacks stay here; the child gets plain settings (all str/int/bool).
        self._log = base_config.get("logger")
        self._conf = {k: v for k, v in base_config.items() if k != "logger" and not callable(v)}
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._idle_exit = idle_exit
        self._idle: threading.Timer | None = None
        self._ready = False  # the child said "ready" (its consumer settings are in)

    def _release(self) -> None:
        self._stop()

    def _arm_idle_exit(self) -> None:
        """(Re)starts the countdown after which an unused child ends: at the end of each read, and on start()."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = threading.Timer(self._idle_exit, self._end_idle_child)
        self._idle.daemon = True
        self._idle.start()

    def _end_idle_child(self) -> None:
        if self._busy.acquire(blocking=False):  # a read under way keeps its child (and re-arms)
            try:
                self._stop()
            finally:
                self._busy.release()

    def _read_into(self, result: ReadResult, ranges: dict, deadline: float, max_records_per_partition: int) -> None:
        # CLOCK_MONOTONIC is the same in both processes: the child's read ends when ours must.
        try:
            self._start()
            deadline = max(deadline, time.monotonic() + 0.05)  # a child just started had no time yet
            self._send.send((ranges, deadline, max_records_per_partition))
            if not self._recv.poll(max(0.0, deadline - time.monotonic()) + GRACE):
                raise TimeoutError("did not answer")
            answer, lines = self._recv.recv()
        except (OSError, EOFError, TimeoutError) as e:
            problem = self._stop(kill=True) or str(e)
            log.warning("kafka_record_reader_failed error=%s", problem)
            result.errors.extend((t, p, f"record reader process {problem}") for t, p in ranges)
            return
        finally:
            if self._closed:
                self._stop()
            elif self._proc is not None:
                self._arm_idle_exit()
        if self._log is not None:
            for level, msg, args in lines:
                self._log.log(level, msg, *args)
        if isinstance(answer, str):  # an exception in the child, as text
            result.errors.extend((t, p, answer) for t, p in ranges)
        else:
            result.records.update(answer.records)
            result.complete |= answer.complete
            result.errors.extend(answer.errors)

    def start(self) -> None:
        """Starts the child now and returns at once; the first read waits for it to be ready.

        A fresh agent's first collection reads records once the offsets are in; the child's
        interpreter start and import of confluent-kafka (0.05-0.3 s, more on a loaded machine)
        then overlap the offset requests instead of following them.
        """
        if self._closed or not self._busy.acquire(blocking=False):
            return  # closed, or a read is under way (it starts the child itself)
        try:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
                self._arm_idle_exit()  # ends it too should no read come
        except OSError as e:  # reported by the first read, which tries again
            log.warning("kafka_record_reader_failed error=%s", e)
            self._stop(kill=True)
        finally:
            self._busy.release()

    def _start(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._spawn()
        if not self._ready:
            if not self._recv.poll(START_TIMEOUT) or self._recv.recv() != "ready":
                raise TimeoutError("did not start")
            self._ready = True

    def _spawn(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, close_fds=True)
        self._send = Connection(os.dup(self._proc.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self._proc.stdout.fileno()), writable=False)
        self._proc.stdin.close()
        self._proc.stdout.close()
        self._ready = False
        self._send.send(self._conf)

    def _stop(self, kill: bool = False) -> str:
        """Ends the child; says how it ended when it had died on its own."""
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.cancel()
        proc, self._proc = self._proc, None
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()  # the child reads EOF and exits
        self._send = self._recv = None
        self._ready = False
        if proc is None:
            return ""
        died = proc.poll()
        if kill and died is None:
            proc.kill()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if died is None:
            return "" if not kill else "did not answer in time (killed)"
        return f"died ({signal.Signals(-died).name})" if died < 0 else f"exited with code {died}"


class _Lines:
    """The child's librdkafka logger: keeps the lines for the parent's ClientLog."""

    def __init__(self):
        self.lines: list = []

    def log(self, level: int, msg: str, *args) -> None:
        if len(self.lines) < _MAX_LINES:
            self.lines.append((level, str(msg), tuple(str(a) for a in args)))


def _serve() -> None:
    recv = Connection(os.dup(0), writable=False)
    send = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # nothing printed may land in the answers
    lines = _Lines()
    try:
        reader = RecordReader({**recv.recv(), "logger": lines})
        send.send("ready")
        while True:
            ranges, deadline, most = recv.recv()
            try:
                answer = reader.read(ranges, max(0.01, deadline - time.monotonic()), most)
            except Exception as e:  # reported as the read's error, the child goes on
                answer = f"{type(e).__name__}: {e}"
            send.send((answer, lines.lines))
            lines.lines = []
    except (EOFError, OSError, KeyboardInterrupt):
        return  # the agent closed the reader or went away


if __name__ == "__main__":
    _serve()
