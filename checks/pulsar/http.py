"""HTTP to Pulsar brokers: one requests.Session per check, a timeout on every call, replies
read up to a size cap, the token sent only to configured hosts, and failures turned into
short, bounded error reasons."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

_CHUNK = 1 << 16
_DETAIL_BYTES = 4096  # of an error reply, enough for Pulsar's {"reason": ...}


class HttpError(Exception):
    def __init__(self, reason: str, message: str, status: int | None = None):
        self.reason, self.status = reason, status
        super().__init__(message)


def host_key(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL or a bare host:port, default ports filled in."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


class TokenSession(requests.Session):
    """Sends the bearer token only to the hosts the user configured, redirects included: an
    admin API that redirects to, or lists, other brokers does not hand them the token."""

    def __init__(self, token: str = "", allowed_hosts=()):
        super().__init__()
        self.headers["User-Agent"] = "mqwatch"
        self._token = token
        self._allowed = {k for k in (host_key(h) for h in allowed_hosts) if k is not None}

    def may_send_token(self, url: str) -> bool:
        return bool(self._token) and host_key(url) in self._allowed

    def prepare_request(self, request):
        prepared = super().prepare_request(request)
        self._authorize(prepared)
        return prepared

    def rebuild_auth(self, prepared_request, response):  # called on every redirect
        self._authorize(prepared_request)

    def _authorize(self, prepared) -> None:
        prepared.headers.pop("Authorization", None)
        if self.may_send_token(prepared.url):
            prepared.headers["Authorization"] = f"Bearer {self._token}"


def new_session(token: str = "", allowed_hosts=()) -> TokenSession:
    return TokenSession(token, allowed_hosts)


@dataclass
class Reply:
    status_code: int
    reason: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


def shown(url: str) -> str:
    """The URL as errors and /status may show it: without user:password@."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def get(session: requests.Session, url: str, timeout: float, accept: str = "application/json",
        max_bytes: int | None = None, cap_key: str = "max_response_bytes") -> Reply:
    """GET url within `timeout` in all (connect, headers and body), reading at most max_bytes
    of the (decompressed) body. Raises HttpError(reason) for anything but a complete 2xx answer;
    a body over the cap is `too_large`, never a partial reply."""
    display = shown(url)
    deadline = time.monotonic() + timeout
    try:
        resp = session.get(url, timeout=timeout, headers={"Accept": accept}, stream=True)
    except requests.Timeout:
        raise HttpError("timeout", f"GET {display}: no answer within {timeout:g}s") from None
    except requests.ConnectionError as e:
        raise HttpError("connection", f"GET {display}: cannot connect ({_root_cause(e)})") from None
    except requests.RequestException as e:
        raise HttpError("connection", f"GET {display}: {type(e).__name__}") from None
    try:
        ok = resp.status_code < 300
        limit = max_bytes if ok else _DETAIL_BYTES
        declared = resp.headers.get("Content-Length", "")
        if ok and max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(display, max_bytes, cap_key)
        body = bytearray()
        try:
            while True:
                # read1: what one socket read gives, so a slowly dripping reply meets the deadline
                # check below instead of blocking until a whole chunk has arrived.
                chunk = resp.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                body += chunk
                if limit is not None and len(body) > limit:
                    if ok:
                        raise _too_large(display, max_bytes, cap_key)
                    break
                if time.monotonic() > deadline:
                    raise HttpError("timeout", f"GET {display}: reply not complete within {timeout:g}s")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            if isinstance(e, urllib3.exceptions.DecodeError):
                raise HttpError("bad_reply", f"GET {display}: the reply cannot be decompressed") from None
            if isinstance(e, (urllib3.exceptions.TimeoutError, TimeoutError, requests.Timeout)):
                raise HttpError("timeout", f"GET {display}: reply not complete within {timeout:g}s") from None
            raise HttpError("connection", f"GET {display}: reply cut off ({_root_cause(e)})") from None
        reply = Reply(resp.status_code, resp.reason or "", bytes(body))
    finally:
        resp.close()
    if reply.status_code in (401, 403):
        raise HttpError("auth", f"GET {display}: HTTP {reply.status_code} {_detail(reply)} (check auth.token)", reply.status_code)
    if reply.status_code == 404:
        raise HttpError("not_found", f"GET {display}: HTTP 404 {_detail(reply)}", 404)
    if reply.status_code >= 300:
        raise HttpError("broker_error", f"GET {display}: HTTP {reply.status_code} {_detail(reply)}", reply.status_code)
    return reply


def _too_large(display: str, max_bytes: int, cap_key: str) -> HttpError:
    return HttpError("too_large", f"GET {display}: the reply is larger than {max_bytes} bytes "
                                  f"(the check's {cap_key}); not read")


def get_json(session: requests.Session, url: str, timeout: float, max_bytes: int | None = None,
             cap_key: str = "max_response_bytes"):
    resp = get(session, url, timeout, max_bytes=max_bytes, cap_key=cap_key)
    try:
        return resp.json()
    except ValueError:
        raise HttpError("bad_reply", f"GET {shown(url)}: the reply is not JSON: {resp.text[:80]!r}") from None


def _detail(resp: Reply) -> str:
    """Pulsar's RestException body is {"reason": "..."}; show it when present."""
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            return f"({body['reason'][:200]})"
    except ValueError:
        pass
    return f"({resp.reason})" if resp.reason else ""


def _root_cause(e: Exception) -> str:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
    text = str(e)
    return text.split(": ", 1)[-1][:160] if text else type(e).__name__
