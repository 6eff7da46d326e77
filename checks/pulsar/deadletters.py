"""Which topics are dead-letter or retry topics, and whose.

Pulsar clients name them `<topic>-<subscription>-DLQ` / `-RETRY` (Java client since 2.8,
C++/Python clients), and older clients `<subscription>-DLQ` / `-RETRY` in the topic's
namespace. The source topic and subscription are recovered from the topics and
subscriptions seen in the same namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from mqwatch.checks.pulsar.model import TopicState, namespace_and_local

DLQ, RETRY = "dlq", "retry"
_SUFFIXES = (("-DLQ", DLQ), ("-RETRY", RETRY))


@dataclass(frozen=True)
class DeadLetterTopic:
    kind: str  # dlq | retry
    source: str  # full name of the original topic ("" when it cannot be told)
    consumer: str  # the subscription whose failures land here ("" when unknown)


def classify(topics: dict[str, TopicState]) -> dict[str, DeadLetterTopic]:
    by_namespace: dict[str, dict[str, TopicState]] = {}
    for name, t in topics.items():
        ns, local = namespace_and_local(name)
        by_namespace.setdefault(ns, {})[local] = t
    found = {}
    for name in topics:
        ns, local = namespace_and_local(name)
        for suffix, kind in _SUFFIXES:
            if local.endswith(suffix) and len(local) > len(suffix):
                found[name] = _resolve(kind, ns, local[: -len(suffix)], by_namespace[ns])
                break
    return found


def _is_letter_topic(local: str) -> bool:
    return any(local.endswith(s) for s, _ in _SUFFIXES)


def _resolve(kind: str, ns: str, stem: str, siblings: dict[str, TopicState]) -> DeadLetterTopic:
    # `<topic>-<subscription>`: the longest sibling topic name that prefixes the stem,
    # preferring one that really has that subscription.
    best = None
    for local, t in siblings.items():
        if _is_letter_topic(local) or not stem.startswith(local + "-"):
            continue
        sub = stem[len(local) + 1:]
        rank = (sub in t.subscription_names(), len(local))
        if best is None or rank > best[0]:
            best = (rank, local, sub)
    if best is not None:
        return DeadLetterTopic(kind, f"{ns}/{best[1]}", best[2])
    # Older naming: `<subscription>-DLQ`; the source is known when one topic has that subscription.
    owners = [local for local, t in siblings.items() if not _is_letter_topic(local) and stem in t.subscription_names()]
    return DeadLetterTopic(kind, f"{ns}/{owners[0]}" if len(owners) == 1 else "", stem)


def shard_topics(names, owns) -> set[str]:
    """The topics a shard reads: those it owns, plus the siblings that tell its own dead-letter
    and retry topics' source (`<topic>-<subscription>-DLQ` needs `<topic>`'s subscriptions; the
    older `<subscription>-DLQ` needs every topic of its namespace), so that a DLQ is labelled
    the same on its shard as by one unsharded agent."""
    names = set(names)
    wanted = {n for n in names if owns(n)}
    by_namespace: dict[str, list[str]] = {}
    for n in names:
        ns, local = namespace_and_local(n)
        by_namespace.setdefault(ns, []).append(local)
    for n in [n for n in wanted if _is_letter_topic(namespace_and_local(n)[1])]:
        ns, local = namespace_and_local(n)
        stem = next(local[: -len(s)] for s, _ in _SUFFIXES if local.endswith(s))
        siblings = [x for x in by_namespace[ns] if not _is_letter_topic(x)]
        prefixes = [x for x in siblings if stem.startswith(x + "-")]
        wanted.update(f"{ns}/{x}" for x in (prefixes or siblings))
    return wanted

