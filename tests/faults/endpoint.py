"""A misbehaving HTTP endpoint for fault tests. It stands in for a Pulsar broker's /metrics or
admin API where a real broker cannot be made to misbehave on demand (pulsar-lite has no admin
API and always answers /metrics well): a FIXTURE, named so in every test that uses it.

Per path, `modes[path]` is one of:
  ("ok", body)                 the body (bytes), Content-Length set
  ("slow", body, seconds)      waits, then the body
  ("hang",)                    accepts and never answers (until stop())
  ("drip", body, seconds)      sends the body a few bytes at a time over `seconds`
  ("huge", n_bytes)            n_bytes of exposition-looking text, chunked, no Content-Length
  ("gzip_bomb", n_bytes)       n_bytes of zeros gzip-compressed (Content-Encoding: gzip)
  ("redirect", location)       307 to location
  ("status", code, body)       that status code
Requests are logged with their Authorization header in `seen`.
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Endpoint:
    def __init__(self):
        self.modes: dict[str, tuple] = {}
        self.seen: list[tuple[str, str]] = []  # (path, Authorization header)
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "") -> str:
        return f"http://{self.address}{path}"

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        ep = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                ep.seen.append((path, self.headers.get("Authorization", "")))
                mode = ep.modes.get(path, ("status", 404, b'{"reason": "not found"}'))
                try:
                    getattr(self, "_" + mode[0])(*mode[1:])
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status, body, headers=()):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _ok(self, body):
                self._send(200, body)

            def _status(self, code, body):
                self._send(code, body, [("Content-Type", "application/json")])

            def _slow(self, body, seconds):
                if not ep._released.wait(seconds):
                    self._send(200, body)

            def _hang(self):
                ep._released.wait(600)
                self.close_connection = True

            def _drip(self, body, seconds):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = max(1, len(body) // 20)
                for i in range(0, len(body), step):
                    if ep._released.wait(seconds / 20):
                        return
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()

            def _huge(self, n_bytes):
                line = b'pulsar_in_messages_total{topic="t",partition="-1",namespace="public/default"} 1\n'
                block = line * (65536 // len(line))
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                while sent < n_bytes:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    sent += len(block)
                self.wfile.write(b"0\r\n\r\n")

            def _gzip_bomb(self, n_bytes):
                self._send(200, gzip.compress(b"\0" * n_bytes, 9), [("Content-Encoding", "gzip")])

            def _redirect(self, location):
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


def wait_requests(ep: Endpoint, path: str, n: int = 1, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for p, _ in ep.seen if p == path) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} requested fewer than {n} times")
        time.sleep(0.02)
