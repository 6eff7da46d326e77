"""A throw-away PKI made with the openssl command line: a CA, a server certificate for
127.0.0.1/::1/localhost, a client certificate, and an unrelated CA with its own client."""

import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}", cwd=d)


def _leaf(d, name, ca, san=None):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name, cwd=d)


def make_pki(d):
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "ca", san="IP:127.0.0.1,IP:::1,DNS:localhost")
    _leaf(d, "client", "ca")
    _leaf(d, "intruder", "other-ca")
    return d
