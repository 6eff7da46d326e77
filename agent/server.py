"""HTTP endpoints: /metrics, /healthz, /readyz, /status, / and (with --web.enable-lifecycle) POST /-/reload.

Hardened for a port anyone on the network may reach: every connection has a socket
timeout (and a request, once started, must arrive whole within it), at most MAX_HANDLERS
are served at once (the next one gets 503 at once), a bad
or huge Content-Length is answered 400/413 without reading the body, and with a web
config file (agent.webconfig) only TLS is spoken and every endpoint except the
/healthz and /readyz probes needs basic auth.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mqwatch.agent import __version__
from mqwatch.agent.redact import redact
from mqwatch.agent.sockio import kernel_timeouts, recv_into, send_all, set_recv_timeout
from mqwatch.agent.statuspage import render_status_page

log = logging.getLogger("mqwatch.http")

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
SOCKET_TIMEOUT = 10.0  # seconds a connection may stay silent (idle keep-alive included)
MAX_HANDLERS = 32  # connections served at once; a scraper needs one
# A scrape needs the interpreter lock once its request is in (agent.sockio keeps it to that one
# hand-over on its path); while a collection runs Python in another thread, the wait is up to a
# switch interval: Python's default 5 ms would add up to 5 ms to a scrape (benchmark 4). At
# 0.2 ms rather than 0.5 ms, busy gzip scrapes measured p50 0.4 vs 0.7 ms and p95 0.6 vs 1.2 ms
# (same server, rotating windows, load ~5). The collecting thread gives up the lock only when
# another thread asks for it; two threads running Python at once (2 x 2 publishes of 30k
# series) took 3% longer at 0.5 ms and 4% at 0.2 ms than at 5 ms.
SWITCH_INTERVAL = 0.0002
MAX_BODY_BYTES = 64 * 1024  # no endpoint takes a body; a reload POST may carry an empty one
# Probes stay open without credentials (still TLS-only with a web config): they reveal
# "ok"/"ready" and nothing else, and a kubelet probe cannot carry a password without
# putting it in the pod spec.
OPEN_PATHS = ("/healthz", "/readyz")


def status_document(agent) -> dict:
    now = time.time()
    checks = []
    for st in sorted(agent.exporter.states(), key=lambda s: s.key):
        snap = st.snapshot
        checks.append({
            "kind": st.kind,
            "name": st.name,
            "up": st.up,
            "interval_seconds": st.interval,
            "collections": st.completed,
            "last_success": st.last_success,
            "last_success_age_seconds": None if st.last_success is None else round(now - st.last_success, 3),
            "last_duration_seconds": st.last_duration,
            "last_error": redact(st.last_error) if st.last_error else st.last_error,
            "series": snap.series if snap else 0,
            "errors_total": dict(st.errors_total),
        })
    return {"version": __version__, "ready": agent.ready(), "time": now, "checks": checks}


def accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding prefers gzip, q-values honoured (RFC 9110 12.5.3).

    `gzip;q=0` refuses gzip; `*` stands for gzip when gzip is not named; gzip is chosen
    unless identity is explicitly preferred over it.
    """
    if not header:
        return False
    q: dict[str, float] = {}
    for part in header.split(","):
        coding, *params = [p.strip() for p in part.split(";")]
        if not coding:
            continue
        weight = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(1.0, max(0.0, float(value)))
                except ValueError:
                    weight = 0.0  # a malformed weight is no consent
        q[coding.lower()] = weight
    gzip_q = q.get("gzip", q.get("x-gzip", q.get("*", 0.0)))
    return gzip_q > 0 and gzip_q >= q.get("identity", 0.0)


class _DeadlineSocketReader(io.RawIOBase):
    """The socket as the handler reads it, with a deadline for the whole request on top of the
    per-read timeout: a client trickling one header byte every few seconds (slowloris) would
    otherwise hold a handler forever, each read finishing just within the socket timeout."""

    def __init__(self, sock, timeout: float, kernel: bool):
        self.sock, self.timeout, self.deadline, self.kernel = sock, timeout, None, kernel

    def readable(self):
        return True

    def readinto(self, buffer):
        wait = self.timeout
        if self.deadline is not None:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError("request not received within the deadline")
            wait = min(wait, self.timeout)
        set_recv_timeout(self.sock, wait, self.kernel)
        return recv_into(self.sock, buffer, self.kernel)


class _Handler(BaseHTTPRequestHandler):
    agent = None  # set per server class
    auth = None  # agent.webconfig.BasicAuth, or None when no users are configured
    lifecycle = False
    server_version = f"mqwatch/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT  # StreamRequestHandler sets it on the socket before the first read
    # Headers and body leave in one write (agent.sockio), but over TLS and in the base class'
    # error answers they are two; with Nagle's algorithm the second waits for the client's
    # delayed ACK, 40 ms on Linux.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.rfile.close()  # the plain reader: its reference would keep the socket open after close()
        self._kernel = kernel_timeouts(self.connection, self.timeout)
        self._reader = _DeadlineSocketReader(self.connection, self.timeout, self._kernel)
        self.rfile = io.BufferedReader(self._reader, self.rbufsize if self.rbufsize > 0 else io.DEFAULT_BUFFER_SIZE)

    def handle_one_request(self):
        # Waiting for the next request of a kept-alive connection is bounded by the socket
        # timeout; once its first byte is in, the whole request must arrive within one timeout.
        self._reader.deadline = None
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        self._reader.deadline = time.monotonic() + self.timeout
        super().handle_one_request()

    def log_message(self, fmt, *args):  # routed to our logger at debug, not stderr
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http_request client=%s request=%s", self.client_address[0], fmt % args)

    def _send(self, code: int, body: bytes | tuple[bytes, ...], ctype: str, headers: dict | None = None):
        pieces = (body,) if isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(sum(map(len, pieces))))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        # end_headers() would write the headers on their own: they go out with the body instead.
        self._headers_buffer.append(b"\r\n")
        head = b"".join(self._headers_buffer)
        self._headers_buffer = []
        send_all(self.connection, (head, *pieces) if self.command != "HEAD" else (head,), self.timeout, self._kernel)

    def _text(self, code: int, text: str, ctype: str = TEXT, headers: dict | None = None):
        # Every text this server produces passes the redactor, whatever built it.
        self._send(code, redact(text).encode(), ctype, headers)

    def _admit(self) -> str | None:
        """Checks every request before routing. Returns the path, or None when answered."""
        te = self.headers.get("Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length") or []
        if te or len(lengths) > 1:
            self.close_connection = True
            self._text(400, "bad request: only a single Content-Length body is accepted\n")
            return None
        if lengths:
            raw = lengths[0].strip()
            if not raw.isdigit():  # also refuses "-1", "+5", "1e3", " "
                self.close_connection = True
                self._text(400, "bad request: invalid Content-Length\n")
                return None
            length = int(raw)
            if length > MAX_BODY_BYTES:
                self.close_connection = True  # the body is never read: the connection cannot be reused
                self._text(413, f"request body too large (at most {MAX_BODY_BYTES} bytes)\n")
                return None
            if length:
                self.rfile.read(length)  # bounded above and by the socket timeout
        path = self.path.split("?", 1)[0]
        if self.auth is not None and path not in OPEN_PATHS and not self.auth.check(self.headers.get("Authorization")):
            self._text(401, "unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="mqwatch", charset="UTF-8"'})
            return None
        return path

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self._admit()
        if path is None:
            return
        agent = self.agent
        if path == "/metrics":
            gz = accepts_gzip(self.headers.get("Accept-Encoding"))
            body = agent.exporter.body_pieces(want_gzip=gz)
            headers = {"Vary": "Accept-Encoding"}
            if gz:
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, CONTENT_TYPE_LATEST, headers)
        elif path == "/healthz":
            self._send(200, b"ok\n", TEXT)
        elif path == "/readyz":
            ready = agent.ready()
            body = b"ready\n" if ready else b"not ready: a check has not completed yet\n"
            self._send(200 if ready else 503, body, TEXT)
        elif path == "/status":
            self._text(200, json.dumps(status_document(agent), indent=2), "application/json")
        elif path == "/":
            self._text(200, render_status_page(agent), "text/html; charset=utf-8")
        elif path == "/-/reload" and self.lifecycle:
            self._text(405, "use POST or PUT\n", headers={"Allow": "POST, PUT"})
        else:
            self._send(404, b"not found\n", TEXT)

    def do_POST(self):
        path = self._admit()
        if path is None:
            return
        if path == "/-/reload" and self.lifecycle:
            ok, message = self.agent.reload()
            self._text(200 if ok else 400, message + "\n")
        elif path == "/-/reload":
            self._send(404, b"not found: the lifecycle API is off; start mqwatch with --web.enable-lifecycle, "
                            b"or send SIGHUP\n", TEXT)
        else:
            self._send(404, b"not found\n", TEXT)

    do_PUT = do_POST  # Prometheus' lifecycle API takes both


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    tls_files = None  # agent.webconfig.TLSFiles
    socket_timeout = SOCKET_TIMEOUT

    def __init__(self, address, handler, family, max_handlers: int):
        self.address_family = family
        self._slots = threading.BoundedSemaphore(max_handlers)
        super().__init__(address, handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # `[::]:9325` serves IPv4 clients too, as on every other exporter.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            # Full: answer at once rather than queue behind slow clients (a scrape can retry).
            try:
                request.settimeout(1.0)
                if self.tls_files is None:
                    request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\nConnection: close\r\n"
                                    b"\r\ntoo many connections\n\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request, client_address):
        request.settimeout(self.socket_timeout)  # the TLS handshake too, not only the HTTP exchange
        if self.tls_files is not None:
            request = self._handshake(request)
            if request is None:
                return
        self.RequestHandlerClass(request, client_address, self)

    def _handshake(self, sock):
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first and first != b"\x16":  # not a TLS handshake record: someone speaks plain HTTP
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: 48\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                return None
            tls = self.tls_files.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
            return tls
        except (OSError, ssl.SSLError) as e:
            log.debug("tls_handshake_failed client=%s error=%s", sock.getpeername()[0] if _connected(sock) else "?", e)
            return None

    def handle_error(self, request, client_address):
        # A client that went silent (socket timeout) or away is routine on an open port: no
        # traceback on stderr, a debug line at most.
        log.debug("http_connection_error client=%s error=%r", client_address[0], sys.exc_info()[1])

    def shutdown_request(self, request):
        try:
            super().shutdown_request(request)
        except OSError:
            pass


def _connected(sock) -> bool:
    try:
        sock.getpeername()
        return True
    except OSError:
        return False


class HTTPServer:
    def __init__(self, agent, host: str, port: int, web=None, lifecycle: bool = False,
                 socket_timeout: float = SOCKET_TIMEOUT, max_handlers: int = MAX_HANDLERS):
        from mqwatch.agent.webconfig import BasicAuth

        attrs = {"agent": agent, "lifecycle": lifecycle, "timeout": socket_timeout,
                 "auth": BasicAuth(web.users) if web and web.users else None}
        handler = type("Handler", (_Handler,), attrs)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("Server", (_Server,), {"tls_files": web.tls if web else None, "socket_timeout": socket_timeout})
        self.httpd = server_cls((host, port), handler, family, max_handlers)
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `:port` (all IPv4 addresses) or `[v6addr]:port`."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], int(port)
    return host or "0.0.0.0", int(port)
