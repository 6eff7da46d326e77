"""A private CA, server and client certificates made with the openssl CLI, for TLS tests.

Two unrelated CAs: `ca` signs the server and client certificates, `other_ca` signs nothing
the servers present, so trusting it is "the wrong CA". The client key also exists encrypted
with a password (key_password_file). EC keys: made in milliseconds on a loaded machine.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

KEY_PASSWORD = "s3cret-key-pass"


@dataclass(frozen=True)
class Pki:
    dir: str
    ca: str
    other_ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    client_key_encrypted: str
    key_password_file: str


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, cwd: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=mqwatch test {name}",
             cwd=cwd)


def _leaf(name: str, cn: str, ext: str, cwd: str) -> None:
    with open(os.path.join(cwd, f"{name}.ext"), "w") as fh:
        fh.write(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


def make_pki(directory: str) -> Pki:
    _ca("ca", directory)
    _ca("other_ca", directory)
    _leaf("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth", directory)
    _leaf("client", "mqwatch", "extendedKeyUsage=clientAuth", directory)
    _openssl("pkey", "-in", "client.key", "-aes256", "-passout", f"pass:{KEY_PASSWORD}", "-out", "client-enc.key",
             cwd=directory)
    with open(os.path.join(directory, "key-password"), "w") as fh:
        fh.write(KEY_PASSWORD + "\n")
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    return Pki(directory, p("ca.pem"), p("other_ca.pem"), p("server.pem"), p("server.key"), p("client.pem"),
               p("client.key"), p("client-enc.key"), p("key-password"))
