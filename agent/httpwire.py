"""Reading an HTTP/1.x request head, bounded: the request line and the header fields.

The server (agent.server) runs in the serving child (agent.front), whose memory the agent's
budget counts. http.server would bring http.client and the email package for this alone:
3.6 MB of the child's 11.4 MB. What a scrape endpoint needs of the head is this much, with
the limits http.server applies (64 KiB per line, 100 fields) and the answers it gives.
"""

from __future__ import annotations

from http import HTTPStatus

TEXT = "text/plain; charset=utf-8"
MAX_LINE = 65536
MAX_FIELDS = 100


class BadRequest(Exception):
    """The request cannot be served; `code` is the answer (400, 414, 431, 505)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Headers:
    """Header fields by case-insensitive name, in the order received."""

    def __init__(self, fields: list[tuple[str, str]]):
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self._fields if k == name), default)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._fields if k == name]


class Request:
    def __init__(self, method: str, target: str, version: tuple[int, int], headers: Headers):
        self.method, self.target, self.version, self.headers = method, target, version, headers

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")}
        if "close" in tokens:
            return False
        return self.version >= (1, 1) or "keep-alive" in tokens


def read_request(rfile) -> Request | None:
    """The next request head from a buffered reader, or None when the client closed first.
    BadRequest when it is malformed or over a limit."""
    line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    words = line.decode("iso-8859-1").rstrip("\r\n").split()
    if len(words) != 3:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, raw_version = words
    version = _version(raw_version)
    fields: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(fields) == MAX_FIELDS:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_FIELDS} header fields")
        name, sep, value = line.decode("iso-8859-1").partition(":")
        # No folded lines (RFC 9112 5.2 lets a server refuse them) and no space before the
        # colon (5.1 says it must): both are how requests get smuggled past proxies.
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "bad header line")
        fields.append((name.lower(), value.strip()))
    return Request(method, target, version, Headers(fields))


def _version(raw: str) -> tuple[int, int]:
    name, _, number = raw.partition("/")
    major, dot, minor = number.partition(".")
    if name != "HTTP" or not dot or not major.isdigit() or not minor.isdigit() or len(major) > 3 or len(minor) > 3:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request version {raw[:20]!r}")
    version = int(major), int(minor)
    if version >= (2, 0):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"HTTP version {number} is not supported")
    return version


class Reply:
    """An answer the agent built for the server to send (agent.backend)."""

    __slots__ = ("code", "content_type", "body")

    def __init__(self, code: int, content_type: str, body: bytes):
        self.code, self.content_type, self.body = code, content_type, body


def status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {int(code)} {phrase}\r\n".encode("latin-1")
