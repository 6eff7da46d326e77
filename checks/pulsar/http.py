"""HTTP to Pulsar brokers: one requests.Session per check, a timeout on every call,
and failures turned into short, bounded error reasons."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests


class HttpError(Exception):
    def __init__(self, reason: str, message: str, status: int | None = None):
        self.reason, self.status = reason, status
        super().__init__(message)


def new_session(token: str = "") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "mqwatch"
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
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
    except requests.Timeout:
        raise HttpError("timeout", f"GET {display}: no answer within {timeout:g}s") from None
    except requests.ConnectionError as e:
        raise HttpError("connection", f"GET {display}: cannot connect ({_root_cause(e)})") from None
    except requests.RequestException as e:
        raise HttpError("connection", f"GET {display}: {type(e).__name__}") from None
    if resp.status_code in (401, 403):
        raise HttpError("auth", f"GET {display}: HTTP {resp.status_code} {_detail(resp)} (check auth.token)", resp.status_code)
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
