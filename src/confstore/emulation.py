"""Building blocks for in-process emulators of HTTP backends, for tests and benchmarks.

``LoopbackServer`` serves a subclass's ``handle`` method with aiohttp.web on 127.0.0.1 and a free
port chosen at run time (HTTPS when given a server SSL context), as an async context manager;
``sequential_rounds`` counts the round trips a request log shows, the measure of a backend's
round-trip budget. Both plugin emulators (Vespa, Elasticsearch) are built on them, and a
third-party HTTP backend may build its own the same way. Nothing here is needed at run time.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol, Self

from aiohttp import web

MAX_REQUEST_BYTES = 64 * 1024 * 1024


class TimedRequest(Protocol):
    """A logged request: when it started and finished (``time.perf_counter()``)."""

    @property
    def started(self) -> float: ...

    @property
    def finished(self) -> float | None: ...


def sequential_rounds(requests: Iterable[TimedRequest]) -> int:
    """How many sequential waves ``requests`` took: requests in flight at the same time share a
    wave (a client's parallel requests); a request that starts after every request of the
    current wave finished starts the next one."""
    rounds = 0
    wave_end = float("-inf")
    for request in sorted(requests, key=lambda logged: logged.started):
        finished = request.finished if request.finished is not None else request.started
        if request.started >= wave_end:
            rounds += 1
            wave_end = finished
        else:
            wave_end = max(wave_end, finished)
    return rounds


class LoopbackServer(abc.ABC):
    """An aiohttp.web server on 127.0.0.1 whose every request goes to ``handle``.

    ``start()`` listens on a free port (the same one again after a ``stop()``) and returns the
    base URL; ``async with`` starts and stops it.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``); RuntimeError before ``start()``."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    async def start(self) -> str:
        """Listen on 127.0.0.1 and return the base URL."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port or 0, ssl_context=self.ssl_context)
        await site.start()
        server: Any = site._server
        self._port = int(server.sockets[0].getsockname()[1])
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @abc.abstractmethod
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request."""
