"""The HTTP server in a child process of its own, so that scrapes never wait for the agent.

In one process, a scrape arriving while a collection runs Python waits for the interpreter
lock: a switch interval, plus whatever long C call the collecting thread is in (building or
freeing a 100k-series snapshot, a gc pass). Busy gzip scrapes measured p99 3.0x their idle
p99 that way (benchmark 4). Here the agent renders /metrics as before and hands each new body
to a small child that owns the listening socket and runs agent.server; the child answers
/metrics, /healthz and /readyz from what it was last given, without ever waiting for the
agent, and asks the agent over a socket for /status, / and /-/reload.

The link is a Unix SOCK_SEQPACKET pair: one small JSON message each way per event. Bodies
never travel through it: each goes in a memfd whose descriptor rides along (SCM_RIGHTS), which
the child maps read-only, so a 13 MB body costs one copy into the memfd, made with the lock
released, and is sent by the kernel straight from the mapping.

- Agent -> child: {"op": "metrics", "plain": n, "gzip": m, "ready": bool} + memfd (the plain
  body then the gzipped one), after every render and after a reload; {"op": "reply", "id",
  "code", "type", "length"} + memfd, the answer to a call; {"op": "alive"} every HEARTBEAT s.
- Child -> agent: {"op": "hello"} once serving; {"op": "call", "id", "call": "status" | "page"
  | "reload"}.

The listening socket is the agent's and is passed down, so the port never closes: if the child
dies, the agent starts another on the same socket (connections wait in the backlog meanwhile)
and gives it the latest body. If the agent dies, the child sees its end of the link close
and exits.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import sys
import threading
import time

from mqwatch.agent.httpwire import TEXT, Reply
from mqwatch.agent.sockio import MAX_BUFFERS, drop_written, timeval

_deferred_logging: tuple | None = None  # in the serving child: setup_logging's arguments, until a line is logged


def _log():
    # logging is imported, and in the serving child set up, at the first line logged: it is 1 MB
    # of the child's ~6, and the child logs only when its link to the agent fails (or at debug
    # level, when main sets it up at once).
    global _deferred_logging
    import logging

    if _deferred_logging is not None:
        from mqwatch.agent.logs import setup_logging

        setup_logging(*_deferred_logging)
        _deferred_logging = None
    return logging.getLogger("mqwatch.front")


BODY_NAME = "mqwatch-body"  # the memfds' name: /proc/PID/maps shows their mappings as /memfd:mqwatch-body
MAX_MESSAGE = 64 * 1024  # link messages are small JSON; bodies go in memfds
START_TIMEOUT = 30.0  # s for a child to start serving (a loaded machine, a cold disk)
CALL_TIMEOUT = 30.0  # s the child waits for the agent's answer to /status, / or /-/reload
SEND_TIMEOUT = 5.0  # s a message to the child may take to be queued; a child that long stuck is replaced
RESTART_DELAY = 1.0  # s between a child's death and the next one, so a crashing child cannot spin
# The agent tells the child it is alive every HEARTBEAT s; silent for SILENT_AFTER s, the child
# answers /healthz 503, so a liveness probe restarts an agent that hangs (as it would have when
# /healthz was served in the agent's own process), while /metrics keeps its last body.
HEARTBEAT = 5.0
SILENT_AFTER = 60.0


def supported() -> bool:
    """memfds and descriptor passing are Linux'; elsewhere the agent serves in its own process."""
    return hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET")


def _send(link: socket.socket, message: dict, body_pieces=None) -> None:
    """One message, with a memfd holding the body pieces when given."""
    data = json.dumps(message).encode()
    if body_pieces is None:
        link.sendall(data)
        return
    fd = os.memfd_create(BODY_NAME, os.MFD_CLOEXEC)
    try:
        _write_all(fd, body_pieces)
        socket.send_fds(link, [data], [fd])
    finally:
        os.close(fd)


def _write_all(fd: int, pieces) -> None:
    views = [memoryview(p) for p in pieces if len(p)]
    while views:
        drop_written(views, os.writev(fd, views[:MAX_BUFFERS]))  # the copy runs without the interpreter lock


def _receive(link: socket.socket) -> tuple[dict | None, int | None]:
    """The next message and its descriptor, or (None, None) when the other end has closed."""
    data, fds, _flags, _addr = socket.recv_fds(link, MAX_MESSAGE, 1)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, None
    return json.loads(data), (fds[0] if fds else None)


def _next_call(link: socket.socket) -> dict | None:
    """In the agent: the child's next message (it sends no descriptors), or None once the link
    is closed, broken or timed out."""
    try:
        message, fd = _receive(link)
    except (OSError, ValueError):
        return None
    if fd is not None:
        os.close(fd)
    return message


def _mapped(fd: int | None, length: int) -> memoryview:
    """The memfd's first `length` bytes, mapped read-only; the descriptor is closed. The mapping
    lives as long as a view of it does (an answer still being sent keeps its body)."""
    if fd is None:
        return memoryview(b"")
    try:
        if length <= 0:
            return memoryview(b"")
        # Not MAP_POPULATE: mmap() would fault the pages in holding the interpreter lock (1.6 ms
        # for 13 MB, while scrapes wait); the kernel faults them in during the scrapes' sendmsg
        # instead, lock released. Until then they are not in the child's RSS, but they are in
        # the container's memory: benchmark 5 counts the whole mapping.
        return memoryview(mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ))
    finally:
        os.close(fd)


def _child_command() -> list[str]:
    """The interpreter without `site` (2.2 MB of the child's memory: the .pth hooks of every
    installed package) and isolated (no current directory on its path), given the mqwatch
    package and the agent's import path by hand; the path is only searched for bcrypt and
    PyYAML, when a web config asks for basic auth."""
    import mqwatch.agent

    package = os.path.dirname(os.path.dirname(os.path.abspath(mqwatch.agent.__file__)))
    path = [p for p in sys.path if p and os.path.isdir(p)]
    return [sys.executable, "-I", "-S", "-c", _BOOT, package, json.dumps(path)]


# The child's first lines: `mqwatch` is a namespace package whose parts an installer may map
# anywhere (pyproject's package-dir), so it is made by hand from where the agent found it.
_BOOT = ("import json, sys, types; m = types.ModuleType('mqwatch'); m.__path__ = [sys.argv[1]]; "
         "sys.modules['mqwatch'] = m; sys.path += [p for p in json.loads(sys.argv[2]) if p not in sys.path]; "
         "from mqwatch.agent.front import main; sys.exit(main(sys.argv[3:]))")


# ---- in the agent ------------------------------------------------------------------------


class Front:
    """The serving child, seen from the agent: starts it on `sock`, gives it every new body,
    answers its calls with `backend` (agent.backend.AgentBackend), starts it again if it dies."""

    def __init__(self, backend, sock: socket.socket, web=None, lifecycle: bool = False, log_level: str = "info",
                 log_file: str | None = None):
        self.backend, self.sock = backend, sock
        self.web, self.lifecycle, self.log_level, self.log_file = web, lifecycle, log_level, log_file
        self._push_lock = threading.Lock()
        self._link: socket.socket | None = None
        self._child = None  # subprocess.Popen of the serving child
        self._stopping = False
        self.restarts = 0

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child else None

    def start(self) -> None:
        self._spawn()
        self.backend.exporter.on_render(self.push)
        threading.Thread(target=self._serve_link, name="front-link", daemon=True).start()
        threading.Thread(target=self._beat, name="front-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._stopping:
            time.sleep(HEARTBEAT)
            link = self._link
            if link is not None:
                try:
                    _send(link, {"op": "alive"})
                except OSError:
                    pass  # a dead or stuck child is _serve_link's and push's to handle

    def stop(self) -> None:
        self._stopping = True
        link, child = self._link, self._child
        if link is not None:
            # shutdown() before close(): the link thread is blocked reading this socket, and
            # until that read returns, close() alone would neither wake it nor let the child
            # see the end of its link (and the child exits when it does).
            try:
                link.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            link.close()
        if child is not None:
            import subprocess

            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.sock.close()

    def push(self) -> None:
        """Give the child the latest body and readiness (called after every render)."""
        with self._push_lock:
            link = self._link
            if link is None:
                return
            plain = self.backend.metrics(False)
            gz = self.backend.metrics(True)
            message = {"op": "metrics", "plain": sum(map(len, plain)), "gzip": sum(map(len, gz)),
                       "ready": self.backend.ready()}
            try:
                _send(link, message, (*plain, *gz))
            except (TimeoutError, BlockingIOError):  # SO_SNDTIMEO expired
                # A child that takes no message for SEND_TIMEOUT s serves stale data: replace it
                # (_serve_link starts another, which gets the latest body).
                _log().error("serving_child_stuck action=restart timeout_seconds=%g", SEND_TIMEOUT)
                self._child.kill()
            except OSError as e:  # the child has died: _serve_link starts another, which gets the latest
                _log().debug("front_push_failed error=%s", e)

    def _spawn(self) -> None:
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [*_child_command(), "--listen-fd", str(self.sock.fileno()), "--link-fd", str(theirs.fileno()),
                "--log-level", self.log_level, "--silent-after", str(SILENT_AFTER)]
        if self.web is not None:
            argv += ["--web-config", self.web.file]
        if self.lifecycle:
            argv.append("--lifecycle")
        if self.log_file:
            argv += ["--log-file", self.log_file]
        try:
            child = subprocess.Popen(argv, pass_fds=(self.sock.fileno(), theirs.fileno()), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT)
        hello = _next_call(ours)
        if not hello or hello.get("op") != "hello":
            ours.close()
            child.kill()
            child.wait()
            raise RuntimeError(f"the serving child did not start (exit code {child.poll()})")
        ours.settimeout(None)
        # Sends to the child are bounded by the kernel (reads stay blocking): a collection
        # handing over its body never hangs on a child that stopped reading.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(SEND_TIMEOUT))
        with self._push_lock:
            self._link, self._child = ours, child
        self.push()

    def _serve_link(self) -> None:
        while not self._stopping:
            link = self._link
            message = _next_call(link)
            if message is None:
                if self._stopping:
                    return
                self._respawn()
                continue
            if message.get("op") == "call":
                threading.Thread(target=self._answer, args=(link, message), name="front-call", daemon=True).start()

    def _answer(self, link: socket.socket, message: dict) -> None:
        call = message.get("call")
        try:
            reply = self.backend.answer(call)
        except Exception:
            _log().exception("front_call_failed call=%s", call)
            reply = Reply(500, TEXT, b"internal error: the agent's log says why\n")
        try:
            _send(link, {"op": "reply", "id": message.get("id"), "code": reply.code, "type": reply.content_type,
                         "length": len(reply.body)}, (reply.body,))
        except OSError:
            return  # the child died meanwhile: the caller's connection died with it
        if call == "reload":
            self.push()  # readiness may have changed with the configured checks

    def _respawn(self) -> None:
        with self._push_lock:
            old, self._link = self._link, None
            child = self._child
        if old is not None:
            old.close()
        code = child.wait() if child else None
        self.restarts += 1
        _log().error("serving_child_died exit_code=%s restarts=%d", code, self.restarts)
        while not self._stopping:
            time.sleep(RESTART_DELAY)
            if self._stopping:  # stopped meanwhile: the socket may be closed already
                return
            try:
                self._spawn()
                _log().info("serving_child_restarted pid=%d", self._child.pid)
                return
            except (OSError, RuntimeError, ValueError) as e:  # ValueError: the socket closed by stop()
                _log().error("serving_child_restart_failed error=%s", e)


# ---- in the child ------------------------------------------------------------------------


class AgentLink:
    """The backend agent.server asks in the child: the latest body and readiness the agent
    gave, and its answers to calls."""

    def __init__(self, link: socket.socket, silent_after: float = SILENT_AFTER):
        self.link, self.silent_after = link, silent_after
        self._plain = self._gzip = memoryview(b"")
        self._ready = False
        self._lock = threading.Lock()
        self._waiting: dict[int, list] = {}  # call id -> [Event, reply]
        self._next = 0
        self.first_body = threading.Event()  # serving starts with it: never an empty /metrics
        self._heard = time.monotonic()  # when the agent last sent anything

    def metrics(self, want_gzip: bool) -> tuple[memoryview, ...]:
        return (self._gzip if want_gzip else self._plain,)

    def ready(self) -> bool:
        return self._ready

    def alive(self) -> bool:
        return time.monotonic() - self._heard < self.silent_after

    def answer(self, call: str) -> Reply:
        done = threading.Event()
        with self._lock:
            self._next += 1
            call_id = self._next
            slot = self._waiting[call_id] = [done, None]
            self.link.sendall(json.dumps({"op": "call", "id": call_id, "call": call}).encode())
        try:
            if not done.wait(CALL_TIMEOUT):
                return Reply(503, TEXT, f"the agent did not answer within {CALL_TIMEOUT:g} s; /metrics is served "
                                        f"meanwhile\n".encode())
            return slot[1]
        finally:
            with self._lock:
                self._waiting.pop(call_id, None)

    def follow(self) -> None:
        """Read the agent's messages until it goes away, then end this process."""
        while True:
            try:
                message, fd = _receive(self.link)
            except (OSError, ValueError) as e:
                _log().error("front_link_failed error=%s", e)
                message, fd = None, None
            if message is None:
                os._exit(0)  # the agent has gone: its port must not outlive it
            self._heard = time.monotonic()
            op = message.get("op")
            if op == "metrics":
                body = _mapped(fd, message["plain"] + message["gzip"])
                self._plain, self._gzip = body[:message["plain"]], body[message["plain"]:]
                self._ready = bool(message["ready"])
                self.first_body.set()
            elif op == "reply":
                body = _mapped(fd, message["length"])
                with self._lock:
                    slot = self._waiting.get(message["id"])
                if slot is not None:
                    slot[1] = Reply(message["code"], message["type"], body)
                    slot[0].set()
            elif fd is not None:
                os.close(fd)


def main(argv: list[str]) -> int:
    import signal

    from mqwatch.agent.server import HTTPServer

    global _deferred_logging

    flags = {"--lifecycle"}
    args: dict[str, str | bool] = {}
    while argv:  # written by Front._spawn alone: no argparse (0.4 MB) for it
        name = argv.pop(0)
        args[name] = True if name in flags else argv.pop(0)
    # Ctrl-C in a terminal reaches the whole process group: the agent stops, and this child
    # follows when the link closes, after the agent's last words.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = str(args.get("--log-level", "info"))
    _deferred_logging = (level, args.get("--log-file"))
    if level == "debug":  # every request is logged
        _log()
    web = None
    if "--web-config" in args:
        from mqwatch.agent.webconfig import load_web_config

        web = load_web_config(args["--web-config"])  # validated by the agent already
    link = socket.socket(fileno=int(args["--link-fd"]))
    backend = AgentLink(link, float(args.get("--silent-after", SILENT_AFTER)))
    server = HTTPServer(backend, web=web, lifecycle=bool(args.get("--lifecycle")),
                        sock=socket.socket(fileno=int(args["--listen-fd"])), debug_log=level == "debug")
    threading.Thread(target=backend.follow, name="link", daemon=True).start()
    link.sendall(json.dumps({"op": "hello"}).encode())
    backend.first_body.wait()
    server.httpd.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
