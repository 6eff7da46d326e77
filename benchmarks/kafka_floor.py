"""The floor: a plain confluent-kafka script that computes consumer lag and nothing else.

It does only what the answer needs: one metadata call, list groups, every group's
committed offsets (concurrent requests), one list_offsets (latest) for all partitions,
then sums lag per group and topic. Run as a fresh process; prints one JSON line.
Deliberately imports nothing from mqwatch.
"""

import json
import sys
import time

T_START = time.perf_counter()

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, OffsetSpec  # noqa: E402


def main(bootstrap: str) -> None:
    t0 = time.perf_counter()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=60)
    partitions = [TopicPartition(t, p) for t, tm in md.topics.items() if not t.startswith("__") for p in tm.partitions]
    groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=60).result().valid]
    committed_f = {g: admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=60)[g] for g in groups}
    end_f = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=60)
    end = {(tp.topic, tp.partition): f.result().offset for tp, f in end_f.items()}
    lag: dict = {}
    for g, f in committed_f.items():
        for tp in f.result().topic_partitions:
            if tp.offset >= 0 and (tp.topic, tp.partition) in end:
                key = (g, tp.topic)
                lag[key] = lag.get(key, 0) + max(0, end[(tp.topic, tp.partition)] - tp.offset)
    collect = time.perf_counter() - t0
    print(json.dumps({
        "collect_seconds": collect, "process_seconds": time.perf_counter() - T_START,
        "partitions": len(partitions), "groups": len(groups), "lag_series": len(lag), "total_lag": sum(lag.values()),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
