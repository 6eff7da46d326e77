"""The pulsar-client connection shared by the canary and DLQ sampling of one check."""

from __future__ import annotations

import base64
import json
import logging
from collections import deque

import pulsar

from agent import tls as tlsconf

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


class ClientProblems(logging.Handler):
    """The latest warning or error pulsar-client logged for one check.

    pulsar-client's exceptions only say `ConnectError`; its log says why (`Handshake failed:
    certificate verify failed`), so failures of the canary and DLQ sampling quote this line.
    """

    CAUSES = ("Handshake", "certificate", "uthentic", "uthoriz")

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: deque = deque(maxlen=8)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage()[:300])

    def explain(self, message: str) -> str:
        """The message with the line that says why: a TLS or auth line if any, else the first."""
        lines = list(self.lines)
        self.lines.clear()
        if not lines:
            return message
        why = next((ln for ln in lines if any(c in ln for c in self.CAUSES)), lines[0])
        return f"{message} (pulsar-client: {why})"


def connect(service_url: str, auth, tls, timeout: float, problems: ClientProblems | None = None) -> pulsar.Client:
    seconds = max(1, int(timeout))
    logger = CLIENT_LOGGER
    if problems is not None:
        # A logger of this client's own (outside the registry, so nothing accumulates across
        # reloads) that still writes through mqwatch.pulsar.client.
        logger = logging.Logger(CLIENT_LOGGER.name)
        logger.parent = CLIENT_LOGGER
        logger.addHandler(problems)
    return pulsar.Client(
        service_url,
        authentication=authentication(auth, tls),
        operation_timeout_seconds=seconds,
        connection_timeout_ms=int(max(0.2, timeout) * 1000),
        logger=logger,
        **tls_options(tls),
    )
