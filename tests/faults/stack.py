"""A running agent (`mqwatch run`, a real process) watching real brokers at a short interval,
and a watcher that scrapes its /metrics all the time, so every fault test can assert what an
operator would see: which checks are up and why not, freshness, scrape latency, counters."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

INTERVAL = 1.0
TIMEOUT = 1.5


@dataclass
class Scrape:
    at: float  # time.time() when it was answered
    latency: float
    samples: dict  # (name, frozenset(labels)) -> value
    counters: set = field(default_factory=set)  # sample names of counter families


def parse(text: str) -> Scrape:
    samples, counters = {}, set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
            if family.type == "counter" and s.name.endswith("_total"):
                counters.add(s.name)
    return Scrape(0.0, 0.0, samples, counters)


class Watcher:
    """Scrapes /metrics every `period` seconds; keeps every scrape and every failure."""

    def __init__(self, url: str, period: float = 0.1):
        self.url, self.period = url, period
        self.scrapes: list[Scrape] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    text = r.read().decode()
                scrape = parse(text)
                scrape.at, scrape.latency = time.time(), time.monotonic() - t0
                self.scrapes.append(scrape)
            except Exception as e:  # a scrape that fails is a finding, kept for the assertions
                self.failures.append(f"{type(e).__name__}: {e}")
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def since(self, t: float) -> list[Scrape]:
        return [s for s in self.scrapes if s.at >= t]

    def latest(self) -> Scrape:
        n = len(self.scrapes)
        deadline = time.monotonic() + 5
        while len(self.scrapes) == n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.scrapes[-1]


def value(scrape: Scrape, name: str, **labels):
    want = set(labels.items())
    for (n, lbl), v in scrape.samples.items():
        if n == name and want <= lbl:
            return v
    return None


def series_of(scrape: Scrape, **labels) -> list:
    want = set(labels.items())
    return [(n, dict(lbl)) for (n, lbl) in scrape.samples if want <= lbl]


def counters_never_went_down(scrapes: list[Scrape]) -> list[str]:
    """Every counter series, across every scrape it appears in (gaps included), never decreases."""
    last: dict = {}
    problems = []
    for s in scrapes:
        for key, v in s.samples.items():
            if key[0] not in s.counters:
                continue
            if key in last and v < last[key]:
                problems.append(f"{key[0]}{dict(key[1])}: {last[key]} -> {v}")
            last[key] = v
    return problems


class AgentProcess:
    def __init__(self, config_path, port: int):
        self.config_path, self.port = config_path, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqwatch.agent", "run", "-c", str(config_path), "--listen", f"127.0.0.1:{port}",
             "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10) -> tuple[int, str, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err, time.monotonic() - t0
