"""The one place secrets are taken out of text before it leaves the process.

Everything mqwatch prints or serves goes through `redact()`: config errors (validate,
check, reload answers), every log line, /status, the status page, `mqwatch check` output
and the snapshot errors they are built from. It removes secrets two ways:

- by shape: the userinfo of anything that looks like a URL, even a malformed one
  (`redis//:PW@host`, `redis:PW@host`), credential-bearing query parameters (any name
  containing password, secret, token, key or auth), and `name=value` / `name: value`
  pairs whose name says password, secret, token, credential, sasl.oauthbearer...;
- by value: the config loader registers every secret it reads (secret fields, `*_file`
  contents, URL passwords and secret parameters, Kafka `client:` secret keys), so a
  client library's exception that echoes a password verbatim is scrubbed too.

Redacting too much is harmless; one leaked password is not.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote

MASK = "***"
# A registered value shorter than this is redacted only by shape: masking every
# occurrence of "abc" in every log line would make the output unreadable.
MIN_SECRET_LENGTH = 6
_MAX_SECRETS = 10_000
_MAX_SECRET_FILE_BYTES = 1 << 20

# Config key names whose value is a secret. Outside `client:` the name must END in the
# secret word, so that user data such as a DLQ topic map (`auth-events.dlq: auth-events`)
# or a canary `key:` is never taken for a secret.
_SECRET_KEY = re.compile(r"(?i)(^|[._-])(pass(word|wd|phrase)?|secret|token|credentials?|api[_-]?key|apikey)$")
# A `*_file` names a credential file when its base is such a name or a private key.
_SECRET_FILE_KEY = re.compile(r"(?i)(^|[._-])(pass(word|wd|phrase)?|secret|token|credentials?|api[_-]?key|key)$")
# Under a Kafka `client:` and in URL query strings: any name containing one of these.
_SECRET_PARAM = re.compile(r"(?i)(pass|secret|token|key|sasl\.oauthbearer|credential)")

# userinfo: after `//`, or after `scheme:` when the slashes are missing or mangled,
# up to the last `@` of the token. The host part must follow (not whitespace or end).
_URL_USERINFO = re.compile(
    r"(?P<pre>//|(?<![\w.+-])[A-Za-z][\w+.-]*:/{0,2})(?P<info>[^\s'\"<>`]*)@(?=[^\s@'\"<>]+)"
)
_QUERY_PARAM = re.compile(r"(?P<pre>[?&;](?P<name>[^=&;\s#'\"]+)=)(?P<value>[^&;\s#'\"<>]*)")
_SECRET_PAIR = re.compile(
    r"(?i)(?P<key>[\w.-]*(?:pass(?:word|wd|phrase)|secret|token|credential|sasl\.oauthbearer[\w.-]*|"
    r"sasl\.jaas\.config|api[_-]?key|authorization)[\w.-]*)"
    r"(?P<sep>['\"]?\s*[=:]\s*(?:bearer\s+|basic\s+)?['\"]?)(?P<value>[^\s'\",}&;]+)"
)


class _Registry:
    def __init__(self):
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern | None = None

    def add(self, value) -> None:
        if not isinstance(value, str):
            value = str(value)
        forms = {value, value.strip(), unquote(value)}
        with self._lock:
            added = False
            for v in forms:
                if len(v) >= MIN_SECRET_LENGTH and v not in self._values and len(self._values) < _MAX_SECRETS:
                    self._values.add(v)
                    added = True
            if added:
                # Longest first so a secret containing another is masked whole.
                alternatives = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def sub(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


_registry = _Registry()


def register_secret(value) -> None:
    """Make a secret value known: from now on it is masked wherever it appears."""
    if value is None or value == "":
        return
    _registry.add(value)


def register_secret_file(path) -> None:
    """A credential file's content is a secret even where mqwatch does not read it itself
    (TLS key passwords, private keys handed to a client library by path)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SECRET_FILE_BYTES)
    except (OSError, TypeError, ValueError):
        return
    text = data.decode("utf-8", "replace")
    register_secret(text)
    register_secret(text.rstrip("\r\n"))
    for line in text.splitlines():  # a PEM body echoed line by line is still a secret
        if len(line) >= 16:
            register_secret(line)


def is_secret_name(name: str, in_url_or_client: bool = False) -> bool:
    """Whether a config key (or, with in_url_or_client, a URL parameter or librdkafka
    property) holds a secret."""
    name = str(name)
    if in_url_or_client:
        return bool(_SECRET_PARAM.search(name))
    return bool(_SECRET_KEY.search(name))


def register_url(value: str) -> None:
    """The password (or whole userinfo) and secret query parameters of a URL-like string."""
    for m in _URL_USERINFO.finditer(value):
        info = m["info"]
        register_secret(info)
        if ":" in info:
            register_secret(info.split(":", 1)[1])
    for m in _QUERY_PARAM.finditer(value):
        if is_secret_name(m["name"], in_url_or_client=True):
            register_secret(m["value"])


def register_config_tree(data, path: tuple = ()) -> None:
    """Walk raw config data (before validation, so a rejected value is known too) and
    register every secret: values under secret-looking keys, URL credentials, and the
    content of credential files named by secret-looking `*_file` keys."""
    if isinstance(data, dict):
        in_client = bool(path) and path[-1] == "client"
        for key, value in data.items():
            key_s = str(key)
            if isinstance(value, (dict, list)):
                register_config_tree(value, path + (key_s,))
                continue
            if value is None or isinstance(value, bool):
                continue
            text = str(value)
            if key_s.endswith("_file") or (in_client and key_s.endswith(".location")):
                base = key_s.rsplit("_file", 1)[0].rsplit(".location", 1)[0]
                if _SECRET_FILE_KEY.search(base) or (in_client and is_secret_name(base, True)):
                    register_secret_file(text)
            elif is_secret_name(key_s, in_url_or_client=in_client):
                register_secret(text)
            register_url(text)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            register_config_tree(item, path + (i,))
    elif isinstance(data, str):
        register_url(data)


def _mask_userinfo(m: re.Match) -> str:
    info = m["info"]
    if not info:
        # `scheme:/@host` or `scheme://@host`: the pattern took the slashes for the URL's, but
        # with nothing between them and the `@` they may be the password of a mangled
        # `scheme:PASSWORD@host` (hypothesis found password "/"). Masking an empty userinfo
        # costs nothing; showing a password does.
        if m["pre"] != "//" and m["pre"].endswith("/"):
            return f"{m['pre'].rstrip('/')}{MASK}@"
        return m.group(0)
    user, colon, _ = info.partition(":")
    # Keep a user name for debugging; a colon-less userinfo may be a bare password (redis://PW@host).
    return f"{m['pre']}{user}:{MASK}@" if colon and user and MASK not in user else f"{m['pre']}{MASK}@"


def _mask_param(m: re.Match) -> str:
    if not m["value"] or not is_secret_name(m["name"], in_url_or_client=True):
        return m.group(0)
    return f"{m['pre']}{MASK}"


def redact(text) -> str:
    """The text with every secret masked. Idempotent; safe on any string."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    text = _registry.sub(text)
    if "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_mask_param, text)
    return _SECRET_PAIR.sub(lambda m: m.group(0) if m["value"] == MASK else f"{m['key']}{m['sep']}{MASK}", text)


def forget_all() -> None:
    """Tests only: start from an empty registry."""
    _registry.clear()


__all__ = ["MASK", "forget_all", "is_secret_name", "redact", "register_config_tree", "register_secret",
           "register_secret_file", "register_url"]
