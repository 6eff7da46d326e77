"""The HTTP server's sockets: the listening one, and reads and writes with as few interpreter-lock hand-overs as possible.

Every socket call gives up the interpreter lock, and while a collection runs in another thread
taking it back costs up to a switch interval plus whatever C call that thread is in. A socket
with a Python timeout makes each call two (a poll(), then the recv/send), and a response
written as headers then body is two more. A plain TCP connection therefore runs in blocking
mode with the timeouts kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO), and a response leaves in
one sendmsg() of headers and body pieces: a scrape takes the lock back twice (request read,
response queued) instead of six times or more (benchmark 4).

TLS connections keep Python's timeouts: OpenSSL reports a kernel timeout as "want read/write"
and ssl.SSLSocket has no sendmsg().
"""

from __future__ import annotations

import socket
import struct
import sys
import time

# Linux' limit of buffers per sendmsg()/writev() (IOV_MAX); a 100k-series body is ~55 pieces.
MAX_BUFFERS = 1024
# Connections the kernel queues while every handler is busy or the serving child restarts.
LISTEN_BACKLOG = 64


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening. An IPv6 wildcard (`[::]:9325`) serves IPv4
    clients too, as on every other exporter. OSError when the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may find old connections in TIME_WAIT
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `:port` (all IPv4 addresses) or `[v6addr]:port`."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], int(port)
    return host or "0.0.0.0", int(port)


def kernel_timeouts(sock, timeout: float) -> bool:
    """Put a plain TCP socket in blocking mode, reads and writes bounded by `timeout` in the kernel
    (set_recv_timeout and send_all change it per call). False for a TLS socket, which keeps its
    Python timeout."""
    ssl = sys.modules.get("ssl")  # not imported where no TLS is served (the serving child): no SSLSocket either
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        return False
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(timeout))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(timeout))
    return True


def timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO/SO_SNDTIMEO."""
    # A zero timeval means "wait forever" to the kernel: never pass less than 1 ms.
    seconds = max(seconds, 0.001)
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def set_recv_timeout(sock, seconds: float, kernel: bool) -> None:
    if kernel:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(seconds))
    else:
        sock.settimeout(seconds)


def recv_into(sock, buffer, kernel: bool) -> int:
    try:
        return sock.recv_into(buffer)
    except BlockingIOError:  # SO_RCVTIMEO expired on a blocking socket
        if kernel:
            raise TimeoutError("timed out") from None
        raise


def send_all(sock, buffers, timeout: float, kernel: bool) -> None:
    """Write the buffers in order, all within `timeout` seconds (a client reading slowly cannot
    hold the connection longer)."""
    if not kernel:
        sock.settimeout(timeout)
        for b in buffers:
            sock.sendall(b)
        return
    deadline = time.monotonic() + timeout
    views = [memoryview(b) for b in buffers if b]
    while views:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("response not sent within the timeout")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(left))
        try:
            sent = sock.sendmsg(views[:MAX_BUFFERS])  # blocks until all is queued, or the timeout
        except BlockingIOError:
            raise TimeoutError("response not sent within the timeout") from None
        drop_written(views, sent)


def drop_written(views: list, written: int) -> None:
    """Take the first `written` bytes off a list of memoryviews, after a sendmsg()/writev() that
    wrote only part of them."""
    while written:
        if written >= len(views[0]):
            written -= len(views.pop(0))
        else:
            views[0], written = views[0][written:], 0
