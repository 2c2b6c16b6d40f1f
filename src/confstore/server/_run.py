"""Running the server: ``confstore serve`` until SIGTERM or SIGINT, and ``running_server`` for
tests and benchmarks (an in-process server on a free loopback port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from aiohttp import web

from .._errors import InvalidConfigError
from .._store import ConfigStore
from ._app import create_app
from ._auth import Authenticator, FailureThrottle
from ._http import ApiError, api_error_kind, problem, security_headers
from ._settings import ServerSettings
from ._tokens import TokenFile

logger = logging.getLogger("confstore.server")


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; port 0 picks a free one)."""
    host, colon, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidConfigError(
            f"--bind must be HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}", field="bind"
        )
    return host, int(port_text)


def server_tls(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    if cert_file is None:
        if key_file is not None:
            raise InvalidConfigError("--tls-key needs --tls-cert", field="tls_cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfigError(
            f"cannot load the TLS certificate: {exc}", field="tls_cert"
        ) from exc
    return context


class _ApiRequestHandler(web.RequestHandler):
    """A connection whose own answers (a request aiohttp cannot parse: a bad request line, a
    header over the limit, a malformed header) are the API's JSON problems, not plain text."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # aiohttp's answer is dropped: its call logs the traceback, raises if one has begun.
            super().handle_error(request, status, exc, message)
            message = "internal error (see the server log)"
        else:
            # The client's mistake, not the server's: one debug line, not a traceback per request
            # (anyone who can connect could fill the log with them).
            logger.debug("confstore: unparsable request from %s: %s", request.remote, message)
            if request.writer.output_size > 0:
                raise ConnectionError("an answer has begun: no error answer can follow")
        response = problem(ApiError(status, api_error_kind(status), message or "bad request"))
        security_headers(response)
        response.force_close()
        return response


class _ApiServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _ApiRequestHandler(self, loop=self._loop, **self._kwargs)


class _ApiRunner(web.AppRunner):
    """An AppRunner whose connections are _ApiRequestHandler: aiohttp offers no public way to
    choose the handler class, so the server it makes is rebuilt as an _ApiServer."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _ApiServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )


def authenticator_for(token_file: TokenFile, settings: ServerSettings) -> Authenticator:
    throttle = FailureThrottle(
        burst=settings.auth_burst, refill_seconds=settings.auth_refill_seconds
    )
    return Authenticator(token_file, throttle)


async def start(
    app: web.Application,
    host: str,
    port: int,
    settings: ServerSettings,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, str]:
    """Start ``app`` on host:port; return its runner and base URL (with the port really bound)."""
    runner = _ApiRunner(
        app,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        # A connection must deliver each request's headers within client_timeout (from when
        # it opens or its previous answer ends), else it is closed: slow clients hold nothing.
        keepalive_timeout=settings.client_timeout,
        max_line_size=settings.max_header_line,
        max_field_size=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if ssl_context is not None else "http"
    return runner, f"{scheme}://{shown}:{bound_port}"


@contextlib.asynccontextmanager
async def running_server(
    store: ConfigStore,
    tokens_path: str | Path,
    settings: ServerSettings | None = None,
    *,
    close_store: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """An in-process server for ``store`` on a free port of 127.0.0.1; yields its base URL."""
    settings = settings or ServerSettings()
    authenticator = authenticator_for(TokenFile(tokens_path), settings)
    app = create_app(store, authenticator, settings, close_store=close_store)
    runner, url = await start(app, "127.0.0.1", 0, settings, ssl_context)
    try:
        yield url
    finally:
        await runner.cleanup()


async def serve(
    store: ConfigStore,
    tokens_path: str | Path,
    bind: str,
    settings: ServerSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    announce: TextIO = sys.stdout,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully: stop accepting, end the event
    streams, give in-flight requests ``shutdown_timeout`` seconds, close the store."""
    host, port = parse_bind(bind)
    authenticator = authenticator_for(TokenFile(tokens_path), settings)
    app = create_app(store, authenticator, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        runner, url = await start(app, host, port, settings, ssl_context)
        try:
            print(f"confstore: serving on {url}", file=announce, flush=True)
            await stop.wait()
            print("confstore: shutting down", file=announce, flush=True)
        finally:
            await runner.cleanup()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
