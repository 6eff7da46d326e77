"""HTTP to Pulsar brokers: one requests.Session per check, a timeout on every call,
and failures turned into short, bounded error reasons."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from agent import tls as tlsconf
from checks.pulsar.oauth2 import ClientCredentials, TokenError


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


def new_session(auth=None, tls=None, timeout: float = 5.0, pool_maxsize: int = 10) -> requests.Session:
    """A session for one check's HTTP endpoints: its `tls:` block and `auth:` (a token, or OAuth2
    client credentials). Raises HttpError("tls") when the tls files do not load."""
    session = _tls_session(tls, pool_maxsize)
    if auth is not None and auth.token:
        session.headers["Authorization"] = f"Bearer {auth.token}"
    elif auth is not None and auth.oauth2.issuer_url:
        # The issuer is often outside the cluster's private CA: trust the system store and ca_file.
        issuer = _tls_session(None, 2)
        issuer.mount("https://", TlsAdapter(tlsconf.trust_context(tls), pool_maxsize=2))
        session.auth = ClientCredentials(auth.oauth2, issuer, timeout)
    return session


def _tls_session(tls, pool_maxsize: int) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "mqwatch"
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
    session.client_cert = bool(tls is not None and tls.cert_file)  # read by get() to explain a hang-up
    adapter = TlsAdapter(context, server_name, pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def shown(url: str) -> str:
    """The URL as errors and /status may show it: without user:password@."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def get(session: requests.Session, url: str, timeout: float, accept: str = "application/json") -> requests.Response:
    """GET url; raises HttpError(reason) for anything but a 2xx answer."""
    display = shown(url)
    try:
        resp = session.get(url, timeout=timeout, headers={"Accept": accept})
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
    if resp.status_code == 401:
        raise HttpError("auth", f"GET {display}: HTTP 401 {_detail(resp)} (check auth.token or auth.oauth2)", 401)
    if resp.status_code == 403:  # authenticated, but the role lacks the permission (README: least privilege)
        raise HttpError("permission", f"GET {display}: HTTP 403 {_detail(resp)}: the role may not read "
                                      f"{urlsplit(url).path}", 403)
    if resp.status_code == 404:
        raise HttpError("not_found", f"GET {display}: HTTP 404 {_detail(resp)}", 404)
    if resp.status_code >= 300:
        raise HttpError("broker_error", f"GET {display}: HTTP {resp.status_code} {_detail(resp)}", resp.status_code)
    return resp


def get_json(session: requests.Session, url: str, timeout: float):
    resp = get(session, url, timeout)
    try:
        return resp.json()
    except ValueError:
        raise HttpError("bad_reply", f"GET {shown(url)}: the reply is not JSON: {resp.text[:80]!r}") from None


def _detail(resp: requests.Response) -> str:
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
