"""The pulsar-client connection shared by the canary and DLQ sampling of one check."""

from __future__ import annotations

import base64
import json
import logging

import pulsar

from mqwatch.agent import tls as tlsconf

# pulsar-client logs INFO lines to stdout unless handed a Python logger.
CLIENT_LOGGER = logging.getLogger("mqwatch.pulsar.client")


def authentication(auth, tls):
    """Pulsar's own providers: a token, OAuth2 client credentials, or the TLS client certificate (mTLS)."""
    if auth.token:
        return pulsar.AuthenticationToken(auth.token)
    o = auth.oauth2
    if o.issuer_url:
        # pulsar-client reads client_id/client_secret from `private_key`, here a data: URL so
        # the secret never touches the disk.
        credentials = json.dumps({"client_id": o.client_id, "client_secret": o.client_secret}).encode()
        params = {"type": "client_credentials", "issuer_url": o.issuer_url,
                  "private_key": "data:application/json;base64," + base64.b64encode(credentials).decode()}
        if o.audience:
            params["audience"] = o.audience
        if o.scope:
            params["scope"] = o.scope
        return pulsar.AuthenticationOauth2(json.dumps(params))
    if tls.cert_file:
        return pulsar.AuthenticationTLS(tls.cert_file, tls.key_file)
    return None


def tls_options(tls) -> dict:
    """pulsar-client's TLS settings from the `tls:` block (used with a pulsar+ssl:// service_url)."""
    if not tlsconf.configured(tls):
        return {}
    options = {
        "tls_allow_insecure_connection": tls.insecure_skip_verify,
        "tls_validate_hostname": not tls.insecure_skip_verify,
    }
    if tls.ca_file:
        options["tls_trust_certs_file_path"] = tls.ca_file
    if tls.cert_file:
        options["tls_certificate_file_path"] = tls.cert_file
        options["tls_private_key_file_path"] = tls.key_file
    return options


def connect(service_url: str, auth, tls, timeout: float) -> pulsar.Client:
    seconds = max(1, int(timeout))
    return pulsar.Client(
        service_url,
        authentication=authentication(auth, tls),
        operation_timeout_seconds=seconds,
        connection_timeout_ms=int(max(0.2, timeout) * 1000),
        logger=CLIENT_LOGGER,
        **tls_options(tls),
    )
