"""Redis I/O: one connection, pipelined batches, budgeted SCAN, INFO. No evaluation here.

Every batch is a non-transactional pipeline: one round trip whatever its size, and a
command that fails (a key that changed type, vanished, or a module that refuses) comes
back as an exception object in its slot instead of failing the batch.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import redis
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.connection import SSLConnection
from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, ResponseError

from mqwatch.agent import tls as tlsconf
from mqwatch.agent.check import CheckError
from mqwatch.checks.redis.globs import Matcher, covering_glob, has_glob

CLIENT_NAME = b"mqwatch"


def label(value) -> str:
    """A printable label value from a key or member that may not be UTF-8."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


def as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def is_missing_key(result) -> bool:
    """XINFO and friends answer 'no such key' when the key vanished between SCAN and the read."""
    return isinstance(result, ResponseError) and "no such key" in str(result).lower()


def is_error(result) -> bool:
    return isinstance(result, Exception)


def is_denied(result) -> bool:
    """NOPERM: the ACL user may not run this command or read this key (Rounds reports it)."""
    return isinstance(result, NoPermissionError)


# Commands whose RESP2 replies (integers, bulk strings, arrays of them) are used as they come.
_UNPARSED = {m: m.upper() for m in ("llen", "zcard", "zcount", "type", "exists", "hget", "hmget", "hlen", "hvals",
                                    "lindex", "lrange")}


def _on_connect(connection) -> None:
    """AUTH and SELECT as redis-py does, then name the connection if the user may.

    CLIENT SETNAME only makes mqwatch recognisable in CLIENT LIST; a least-privilege ACL
    user need not be granted it, so its denial is not an error.
    """
    connection.on_connect()
    try:
        connection.send_command("CLIENT", "SETNAME", CLIENT_NAME)
        connection.read_response()
    except ResponseError:
        pass


class TlsConnection(SSLConnection):
    """A rediss:// connection using the check's `tls:` context (CA, client cert, server_name)."""

    def __init__(self, ssl_context: ssl.SSLContext, server_name: str = "", **kwargs):
        super().__init__(**kwargs)
        self._context, self._server_name = ssl_context, server_name

    def _wrap_socket_with_ssl(self, sock):
        return self._context.wrap_socket(sock, server_hostname=self._server_name or self.host)


class RedisClient:
    def __init__(self, url: str, username: str, password: str, timeout: float, tls=None):
        # Below the check's timeout so a hung server fails this collection with a clear
        # error instead of being abandoned by the scheduler.
        io_timeout = max(0.2, timeout * 0.8)
        kwargs = {"socket_timeout": io_timeout, "socket_connect_timeout": io_timeout, "decode_responses": False,
                  "retry_on_timeout": False, "redis_connect_func": _on_connect,
                  "driver_info": None}  # no CLIENT SETINFO: one command fewer for the ACL grant
        if username:
            kwargs["username"] = username
        if password:
            kwargs["password"] = password
        self._url_for_errors = _without_credentials(url)
        try:
            pool = redis.ConnectionPool.from_url(url, **kwargs)
        except ValueError as e:
            raise CheckError("config", f"invalid redis url: {e}") from None
        if tls is not None and tlsconf.configured(tls) and url.startswith("rediss://"):
            try:
                context = tlsconf.client_context(tls)
            except (ssl.SSLError, OSError) as e:
                raise CheckError("tls", f"{self._url_for_errors}: tls: {tlsconf.describe_ssl_error(e)}") from None
            pool.connection_class = TlsConnection
            pool.connection_kwargs.update(ssl_context=context, server_name=tls.server_name)
        self.redis = redis.Redis(connection_pool=pool)
        self._has_client_cert = bool(tls is not None and tls.cert_file) or "ssl_certfile=" in url

    def close(self) -> None:
        self.redis.close()

    def batch(self, calls) -> list:
        """Run (method, *args) calls in one pipelined round trip; failures come back in place.
        `method` is a redis-py method name, or an upper-case Redis command whose raw reply is wanted.

        redis-py's Pipeline spends more CPU per command than the server does; a collection is
        tens of thousands of LLEN/ZCARD/TYPE calls, so those whose replies need no parsing go
        to the wire as they are, and the rest are built (and their replies parsed) by
        redis-py's own command methods and response callbacks.
        """
        if not calls:
            return []
        recorder = None
        commands = []
        for method, *args in calls:
            raw = method if method.isupper() else _UNPARSED.get(method)
            if raw is not None:
                commands.append(((raw, *args), None))
            else:
                if recorder is None:
                    recorder = self.redis.pipeline(transaction=False)
                getattr(recorder, method)(*args)
                commands.append(recorder.command_stack[-1])
        return self.guard(lambda: self._round_trip(commands))

    def _round_trip(self, commands) -> list:
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_commands([args for args, _ in commands]))
            callbacks = self.redis.response_callbacks
            out = []
            for args, options in commands:
                try:
                    reply = conn.read_response()
                except ResponseError as e:
                    out.append(options[EMPTY_RESPONSE] if options and EMPTY_RESPONSE in options else e)
                    continue
                if options is not None:
                    options = {k: v for k, v in options.items() if k not in (EMPTY_RESPONSE, NEVER_DECODE, "keys")}
                    callback = callbacks.get(args[0])
                    if callback is not None:
                        reply = callback(reply, **options)
                out.append(reply)
            return out
        except BaseException:
            conn.disconnect()  # a reply may be half read: never reuse this socket
            raise
        finally:
            pool.release(conn)

    def guard(self, fn):
        """Turn a whole-server failure into a CheckError with a short reason, never a secret."""
        try:
            return fn()
        except NoPermissionError as e:  # the ACL user lacks a command (Redis names it) or a key
            raise CheckError("permission", f"{self._url_for_errors}: {e} (see the README's ACL grant)") from None
        except (AuthenticationError, AuthorizationError) as e:
            raise CheckError("auth", f"{self._url_for_errors}: authentication failed: {e}") from None
        except ResponseError as e:
            if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
                raise CheckError("auth", f"{self._url_for_errors}: authentication failed: {e}") from None
            raise
        except redis.exceptions.TimeoutError:
            raise CheckError("timeout", f"{self._url_for_errors}: no reply in time") from None
        except redis.exceptions.ConnectionError as e:
            if isinstance(e.__context__, ssl.SSLError) or "SSL" in str(e) or "_ssl.c" in str(e):
                raise CheckError("tls", f"{self._url_for_errors}: TLS failed: {e}{self._tls_hint(e)}") from None
            raise CheckError("connection", f"{self._url_for_errors}: {e}") from None

    def _tls_hint(self, e: Exception) -> str:
        # With TLS 1.3 a server that wants a client certificate hangs up after the handshake:
        # the client only sees EOF, so say what that usually means.
        if not self._has_client_cert and "EOF" in str(e):
            return (" (the server closed the TLS connection: it probably requires a client certificate; "
                    "set tls.cert_file and tls.key_file)")
        return ""

    def info(self) -> dict:
        return self.guard(lambda: self.redis.info())

    def scan(self, patterns, count: int, budget: int, max_calls: int) -> ScanResult:
        """Keys matching any pattern, at most `budget` of them, in at most `max_calls` SCAN calls
        (never KEYS). ONE walk of the keyspace whatever the number of patterns and key types:
        its MATCH is a glob covering every pattern, and the keys it lets through are matched
        exactly here; their types are asked afterwards in one pipelined round.
        keys maps each key to the index of the first pattern that matched it."""
        seen: dict = {}
        globs = []
        for index, pattern in enumerate(patterns):
            if has_glob(pattern):
                globs.append((index, pattern))
            else:  # a literal name needs no scan: its TYPE tells if it exists
                seen.setdefault(pattern.encode(), index)
        if not globs:
            return ScanResult(seen, exceeded="")
        matcher = Matcher([p for _, p in globs])
        indexes = [i for i, _ in globs]
        match = covering_glob([p for _, p in globs])
        cursor, calls = 0, 0
        while True:
            if calls >= max_calls:
                return ScanResult(seen, exceeded="calls")
            calls += 1
            cursor, keys = self.guard(lambda: self.redis.scan(cursor, match=match, count=count))  # noqa: B023 (called at once)
            for k in keys:
                i = matcher.index(k)
                if i is not None:
                    seen.setdefault(k, indexes[i])
            if len(seen) > budget:
                return ScanResult(dict(list(seen.items())[:budget]), exceeded="keys")
            if cursor == 0:
                return ScanResult(seen, exceeded="")


@dataclass
class ScanResult:
    keys: dict  # key -> index of the first pattern that matched it
    exceeded: str  # "" when complete; "keys" (max_keys) or "calls" (max_scan_calls) when cut short


def _without_credentials(url: str) -> str:
    """The url as errors show it: no user:password@, and no query (?password=, ?ssl_password=...)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.split("?", 1)[0]
    hostpart, slash, path = rest.partition("/")
    return f"{scheme}://{hostpart.rpartition('@')[2]}{slash}{path.split('?', 1)[0]}"


class Rounds:
    """Reads queued with a callback each, sent as one pipelined round trip per round.

    A callback may queue follow-up reads (the job hash behind a dead job id, the first
    undelivered entry of a stream group); they go out together in the next round, so a
    cycle costs as many round trips as its longest chain of dependent reads, not one per key.
    """

    def __init__(self, client: RedisClient, on_error):
        self.client, self.on_error = client, on_error
        self._queued: list = []
        self.round_trips = 0

    def add(self, callback, method: str, *args) -> None:
        self._queued.append(((method, *args), callback))

    def add_many(self, callback, calls) -> None:
        """Queue many calls whose replies go, in order, to one callback as a list."""
        if calls:
            self._queued.append((_Many(calls), callback))

    def run(self) -> None:
        while self._queued:
            todo, self._queued = self._queued, []
            calls = []
            for call, _ in todo:
                if isinstance(call, _Many):
                    calls.extend(call.calls)
                else:
                    calls.append(call)
            results = iter(self.client.batch(calls))
            self.round_trips += 1
            denied = Denials()
            for call, callback in todo:
                if isinstance(call, _Many):
                    result = [next(results) for _ in call.calls]
                    for one, r in zip(call.calls, result):
                        if is_denied(r):  # the callback skips it: reported here, once
                            denied.add(one, r)
                    call = call.calls[0]
                else:
                    result = next(results)
                    if is_denied(result):  # not "the key changed": the user may not read it
                        denied.add(call, result)
                        continue
                try:
                    callback(result)
                except Exception as e:  # one odd reply must not end the collection
                    self.on_error("bad_reply", f"{call[0].upper()} {label(call[1]) if len(call) > 1 else ''}: "
                                               f"unexpected reply ({type(e).__name__}: {e})")
            denied.report(self.on_error)


class _Many:
    def __init__(self, calls):
        self.calls = calls


class Denials:
    """NOPERM replies of one round, reported once per refusal with the keys it hit.

    The queues behind those keys produce no series this cycle; the error says which command
    or key the ACL user lacks, so missing series never pass for a healthy `ok`.
    """

    SHOWN_KEYS = 3

    def __init__(self):
        self._by_message: dict = {}  # Redis' NOPERM text -> [command, keys]

    def add(self, call: tuple, error: Exception) -> None:
        command = call[0].replace("_", " ").upper()
        entry = self._by_message.setdefault(str(error), [command, []])
        if len(call) > 1:
            entry[1].append(label(call[1]))

    def report(self, on_error) -> None:
        for message, (command, keys) in self._by_message.items():
            shown = ", ".join(repr(k) for k in keys[: self.SHOWN_KEYS])
            more = f" and {len(keys) - self.SHOWN_KEYS} more" if len(keys) > self.SHOWN_KEYS else ""
            on_error("permission", f"{command} {shown}{more}: {message} (see the README's ACL grant)")
