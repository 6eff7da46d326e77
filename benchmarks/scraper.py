"""One scraper of the serving benchmark: `python -m benchmarks.scraper PORT START_AT DURATION GZIP`.

Waits until START_AT (unix time) so all scrapers start together, then GETs /metrics over
one keep-alive connection for DURATION seconds, reading every body completely. Prints one
JSON line: each scrape's latency (request sent to last byte read) and the bytes received.
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def main(port: int, start_at: float, duration: float, want_gzip: bool) -> None:
    headers = {"Accept-Encoding": "gzip"} if want_gzip else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    time.sleep(max(0.0, start_at - time.time()))
    latencies, size, status = [], 0, set()
    end = time.monotonic() + duration
    while time.monotonic() < end:
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        latencies.append(time.perf_counter() - t0)
        size = len(body)
        status.add(resp.status)
        if want_gzip and resp.getheader("Content-Encoding") != "gzip":
            raise SystemExit("asked for gzip, got an uncompressed body")
    print(json.dumps({"latencies": latencies, "bytes": size, "status": sorted(status)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "gzip")
