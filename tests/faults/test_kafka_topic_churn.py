"""Issue 12: Kafka topics created and deleted all the time under a running agent that reads their
dead letters at a 0.1 s interval. librdkafka 2.16 segfaults (rd_kafka_metadata_update_op ->
rd_kafka_metadata_cache_find on a NULL topic name) when a consumer's Fetch meets a topic tansu has
just deleted, and that ended the whole agent (exit -11, every check gone). The record reader now
runs in a child process (checks/kafka/readerprocess.py): the child dies, the agent serves on."""

from __future__ import annotations

import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mqwatch.agent.embedded import free_port
from tests.faults.stack import AgentProcess, Watcher, value
from tests.helpers import unique, wait_until

CHURN_SECONDS = 8.0  # without the child process the agent died (exit -11) after 3 deleted pairs
LIVE = 3  # topic pairs alive at once; the oldest is deleted when a new one is made


def test_topics_deleted_while_their_dead_letters_are_read_never_end_the_agent(tmp_path, fresh_tansu):
    bootstrap, prefix = fresh_tansu.address, unique("churn")
    config = tmp_path / "mqwatch.yaml"
    config.write_text(f"""agent: {{interval: 0.1s, timeout: 2s}}
checks:
  - kind: kafka
    name: churn
    bootstrap_servers: {bootstrap}
    topics: {{include: ['^{prefix}']}}
    groups: {{include: ['^{prefix}']}}
""")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1})
    agent = AgentProcess(config, free_port())
    watch = None

    def pair(n: int) -> list[str]:
        return [f"{prefix}-{n}", f"{prefix}-{n}.DLT"]

    def delete(n: int) -> None:
        for f in admin.delete_topics(pair(n), operation_timeout=5).values():
            f.result(10)

    try:
        wait_until(lambda: agent.proc.poll() is not None or _answers(agent.url), 20, 0.1, "the agent serving")
        assert agent.proc.poll() is None, f"the agent did not start: {agent.stop()[1][-2000:]}"
        watch = Watcher(agent.url + "/metrics")
        live, n, deleted = [], 0, 0
        end = time.monotonic() + CHURN_SECONDS
        while time.monotonic() < end and agent.proc.poll() is None:
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in pair(n)]).values():
                f.result(10)
            live.append(n)
            n += 1
            # A new dead letter in every live DLQ: every cycle reads every one of them, the one
            # about to be deleted included.
            for m in live:
                producer.produce(f"{prefix}-{m}.DLT", b'{"error": "boom"}')
            producer.flush(10)
            if len(live) > LIVE:
                delete(live.pop(0))
                deleted += 1
            time.sleep(0.05)
        for m in live:
            delete(m)
        # The agent outlives the churn and keeps collecting: a fresh success after it ended.
        churn_ended = time.time()
        wait_until(lambda: agent.proc.poll() is not None or _fresh_success(watch, churn_ended), 10, 0.1,
                   "a successful collection after the churn")
        rc = agent.proc.poll()
        assert rc is None, f"the agent died (exit {rc}) after {deleted} topic pairs were deleted: " \
                           f"{agent.stop()[1][-2000:]}"
        assert deleted >= 10, deleted  # the churn really ran
        assert not watch.failures, watch.failures[:3]
        assert value(watch.latest(), "mqwatch_up", system="kafka", cluster="churn") == 1
        assert _answers(agent.url)
    finally:
        if watch is not None:
            watch.stop()
        agent.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _fresh_success(watch: Watcher, since: float) -> bool:
    last = value(watch.latest(), "mqwatch_last_success_timestamp_seconds", system="kafka", cluster="churn")
    return last is not None and last > since
