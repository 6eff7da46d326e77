"""A TLS-terminating TCP proxy for tests: TLS (optionally mutual) in front, plaintext behind.

tansu 0.6 cannot terminate TLS itself and pulsar-lite and the admin fixture speak plain
HTTP, so tests put this proxy in front of them to exercise the agent's TLS settings
against a real TLS handshake (Python's ssl module, i.e. OpenSSL, on the server side).
"""

from __future__ import annotations

import asyncio
import ssl
import threading

from mqwatch.agent.embedded import free_port


def server_context(pki, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


class TlsProxy:
    def __init__(self, target_port: int, context: ssl.SSLContext, port: int | None = None):
        self.target_port, self.context = target_port, context
        self.port = port or free_port()
        self.connections = 0  # TLS handshakes completed (asyncio calls the handler only after one)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tls-proxy-{self.port}", daemon=True)

    def start(self) -> TlsProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(lambda loop, ctx: None)  # failed handshakes are the point of some tests
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, client_reader, client_writer) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    writer.close()
                except Exception:
                    pass

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
