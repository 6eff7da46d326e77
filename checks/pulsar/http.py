"""HTTP to Pulsar brokers: one requests.Session per check, a timeout on every call, replies
read up to a size cap, the token sent only to configured hosts, and failures turned into
short, bounded error reasons."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from mqwatch.agent import tls as tlsconf
from mqwatch.checks.pulsar.oauth2 import ClientCredentials, TokenError

_CHUNK = 1 << 16
_DETAIL_BYTES = 4096  # of an error reply, enough for Pulsar's {"reason": ...}


class HttpError(Exception):
    def __init__(self, reason: str, message: str, status: int | None = None):
        self.reason, self.status = reason, status
        super().__init__(message)


class TlsAdapter(HTTPAdapter):
    """HTTPS with the check's `tls:` context: private CA, client certificate (encrypted key
    too, which requests' `cert=` cannot load), and server_name for SNI and verification."""

    def __init__(self, context: ssl.SSLContext | None, server_name: str = "", **kwargs):
        self._context, self._server_name = context, server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        if self._server_name:
            kwargs["server_hostname"] = kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


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
    admin API that redirects to, or lists, other brokers does not hand them the token.

    The token is fixed (auth.token) or fetched when needed (auth.oauth2: token_source)."""

    def __init__(self, token: str = "", allowed_hosts=(), token_source=None):
        super().__init__()
        self.headers["User-Agent"] = "mqwatch"
        self._token, self._token_source = token, token_source
        self._allowed = {k for k in (host_key(h) for h in allowed_hosts) if k is not None}
        self.client_cert = False  # set by new_session; read by get() to explain a TLS hang-up

    def may_send_token(self, url: str) -> bool:
        return bool(self._token or self._token_source) and host_key(url) in self._allowed

    def prepare_request(self, request):
        prepared = super().prepare_request(request)
        self._authorize(prepared)
        return prepared

    def rebuild_auth(self, prepared_request, response):  # called on every redirect
        self._authorize(prepared_request)

    def _authorize(self, prepared) -> None:
        prepared.headers.pop("Authorization", None)
        if self.may_send_token(prepared.url):
            prepared.headers["Authorization"] = f"Bearer {self._token or self._token_source()}"


def new_session(auth=None, tls=None, allowed_hosts=(), timeout: float = 5.0, pool_maxsize: int = 10) -> TokenSession:
    """A session for one check's HTTP endpoints: its `tls:` block, and `auth:` (a token, or OAuth2
    client credentials) sent to allowed_hosts only. Raises HttpError("tls") when tls files do not load."""
    token_source = None
    if auth is not None and not auth.token and auth.oauth2.issuer_url:
        # The issuer is often outside the cluster's private CA: trust the system store and ca_file.
        issuer = requests.Session()
        issuer.headers["User-Agent"] = "mqwatch"
        issuer.mount("https://", TlsAdapter(tlsconf.trust_context(tls), pool_maxsize=2))
        token_source = ClientCredentials(auth.oauth2, issuer, timeout).token
    session = TokenSession(auth.token if auth is not None else "", allowed_hosts, token_source)
    context, server_name = None, ""
    if tls is not None and tlsconf.configured(tls):
        try:
            context = tlsconf.client_context(tls)
        except (ssl.SSLError, OSError) as e:
            raise HttpError("tls", f"tls: {tlsconf.describe_ssl_error(e)}") from None
        server_name = tls.server_name
        # requests applies `verify` on top of the context: keep it from re-enabling checks or
        # loading its own CA bundle over ca_file.
        session.verify = False if tls.insecure_skip_verify else (tls.ca_file or True)
        session.client_cert = bool(tls.cert_file)
    adapter = TlsAdapter(context, server_name, pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


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
    except TokenError as e:  # OAuth2: the issuer gave no token
        raise HttpError("auth", f"GET {display}: {e}") from None
    except requests.Timeout:
        raise HttpError("timeout", f"GET {display}: no answer within {timeout:g}s") from None
    except requests.exceptions.SSLError as e:
        raise HttpError("tls", f"GET {display}: TLS failed ({_root_cause(e)})") from None
    except requests.ConnectionError as e:
        cause = _root_cause(e)
        if url.startswith("https://") and "without response" in cause and not getattr(session, "client_cert", False):
            # TLS 1.3: a server that wants a client certificate hangs up after the handshake.
            raise HttpError("tls", f"GET {display}: the server closed the TLS connection without a response: it "
                                   f"probably requires a client certificate (tls.cert_file, tls.key_file)") from None
        raise HttpError("connection", f"GET {display}: cannot connect ({cause})") from None
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
    if reply.status_code == 401:
        raise HttpError("auth", f"GET {display}: HTTP 401 {_detail(reply)} (check auth.token or auth.oauth2)", 401)
    if reply.status_code == 403:  # authenticated, but the role lacks the permission (README: least privilege)
        raise HttpError("permission", f"GET {display}: HTTP 403 {_detail(reply)}: the role may not read "
                                      f"{urlsplit(url).path}", 403)
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
