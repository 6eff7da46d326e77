"""`mqwatch demo`: embedded brokers, an e-commerce workload on them, and the agent watching it.

Each system contributes a demo part through the `mqwatch.demo` entry points (named by
its check kind, like `mqwatch.checks`), exactly as a third-party plugin would: the entry
point is a module (checks/<kind>/demo.py) with

    start_broker() -> agent.embedded.Broker        its embedded broker on a free loopback port
    start_workload(broker) -> DemoPart              traffic on it, and the check sections to watch it

Prometheus and Alertmanager run beside them with the shipped alert rules (agent/demo_alerting.py)
and route to the demo's own webhook receiver. The console shows one banner, then only changes
of state; client libraries' logs go to a log file. The demo writes the config it runs with
to a file, so the user sees a working mqwatch.yaml for the same setup.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from collections.abc import Callable

import yaml

from mqwatch.agent.demo_alerting import MAX_FOR, Alerting, start_alerting
from mqwatch.agent.embedded import BrokerUnavailable
from mqwatch.agent.registry import ENTRY_POINT_GROUP, kind_entry_points, load_entry_point

log = logging.getLogger("mqwatch.demo")

DEMO_ENTRY_POINT_GROUP = "mqwatch.demo"


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
    """Every installed demo part whose check kind is installed too (or those in `only`);
    a part whose broker cannot start here is skipped with a note on stderr."""
    checks = kind_entry_points(ENTRY_POINT_GROUP)
    parts: list[DemoPart] = []
    for kind, ep in sorted(kind_entry_points(DEMO_ENTRY_POINT_GROUP).items()):
        if (only and kind not in only) or kind not in checks:
            continue
        module = load_entry_point(ep)
        if module is None:
            continue
        try:
            parts.append(_start_part(module))
        except BrokerUnavailable as e:
            print(f"[demo] skipping {kind}: {e}", file=sys.stderr)
        except Exception:
            stop_parts(parts)
            raise
    return parts


def _start_part(module) -> DemoPart:
    broker = module.start_broker()
    try:
        part = module.start_workload(broker)
    except Exception:
        broker.stop()
        raise
    stop_workload = part.stop

    def stop():
        try:
            stop_workload()
        finally:
            broker.stop()

    part.stop = stop
    return part


def stop_parts(parts: list[DemoPart]) -> None:
    for part in reversed(parts):
        try:
            part.stop()
        except Exception as e:
            log.warning("demo_stop_failed part=%s error=%r", part.name, e)


class Console:
    """What the demo prints after its banner: one timestamped line per change of state."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def say(self, what: str, text: str) -> None:
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')}  {what:<8}  {text}", file=self.stream, flush=True)


def watch_checks(status_url: str, say, stop: threading.Event, every: float = 2.0) -> None:
    """Say when a check goes down (with its error) and when it is back, from the agent's /status."""
    down: dict[str, bool] = {}
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(status_url, timeout=5) as r:
                checks = json.loads(r.read(4 << 20))["checks"]
        except (OSError, ValueError, KeyError) as e:
            log.warning("demo_status_unreadable url=%s error=%r", status_url, e)
            continue
        for c in checks:
            key = f"{c['kind']}/{c['name']}"
            if not c.get("collections"):
                continue
            was = down.get(key, False)
            down[key] = not c["up"]
            if down[key] and not was:
                say("DOWN", f"check {key}: {c.get('last_error') or 'collection failed'}")
            elif was and not down[key]:
                say("UP", f"check {key} collects again")


@dataclass
class Session:
    """A running demo: brokers, workloads, Prometheus and Alertmanager, the agent's config.
    The command line serves the agent on it (agent/cli.py); this module never starts the
    agent itself."""

    args: object
    parts: list[DemoPart]
    workdir: str
    config_path: str
    log_path: str
    console: Console
    alerting: Alerting | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)

    def announce(self, port: int) -> None:
        """The one banner; from here on only changes of state are printed."""
        host = self.args.listen.rpartition(":")[0] or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
        urls = {"status page": f"http://{host}:{port}/", "metrics": f"http://{host}:{port}/metrics"}
        urls.update(self.alerting.urls if self.alerting else {})
        urls.update({"config used": self.config_path, "log file": self.log_path})
        width = max(map(len, urls))
        lines = ["", "mqwatch demo is running", *(f"  {k:<{width}}  {v}" for k, v in urls.items()), "",
                 "What the workload does:"]
        for p in self.parts:
            lines += [f"  {p.name}:"] + [f"    {d}" for d in p.describe] + [f"    {k}: {v}" for k, v in p.urls.items()]
        lines.append("")
        if self.alerting:
            lines.append("Prometheus evaluates mqwatch's alert rules " + (
                f"(`for:` cut to {MAX_FOR} for the demo): expect the first alerts within two minutes."
                if self.alerting.rules else "- none found in this install, so no alert will fire."))
        else:
            lines.append("Without Prometheus and Alertmanager (--no-prometheus): no alert will fire.")
        lines += ["Below: alerts firing and resolving, checks going down and up. Client and agent logs go to the log file.",
                  "Press Ctrl-C to stop; every broker the demo started stops with it.", ""]
        print("\n".join(lines), flush=True)
        threading.Thread(target=watch_checks, args=(f"http://{host}:{port}/status", self.console.say, self.stop_event),
                         daemon=True, name="demo-watch-checks").start()

    def close(self) -> None:
        self.stop_event.set()
        if self.alerting:
            self.alerting.stop()
        stop_parts(self.parts)
        shutil.rmtree(self.workdir, ignore_errors=True)
        print(f"mqwatch demo stopped; all embedded brokers are down. Its log is kept in {self.log_path}", flush=True)


def default_log_path() -> str:
    return os.path.join(tempfile.mkdtemp(prefix="mqwatch-demo-log-"), "demo.log")


def start(args, log_path: str) -> Session | None:
    """Start every demo part, Prometheus and Alertmanager (unless --no-prometheus), and
    write the agent's config; None (with a message) when no broker could start."""
    parts = start_parts(getattr(args, "only", None))
    if not parts:
        print("mqwatch demo: no embedded broker could start (pip install '.[demo]', apt-get install redis-server)",
              file=sys.stderr)
        return None
    console = Console()
    alerting = None
    if not args.no_prometheus:
        host, _, port = args.listen.rpartition(":")
        scrape = f"{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}"
        try:
            alerting = start_alerting(scrape, console.say)
        except BrokerUnavailable as e:
            print(f"[demo] running without Prometheus and Alertmanager: {e}", file=sys.stderr)
        except Exception:
            stop_parts(parts)
            raise
    workdir = tempfile.mkdtemp(prefix="mqwatch-demo-")
    config_path = os.path.join(workdir, "mqwatch.yaml")
    agent = {"listen": args.listen, "interval": "5s", "timeout": "4s"}
    if alerting:
        agent["alertmanager_url"] = alerting.alertmanager.extra["url"]
    with open(config_path, "w") as fh:
        yaml.safe_dump({"agent": agent, "checks": [c for p in parts for c in p.checks]}, fh, sort_keys=False)
    session = Session(args, parts, workdir, config_path, log_path, console, alerting)
    if args.duration:
        threading.Timer(args.duration, session.stop_event.set).start()
    return session
