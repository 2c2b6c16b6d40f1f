"""Building blocks for in-process emulators of HTTP backends, for tests and benchmarks.

``LoopbackServer`` serves a subclass's ``handle`` method with aiohttp.web on 127.0.0.1 and a free
port chosen at run time (HTTPS when given a server SSL context), as an async context manager;
``sequential_rounds`` counts the round trips a request log shows, the measure of a backend's
round-trip budget. Both plugin emulators (Vespa, Elasticsearch) are built on them, and a
third-party HTTP backend may build its own the same way. ``LossyProxy`` sits in front of a real
server and loses its answer to a chosen request, so a backend's handling of a write whose
outcome is unknown can be tested. Nothing here is needed at run time.
"""

from __future__ import annotations

import abc
import asyncio
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


class LossyProxy:
    """A TCP proxy from a free port of 127.0.0.1 to ``127.0.0.1:target_port``.

    After ``lose_answer_to(marker, times=n)``, each of the next ``n`` connections that send
    ``marker`` is closed on both sides just before the server's answer reaches the client: the
    server acted on the request, the client never hears how it went. ``seen`` counts the sends
    of ``marker`` (retries included), ``losses`` the answers lost, and ``lost`` is set at each.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.seen = 0
        self.losses = 0
        self.lost = asyncio.Event()
        self._marker: bytes | None = None
        self._to_lose = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def lose_answer_to(self, marker: bytes, *, times: int = 1) -> None:
        self._marker = marker
        self._to_lose = times
        self.seen = 0
        self.lost.clear()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _sends_marker(self, data: bytes) -> bool:
        """Count a send of the marker; True when its answer is to be lost."""
        if self._marker is None or self._marker not in data:
            return False
        self.seen += 1
        if self._to_lose == 0:
            return False
        self._to_lose -= 1
        return True

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
            try:
                await self._relay(client_in, client_out, server_in, server_out)
            finally:
                server_out.close()
        except OSError:
            pass  # the server is gone or the client went away: the connection ends either way
        finally:
            # Closed without waiting: when the proxy stops, a wait could be cut short.
            client_out.close()
            self._tasks.discard(task)

    async def _relay(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        server_in: asyncio.StreamReader,
        server_out: asyncio.StreamWriter,
    ) -> None:
        """Pass bytes both ways until either side ends, or an answer is to be lost."""
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if self._sends_marker(data):
                    armed.set()
                server_out.write(data)
                await server_out.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if armed.is_set():
                    self.losses += 1
                    self.lost.set()
                    return
                client_out.write(data)
                await client_out.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
