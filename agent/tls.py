"""The `tls:` block every check shares, and the one SSLContext built from it.

Same keys on every check (Redis, Kafka, Pulsar), validated at load time: files readable,
PEM content where PEM is expected, certificate and key given together, and the pair
actually loadable (a wrong key password or a key that does not match its certificate is
a config error, not a failure at 3 a.m.). Each check maps the section onto its client:
Redis and Pulsar's HTTP endpoints use `client_context()`, librdkafka and pulsar-client
take file paths (see each check's README).
"""

from __future__ import annotations

import ssl

from mqwatch.agent.schema import Bool, Field, Schema, Str

_PATH = Str(r"(\S+)?", "expected a file path")

TLS_KEYS = ("ca_file", "cert_file", "key_file", "key_password_file", "insecure_skip_verify", "server_name")


def configured(tls) -> bool:
    """True when any setting of the block is given (an empty block changes nothing)."""
    return bool(tls.ca_file or tls.cert_file or tls.key_file or tls.insecure_skip_verify or tls.server_name)


def client_context(tls) -> ssl.SSLContext:
    """A client-side context: the CA (or the system store), the client certificate, verification.

    Raises ssl.SSLError or OSError with the cause when a file does not load.
    """
    ctx = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file, password=tls.key_password or None)
    return ctx


def trust_context(tls) -> ssl.SSLContext:
    """For services outside the cluster (an OAuth2 issuer): the system store plus ca_file, no client cert."""
    ctx = ssl.create_default_context()
    if tls is not None and tls.ca_file:
        ctx.load_verify_locations(tls.ca_file)
    if tls is not None and tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_ssl_error(e: BaseException) -> str:
    """A short, secret-free text for a TLS failure (no key material is ever in these)."""
    if isinstance(e, ssl.SSLError):
        return (e.reason or str(e)).replace("_", " ").lower() if e.reason else str(e)
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return f"{type(e).__name__}: {e}"


def _pem_problem(path: str, marker: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)  # a CA bundle is a few hundred KB at most
    except OSError as e:
        return f"cannot read {path!r}: {e.strerror or type(e).__name__}"
    if b"-----BEGIN" not in head or marker.encode() not in head:
        return f"{path!r} holds no PEM {marker.lower()} (expected a -----BEGIN ...{marker}----- block)"
    return None


def _check(section) -> list[tuple[str, str]]:
    problems = []
    for key, marker in (("ca_file", "CERTIFICATE"), ("cert_file", "CERTIFICATE"), ("key_file", "PRIVATE KEY")):
        if section[key]:
            problem = _pem_problem(section[key], marker)
            if problem:
                problems.append((key, problem))
    if bool(section.cert_file) != bool(section.key_file):
        missing = "key_file" if section.cert_file else "cert_file"
        problems.append((missing, "a client certificate needs both cert_file and key_file"))
    if section.key_password and not section.key_file:
        problems.append(("key_password", "key_password_file is only used to decrypt key_file; give key_file too"))
    if section.insecure_skip_verify and section.ca_file:
        problems.append(("insecure_skip_verify", "ca_file is ignored when insecure_skip_verify is true; drop one"))
    if not problems and section.cert_file:
        try:
            client_context(section)
        except (ssl.SSLError, OSError) as e:
            problems.append(("key_file", f"the client certificate and key do not load together "
                                         f"(wrong key_password_file, or a key of another certificate): "
                                         f"{describe_ssl_error(e)}"))
    return problems


SCHEMA = Schema(
    {
        "ca_file": Field(_PATH, "", "PEM bundle of the CAs that sign the server's certificate; empty: the system store"),
        "cert_file": Field(_PATH, "", "PEM client certificate (mutual TLS); needs key_file"),
        "key_file": Field(_PATH, "", "PEM private key of cert_file"),
        # key_password_file is read into key_password by the schema's `<key>_file` convention.
        "key_password": Field(Str(), "", "password of an encrypted key_file; prefer key_password_file", secret=True),
        "insecure_skip_verify": Field(Bool(), False, "do not verify the server's certificate (testing only)"),
        "server_name": Field(Str(r"([A-Za-z0-9.*-]+)?", "expected a host name"), "",
                             "host name expected in the server's certificate (and sent as SNI) when it "
                             "differs from the host mqwatch connects to"),
    },
    check=_check,
)


def field() -> Field:
    return Field(SCHEMA, None, "TLS trust and client certificate for every connection the check makes")
