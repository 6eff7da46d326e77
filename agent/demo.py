"""`mqwatch demo`: embedded brokers, an e-commerce workload on them, and the agent watching it.

Each system contributes a demo part (checks/<kind>/demo.py, function `start_demo()`) that
starts its broker and traffic and returns a DemoPart. The demo writes the config it runs
with to a file, so the user sees a working mqwatch.yaml for the same setup.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Callable

import yaml

from agent.config import load_config
from agent.embedded import BrokerUnavailable
from agent.registry import known_kinds

log = logging.getLogger("mqwatch.demo")

# Order matters only for what is printed first.
DEMO_PARTS = ["checks.kafka.demo", "checks.redis.demo", "checks.pulsar.demo"]


@dataclass
class DemoPart:
    name: str
    checks: list[dict]  # check sections for mqwatch.yaml
    describe: list[str]  # lines telling the user what is going on
    stop: Callable[[], None]
    urls: dict = field(default_factory=dict)


class Workload:
    """A demo part's traffic threads, started and stopped together."""

    def __init__(self, name: str):
        self.name = name
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, *targets: Callable[[], None]) -> None:
        for target in targets:
            t = threading.Thread(target=target, daemon=True, name=f"demo-{self.name}-{target.__name__}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 12.0) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(timeout=timeout)


def start_parts(only: list[str] | None = None) -> list[DemoPart]:
    parts: list[DemoPart] = []
    for module_name in DEMO_PARTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue  # that system has no demo part in this build
        kind = module_name.split(".")[1]
        if (only and kind not in only) or kind not in known_kinds():
            continue
        try:
            parts.append(module.start_demo())
        except BrokerUnavailable as e:
            print(f"[demo] skipping {kind}: {e}", file=sys.stderr)
        except Exception:
            stop_parts(parts)
            raise
    return parts


def stop_parts(parts: list[DemoPart]) -> None:
    for part in reversed(parts):
        try:
            part.stop()
        except Exception as e:
            log.warning("demo_stop_failed part=%s error=%r", part.name, e)


DEMO_ALERTMANAGER = """
route:
  receiver: demo
  group_by: [alertname, cluster]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: demo
"""


def rules_text() -> str | None:
    """The shipped Prometheus rules, from the installed `alerts` package or the checkout."""
    from importlib import resources

    try:
        return resources.files("alerts").joinpath("mqwatch.rules.yml").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def start_prometheus_part(listen: str) -> DemoPart:
    from agent.embedded import start_alertmanager, start_prometheus

    port = listen.rpartition(":")[2]
    alertmanager = start_alertmanager(DEMO_ALERTMANAGER)
    rules = rules_text()
    prom_config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": "mqwatch", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
    }
    if rules:
        prom_config["rule_files"] = ["mqwatch.rules.yml"]
    try:
        prometheus = start_prometheus(yaml.safe_dump(prom_config), {"mqwatch.rules.yml": rules} if rules else None)
    except Exception:
        alertmanager.stop()
        raise

    def stop():
        prometheus.stop()
        alertmanager.stop()

    return DemoPart(
        name="prometheus and alertmanager",
        checks=[],
        describe=["Prometheus scrapes the agent every 5s" + (" and evaluates mqwatch's alert rules" if rules else "")],
        stop=stop,
        urls={"prometheus": prometheus.extra["url"] + "/alerts", "alertmanager": alertmanager.extra["url"]},
    )


def run_demo(args) -> int:
    from agent.cli import serve

    parts = start_parts(getattr(args, "only", None))
    if not parts:
        print("mqwatch demo: no embedded broker could start (pip install '.[demo]', apt-get install redis-server)", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix="mqwatch-demo-")
    config_path = os.path.join(workdir, "mqwatch.yaml")
    doc = {"agent": {"listen": args.listen, "interval": "5s", "timeout": "4s"},
           "checks": [c for p in parts for c in p.checks]}
    with open(config_path, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    stop = threading.Event()
    if getattr(args, "with_prometheus", False):
        try:
            parts.append(start_prometheus_part(args.listen))
        except BrokerUnavailable as e:
            print(f"[demo] not starting Prometheus/Alertmanager: {e}", file=sys.stderr)
    if args.duration:
        threading.Timer(args.duration, stop.set).start()

    def announce(port):
        host = args.listen.rpartition(":")[0] or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        lines = ["", "mqwatch demo is running", f"  status page  http://{host}:{port}/",
                 f"  metrics      http://{host}:{port}/metrics", f"  config used  {config_path}", ""]
        for p in parts:
            lines += [f"  {p.name}:"] + [f"    {d}" for d in p.describe]
            lines += [f"    {k}: {v}" for k, v in p.urls.items()]
        lines += ["", "Press Ctrl-C to stop; every broker the demo started stops with it.", ""]
        print("\n".join(lines), flush=True)

    try:
        return serve(load_config(config_path), args.listen, stop_event=stop, on_ready=announce)
    finally:
        stop.set()
        stop_parts(parts)
        shutil.rmtree(workdir, ignore_errors=True)
        print("mqwatch demo stopped; all embedded brokers are down.", flush=True)
