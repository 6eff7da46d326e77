"""Redis part of `mqwatch demo`: job queues, a delayed queue whose poller dies, a stream with slow acks.

- `jobs:inventory`: orders waiting for inventory deduction; a worker drains it, a bit slower
  than orders arrive; failed deductions go to the dead-letter list `jobs:inventory:dead`.
- `delay:order-timeouts`: every order schedules a time-out check 15 s later; the poller that
  moves due entries to `jobs:order-timeouts` stops after 40 s, so entries go overdue.
- `stream:payments`: `payment-service` acknowledges only some entries (pending grows old),
  `ledger` reads slower than entries arrive (lag grows).
- `stream:payments` also feeds `fraud-check`, which crashes on one payment: it is claimed again
  every 2 s and never acknowledged (a poison message), and `audit`, which starts 20 s late and
  catches up at twice the payment rate (a finite drain ETA, then 0).
- `stream:clickstream` is capped at 200 entries (MAXLEN) while `analytics` reads a quarter of what
  arrives: entries are trimmed before it reads them (lost messages).
- a Sidekiq layout (`queues`, `queue:mailers`, `dead`) with dead jobs carrying their error class.
"""

from __future__ import annotations

import json
import logging
import random
import time

from mqwatch.agent.demo import DemoPart, Workload
from mqwatch.checks.redis.embedded import start_redis

POLLER_LIFETIME_SECONDS = 40
log = logging.getLogger("mqwatch.demo.redis")


def start_broker():
    return start_redis()


def start_workload(broker) -> DemoPart:
    import redis

    r = redis.Redis(host="127.0.0.1", port=broker.port, decode_responses=True)
    r.xgroup_create("stream:payments", "payment-service", id="0", mkstream=True)
    r.xgroup_create("stream:payments", "ledger", id="0")
    r.xgroup_create("stream:payments", "fraud-check", id="0")
    r.xgroup_create("stream:payments", "audit", id="0")
    r.xgroup_create("stream:clickstream", "analytics", id="0", mkstream=True)
    r.sadd("queues", "mailers")
    workload = Workload("redis")
    stop = workload.stopping
    rng = random.Random(7)
    started = time.time()

    def shop():
        n = 0
        while not stop.wait(0.25):
            n += 1
            order = json.dumps({"order_id": n, "sku": f"SKU-{n % 17}", "qty": 1 + n % 3})
            pipe = r.pipeline(transaction=False)
            pipe.lpush("jobs:inventory", order)
            pipe.zadd("delay:order-timeouts", {json.dumps({"order_id": n, "action": "cancel-if-unpaid"}): time.time() + 15})
            pipe.xadd("stream:payments", {"order_id": n, "amount_cents": 1000 + n})
            if n % 4 == 0:
                pipe.lpush("queue:mailers", json.dumps({"class": "OrderMailer", "queue": "mailers", "jid": f"jid{n}",
                                                        "args": [n], "enqueued_at": time.time()}))
            if n % 9 == 0:
                err = rng.choice(["Net::SMTPAuthenticationError", "Net::ReadTimeout"])
                job = {"class": "OrderMailer", "queue": "mailers", "jid": f"dead{n}", "args": [n], "error_class": err,
                       "error_message": "mail server said no", "failed_at": time.time(), "retry_count": 25}
                pipe.zadd("dead", {json.dumps(job): time.time()})
            pipe.execute()

    def inventory_worker():
        n = 0
        while not stop.is_set():
            item = r.brpoplpush("jobs:inventory", "jobs:inventory:processing", timeout=1)
            if item is None:
                continue
            n += 1
            stop.wait(0.3)
            if n % 7 == 0:
                failed = json.loads(item)
                failed["error"] = rng.choice(["OutOfStock", "WarehouseUnavailable"])
                r.lpush("jobs:inventory:dead", json.dumps(failed))
            r.lrem("jobs:inventory:processing", 1, item)

    def timeout_poller():
        while not stop.wait(1.0) and time.time() - started < POLLER_LIFETIME_SECONDS:
            for member in r.zrangebyscore("delay:order-timeouts", "-inf", time.time(), start=0, num=100):
                if r.zrem("delay:order-timeouts", member):
                    r.lpush("jobs:order-timeouts", member)
        log.info("demo_poller_stopped queue=delay:order-timeouts")

    def payment_service():
        n = 0
        while not stop.is_set():
            got = r.xreadgroup("payment-service", "pay-1", {"stream:payments": ">"}, count=5, block=1000)
            for _, entries in got or ():
                for entry_id, _ in entries:
                    n += 1
                    if n % 3:  # a third of the payments hang waiting for the bank, never acknowledged
                        r.xack("stream:payments", "payment-service", entry_id)

    def ledger():
        while not stop.wait(2.0):
            got = r.xreadgroup("ledger", "ledger-1", {"stream:payments": ">"}, count=3)
            for _, entries in got or ():
                r.xack("stream:payments", "ledger", *[e for e, _ in entries])

    def fraud_check():
        poison, crashes = None, 0
        while not stop.wait(2.0):
            got = r.xreadgroup("fraud-check", "fraud-1", {"stream:payments": ">"}, count=50)
            for _, entries in got or ():
                ids = [e for e, _ in entries]
                if poison is None and ids:
                    poison = ids.pop(0)  # the checker crashes on this one, every time
                if ids:
                    r.xack("stream:payments", "fraud-check", *ids)
            if poison is not None:  # a restarted worker claims it and crashes again
                crashes += 1
                r.xclaim("stream:payments", "fraud-check", f"fraud-{crashes % 3}", min_idle_time=0, message_ids=[poison])

    def audit():
        if stop.wait(20.0):
            return
        while not stop.wait(0.5):
            got = r.xreadgroup("audit", "audit-1", {"stream:payments": ">"}, count=4)
            for _, entries in got or ():
                r.xack("stream:payments", "audit", *[e for e, _ in entries])

    def clickstream():
        n = 0
        while not stop.wait(0.125):
            n += 1
            r.xadd("stream:clickstream", {"page": f"/product/{n % 40}"}, maxlen=200, approximate=False)

    def analytics():
        while not stop.wait(1.0):
            got = r.xreadgroup("analytics", "analytics-1", {"stream:clickstream": ">"}, count=2)
            for _, entries in got or ():
                r.xack("stream:clickstream", "analytics", *[e for e, _ in entries])

    workload.start(shop, inventory_worker, timeout_poller, payment_service, ledger, fraud_check, audit,
                   clickstream, analytics)

    return DemoPart(
        name=f"redis (redis-server at {broker.address})",
        checks=[{"kind": "redis", "name": "jobs", "url": f"redis://127.0.0.1:{broker.port}/0",
                 "keys": ["jobs:*", "delay:*", "stream:*"], "dlq_keys": ["*:dead"],
                 "canary": {"enabled": True}}],
        describe=[
            "4 orders/s into `jobs:inventory`, `delay:order-timeouts` and `stream:payments`; failures to `jobs:inventory:dead`",
            f"the order-timeout poller stops after {POLLER_LIFETIME_SECONDS}s, so `delay:order-timeouts` goes overdue",
            "`payment-service` leaves a third of payments unacknowledged; `ledger` falls behind; Sidekiq jobs die into `dead`",
            "`fraud-check` crashes on one payment again and again (poison message); `audit` catches up late",
            "`stream:clickstream` is trimmed at 200 entries before `analytics` reads them (lost messages)",
        ],
        stop=workload.stop,
    )
