"""OAuth2 client credentials for Pulsar's HTTP endpoints, the way Pulsar's clients do it.

Pulsar's Java and C++ clients (AuthenticationOAuth2, ClientCredentialsFlow) read the issuer's
`/.well-known/openid-configuration` for its `token_endpoint`, POST a form with
grant_type=client_credentials, client_id, client_secret, audience (and scope), and send the
`access_token` as a bearer token until it expires. The binary protocol uses pulsar-client's
own AuthenticationOauth2 with the same settings (binary.py); this module serves the
requests.Session of the admin API and /metrics, so both ends get the same identity.
A token is a few hundred bytes: replies are read with a size cap.
"""

from __future__ import annotations

import json
import threading
import time

import requests

from urllib.parse import urlsplit

_MAX_REPLY = 64 * 1024
_EARLY = 30.0  # renew this long before the token expires


class TokenError(Exception):
    """No access token: the message says why (never with the secret); http.get reports it as `auth`."""


def shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


class ClientCredentials(requests.auth.AuthBase):
    def __init__(self, settings, session: requests.Session, timeout: float, clock=time.monotonic):
        self.settings, self.session, self.timeout, self.clock = settings, session, timeout, clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0
        self._endpoint = ""

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        with self._lock:
            if not self._token or self.clock() >= self._expires:
                self._fetch()
            return self._token

    def _fetch(self) -> None:
        s = self.settings
        if not self._endpoint:
            discovery = s.issuer_url.rstrip("/") + "/.well-known/openid-configuration"
            doc = self._json("GET", discovery)
            endpoint = doc.get("token_endpoint") if isinstance(doc, dict) else None
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise TokenError(f"oauth2: {shown(discovery)} names no token_endpoint")
            self._endpoint = endpoint
        form = {"grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret}
        if s.audience:
            form["audience"] = s.audience
        if s.scope:
            form["scope"] = s.scope
        doc = self._json("POST", self._endpoint, data=form)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError(f"oauth2: {shown(self._endpoint)} returned no access_token")
        expires_in = doc.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 300.0
        self._token, self._expires = token, self.clock() + max(1.0, lifetime - _EARLY)

    def _json(self, method: str, url: str, **kwargs):
        try:
            resp = self.session.request(method, url, timeout=self.timeout, stream=True,
                                        headers={"Accept": "application/json"}, **kwargs)
            body = resp.raw.read(_MAX_REPLY + 1, decode_content=True)
        except requests.RequestException as e:
            raise TokenError(f"oauth2: {method} {shown(url)}: cannot reach the issuer ({type(e).__name__})") from None
        if len(body) > _MAX_REPLY:
            raise TokenError(f"oauth2: {method} {shown(url)}: reply larger than {_MAX_REPLY} bytes")
        if resp.status_code >= 300:
            # The issuer's error code (invalid_client, ...) says why; it carries no secret.
            detail = _error_code(body)
            raise TokenError(f"oauth2: {method} {shown(url)}: HTTP {resp.status_code}{detail}")
        try:
            return json.loads(body)
        except ValueError:
            raise TokenError(f"oauth2: {method} {shown(url)}: the reply is not JSON") from None


def _error_code(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return f" ({doc['error'][:80]})"
    return ""
