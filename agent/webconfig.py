"""The web config file: TLS and basic auth for the agent's endpoints.

Same format as every Prometheus exporter (prometheus/exporter-toolkit), so an operator
can reuse the file they already have:

    tls_server_config:
      cert_file: /etc/mqwatch/tls/tls.crt
      key_file: /etc/mqwatch/tls/tls.key
      client_ca_file: /etc/mqwatch/tls/ca.crt      # optional: client certificates
      client_auth_type: RequireAndVerifyClientCert  # default when client_ca_file is given
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...                        # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Errors name file:line and key. Certificates are loaded here once so that a broken file
fails `validate` and start-up, not the first scrape; the TLS context is rebuilt when the
certificate or key file changes on disk (cert-manager renewals need no restart).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass

import bcrypt
import yaml

from mqwatch.agent.schema import Choice, ConfigError, ConfigErrors, Field, Schema, ScalarMap, Str, _Ctx, Invalid

# exporter-toolkit's names. Python's ssl cannot ask for a client certificate without
# verifying it, so the two "accept any certificate" modes are refused with a reason.
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_UNSUPPORTED_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_BCRYPT_HASH = r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}"
_AUTH_CACHE_SIZE = 256

TLS_SCHEMA = Schema({
    "cert_file": Field(Str(r"\S.*", "expected a file path"), doc="server certificate (PEM), chain included"),
    "key_file": Field(Str(r"\S.*", "expected a file path"), doc="private key of cert_file (PEM)"),
    "client_ca_file": Field(Str(), "", "CA bundle that client certificates must chain to"),
    "client_auth_type": Field(Choice("", *CLIENT_AUTH_TYPES, *_UNSUPPORTED_AUTH_TYPES), "",
                              "client certificate policy (default: RequireAndVerifyClientCert with client_ca_file)"),
    "min_version": Field(Choice(*TLS_VERSIONS), "TLS12", "oldest TLS version accepted"),
})

WEB_SCHEMA = Schema({
    "tls_server_config": Field(TLS_SCHEMA, None),
    "basic_auth_users": Field(ScalarMap(), {}, "user name -> bcrypt hash of the password"),
})


@dataclass(frozen=True)
class WebConfig:
    file: str
    tls: TLSFiles | None
    users: dict  # user -> bcrypt hash (bytes)

    def server_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls else None


class TLSFiles:
    """The TLS settings, and an SSLContext rebuilt whenever a file changes on disk."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str, client_auth_type: str, min_version: str):
        self.cert_file, self.key_file, self.client_ca_file = cert_file, key_file, client_ca_file
        self.client_auth_type = client_auth_type or ("RequireAndVerifyClientCert" if client_ca_file else "NoClientCert")
        self.min_version = min_version
        self._lock = threading.Lock()
        self._stamp = None
        self._context: ssl.SSLContext | None = None

    def _files(self):
        return [f for f in (self.cert_file, self.key_file, self.client_ca_file) if f]

    def build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        ctx.verify_mode = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                           "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}[self.client_auth_type]
        return ctx

    def context(self) -> ssl.SSLContext:
        try:
            stamp = tuple(os.stat(f).st_mtime_ns for f in self._files())
        except OSError:
            stamp = self._stamp  # a file briefly missing during a rotation: keep what works
        with self._lock:
            if self._context is None or stamp != self._stamp:
                try:
                    self._context = self.build()
                    self._stamp = stamp
                except (OSError, ssl.SSLError):
                    if self._context is None:
                        raise
            return self._context


def load_web_config(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(1 << 20)
    except OSError as e:
        raise ConfigErrors([ConfigError(f"cannot read web config: {e.strerror}", file=path)]) from None
    return parse_web_config(text, path)


def parse_web_config(text: str, file: str) -> WebConfig:
    from mqwatch.agent.config import _to_python  # the same line-tracking YAML reader as mqwatch.yaml

    errors: list[ConfigError] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigErrors([ConfigError(f"invalid YAML: {getattr(e, 'problem', None) or e}",
                                        line=mark.line + 1 if mark else None, file=file)]) from None
    lines: dict = {}
    data = {} if node is None else _to_python(node, (), lines, errors, file, os.environ)
    ctx = _Ctx(file, lines, errors)
    try:
        section = WEB_SCHEMA.convert(data, ctx, ())
    except Invalid as e:
        ctx.error((), str(e))
        raise ConfigErrors(errors) from None
    tls = _tls(section.tls_server_config, data.get("tls_server_config"), ctx)
    users = {}
    for user, hashed in section.basic_auth_users.items():
        if not _is_bcrypt(hashed):
            # Never echo the value: a plain-text password pasted here is exactly what must not leak.
            ctx.error(("basic_auth_users", user), "expected a bcrypt hash ($2y$..., $2b$...), "
                      "for example from `htpasswd -nBC 10 \"\" | tr -d ':'`; plain-text passwords are not accepted")
            continue
        users[user] = str(hashed).encode()
    if errors:
        raise ConfigErrors(errors)
    return WebConfig(file=file, tls=tls, users=users)


def _is_bcrypt(value) -> bool:
    return isinstance(value, str) and re.fullmatch(_BCRYPT_HASH, value) is not None


def _tls(section, raw, ctx: _Ctx) -> TLSFiles | None:
    if not isinstance(raw, dict):
        return None
    base = ("tls_server_config",)
    ok = True
    for key in ("cert_file", "key_file", "client_ca_file"):
        path = section.get(key) if section else None
        if path and not os.access(path, os.R_OK):
            ctx.error(base + (key,), f"cannot read {path!r}")
            ok = False
    auth = section.client_auth_type if section else ""
    if auth in _UNSUPPORTED_AUTH_TYPES:
        ctx.error(base + ("client_auth_type",), f"{auth} is not supported (Python's ssl verifies every client "
                  "certificate it asks for): use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
        return None
    if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not section.client_ca_file:
        ctx.error(base + ("client_ca_file",), f"client_auth_type {auth} needs client_ca_file to verify certificates with")
        ok = False
    if not ok or not section or not section.get("cert_file") or not section.get("key_file"):
        return None
    tls = TLSFiles(section.cert_file, section.key_file, section.client_ca_file, auth, section.min_version)
    try:
        tls.context()
    except ssl.SSLError as e:
        ctx.error(base, f"cannot load the certificate, key or CA: {e.reason or e}")
        return None
    except OSError as e:
        ctx.error(base, f"cannot load the certificate, key or CA: {e.strerror or e}")
        return None
    return tls


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes.

    bcrypt is slow on purpose (tens of ms per check); a scraper sends the same credentials
    every 15 s, so verified pairs are remembered (as a keyed digest, never the password).
    An unknown user costs the same bcrypt work as a known one: timing tells nothing.
    """

    def __init__(self, users: dict):
        self.users = users
        # Cost 10, the usual htpasswd cost: a missing user must take as long as a wrong password.
        self._dummy = bcrypt.hashpw(b"mqwatch-no-such-user", bcrypt.gensalt(rounds=10))
        self._key = os.urandom(32)
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or not header[:6].lower() == "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self.users.get(user)
        digest = hmac.new(self._key, b"\0".join([user.encode(), password.encode(), hashed or b""]), hashlib.sha256).digest()
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return self._cache[digest]
        ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        with self._lock:
            self._cache[digest] = ok
            while len(self._cache) > _AUTH_CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok
