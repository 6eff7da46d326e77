"""HTTP endpoints: /metrics, /healthz, /readyz, /status, / and (with --web.enable-lifecycle) POST /-/reload.

`mqwatch run` runs this server in a child process (agent.front), so that a scrape never waits
for the collecting process' interpreter lock; what the endpoints answer comes from a backend
(agent.backend), in this process or across the child's socket to the agent.

Hardened for a port anyone on the network may reach: every connection has a socket
timeout (and a request, once started, must arrive whole within it), at most MAX_HANDLERS
are served at once (the next one gets 503 at once), a bad
or huge Content-Length is answered 400/413 without reading the body, and with a web
config file (agent.webconfig) only TLS is spoken and every endpoint except the
/healthz and /readyz probes needs basic auth.
"""

from __future__ import annotations

import io
import socket
import socketserver
import sys
import threading
import time

from mqwatch.agent import __version__
from mqwatch.agent.httpwire import TEXT, BadRequest, read_request, status_line
from mqwatch.agent.sockio import kernel_timeouts, listen_socket, recv_into, send_all, set_recv_timeout

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
SOCKET_TIMEOUT = 10.0  # seconds a connection may stay silent (idle keep-alive included)
MAX_HANDLERS = 32  # connections served at once; a scraper needs one
# A scrape needs the interpreter lock once its request is in (agent.sockio keeps it to that one
# hand-over on its path). In the serving child the other threads are other connections' handlers;
# where the server shares the agent's process (no memfds: agent.front.supported), a collection
# running Python holds it, and the wait is up to a switch interval: Python's default 5 ms would
# add up to 5 ms to a scrape (benchmark 4). At 0.2 ms rather than 0.5 ms, busy gzip scrapes in
# one process measured p50 0.4 vs 0.7 ms and p95 0.6 vs 1.2 ms (rotating windows, load ~5); two
# threads running Python at once (2 x 2 publishes of 30k series) took 4% longer than at 5 ms.
SWITCH_INTERVAL = 0.0002
MAX_BODY_BYTES = 64 * 1024  # no endpoint takes a body; a reload POST may carry an empty one
# Probes stay open without credentials (still TLS-only with a web config): they reveal
# "ok"/"ready" and nothing else, and a kubelet probe cannot carry a password without
# putting it in the pod spec.
OPEN_PATHS = ("/healthz", "/readyz")


def _debug(fmt: str, *args) -> None:
    # logging is imported at the first line logged: the serving child (agent.front) runs without
    # it (1 MB of its memory) unless it logs at debug level.
    import logging

    logging.getLogger("mqwatch.http").debug(fmt, *args)


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


class _Handler(socketserver.StreamRequestHandler):
    backend = None  # agent.backend.AgentBackend, or the serving child's link to it (agent.front); per server class
    auth = None  # agent.webconfig.BasicAuth, or None when no users are configured
    lifecycle = False
    server_header = f"Server: mqwatch/{__version__}\r\n".encode()
    timeout = SOCKET_TIMEOUT  # StreamRequestHandler sets it on the socket before the first read
    # Headers and body leave in one write (agent.sockio), but over TLS they are two; with
    # Nagle's algorithm the second waits for the client's delayed ACK, 40 ms on Linux.
    disable_nagle_algorithm = True
    command = path = ""
    headers = None

    def setup(self):
        super().setup()
        self.rfile.close()  # the plain reader: its reference would keep the socket open after close()
        self._kernel = kernel_timeouts(self.connection, self.timeout)
        self._reader = _DeadlineSocketReader(self.connection, self.timeout, self._kernel)
        self.rfile = io.BufferedReader(self._reader, io.DEFAULT_BUFFER_SIZE)

    def handle(self):
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self):
        # Waiting for the next request of a kept-alive connection is bounded by the socket
        # timeout; once its first byte is in, the whole request must arrive within one timeout.
        self.close_connection = True
        self._reader.deadline = None
        try:
            if not self.rfile.peek(1):
                return
            self._reader.deadline = time.monotonic() + self.timeout
            request = read_request(self.rfile)
        except BadRequest as e:
            self.command = ""
            self._text(e.code, f"bad request: {e}\n")
            return
        except (TimeoutError, OSError):
            return
        if request is None:
            return
        self.command, self.path, self.headers = request.method, request.target, request.headers
        self.close_connection = not request.keep_alive
        route = {"GET": self.do_GET, "HEAD": self.do_GET, "POST": self.do_POST, "PUT": self.do_POST}.get(self.command)
        if route is None:
            self.close_connection = True
            self._text(501, f"method {self.command[:20]!r} is not supported\n")
        else:
            route()
        if self.server.debug_log:
            _debug("http_request client=%s method=%s path=%s", self.client_address[0], self.command[:20], self.path[:200])

    def _send(self, code: int, body: bytes | tuple[bytes, ...], ctype: str, headers: dict | None = None):
        pieces = (body,) if isinstance(body, bytes) else body
        head = [status_line(code), self.server_header,
                time.strftime("Date: %a, %d %b %Y %H:%M:%S GMT\r\n", time.gmtime()).encode(),
                f"Content-Type: {ctype}\r\nContent-Length: {sum(map(len, pieces))}\r\n".encode()]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in (headers or {}).items()]
        if self.close_connection:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        send_all(self.connection, (b"".join(head), *pieces) if self.command != "HEAD" else (b"".join(head),),
                 self.timeout, self._kernel)

    def _text(self, code: int, text: str, ctype: str = TEXT, headers: dict | None = None):
        # The server's own fixed texts; what the agent builds arrives redacted (agent.backend).
        self._send(code, text.encode(), ctype, headers)

    def _answer(self, call: str):
        reply = self.backend.answer(call)
        self._send(reply.code, (reply.body,), reply.content_type)

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

    def do_GET(self):
        path = self._admit()
        if path is None:
            return
        backend = self.backend
        if path == "/metrics":
            gz = accepts_gzip(self.headers.get("Accept-Encoding"))
            body = backend.metrics(gz)
            headers = {"Vary": "Accept-Encoding"}
            if gz:
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, CONTENT_TYPE_LATEST, headers)
        elif path == "/healthz":
            if backend.alive():
                self._send(200, b"ok\n", TEXT)
            else:
                self._send(503, b"the agent has stopped talking to its HTTP server\n", TEXT)
        elif path == "/readyz":
            ready = backend.ready()
            body = b"ready\n" if ready else b"not ready: a check has not completed yet\n"
            self._send(200 if ready else 503, body, TEXT)
        elif path == "/status":
            self._answer("status")
        elif path == "/":
            self._answer("page")
        elif path == "/-/reload" and self.lifecycle:
            self._text(405, "use POST or PUT\n", headers={"Allow": "POST, PUT"})
        else:
            self._send(404, b"not found\n", TEXT)

    def do_POST(self):
        path = self._admit()
        if path is None:
            return
        if path == "/-/reload" and self.lifecycle:
            self._answer("reload")
        elif path == "/-/reload":
            self._send(404, b"not found: the lifecycle API is off; start mqwatch with --web.enable-lifecycle, "
                            b"or send SIGHUP\n", TEXT)
        else:
            self._send(404, b"not found\n", TEXT)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    tls_files = None  # agent.webconfig.TLSFiles
    socket_timeout = SOCKET_TIMEOUT
    debug_log = False  # whether the "mqwatch.http" logger logs at debug level

    def __init__(self, sock: socket.socket, handler, max_handlers: int):
        self.address_family = sock.family
        self._slots = threading.BoundedSemaphore(max_handlers)
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # bound and listening already (sockio.listen_socket): here or in the agent

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
        import ssl  # only with a web config's TLS settings

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
            if self.debug_log:
                _debug("tls_handshake_failed client=%s error=%s", sock.getpeername()[0] if _connected(sock) else "?", e)
            return None

    def handle_error(self, request, client_address):
        # A client that went silent (socket timeout) or away is routine on an open port: no
        # traceback on stderr, a debug line at most.
        if self.debug_log:
            _debug("http_connection_error client=%s error=%r", client_address[0], sys.exc_info()[1])

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
    """`backend` answers what the endpoints ask (agent.backend); `sock` is a listening socket
    (sockio.listen_socket), made here from `host` and `port` when not given."""

    def __init__(self, backend, host: str = "", port: int = 0, web=None, lifecycle: bool = False,
                 socket_timeout: float = SOCKET_TIMEOUT, max_handlers: int = MAX_HANDLERS, sock=None,
                 debug_log: bool | None = None):
        auth = None
        if web and web.users:
            from mqwatch.agent.webconfig import BasicAuth  # bcrypt: only with users to check

            auth = BasicAuth(web.users)
        attrs = {"backend": backend, "lifecycle": lifecycle, "timeout": socket_timeout, "auth": auth}
        handler = type("Handler", (_Handler,), attrs)
        if debug_log is None:  # asked of logging, unless the caller knows (the serving child: its --log-level)
            import logging

            debug_log = logging.getLogger("mqwatch.http").isEnabledFor(logging.DEBUG)
        server_cls = type("Server", (_Server,), {"tls_files": web.tls if web else None, "socket_timeout": socket_timeout,
                                                 "debug_log": debug_log})
        self.httpd = server_cls(sock if sock is not None else listen_socket(host, port), handler, max_handlers)
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
