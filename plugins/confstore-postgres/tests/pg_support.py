"""Test helpers: a TCP proxy that can lose a server's answer, and a writer run as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

WRITER_SCRIPT = Path(__file__).with_name("_pg_writer.py")
# Commits still write their WAL to the operating system before they are acknowledged, so a
# killed server (the fault tests) loses nothing acknowledged; only power-loss durability, which is
# PostgreSQL's own and not under test, is given up for speed on a disk shared with other work.
TEST_SETTINGS = {"fsync": "off"}


def with_options(url: str, **options: str) -> str:
    """``url`` with query options added."""
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


class LossyProxy:
    """Forwards 127.0.0.1:port to a server; ``lose_answer_to(marker)`` makes it close both sides
    of the first connection that sends ``marker``, just before the server's answer reaches the
    client: the statement ran on the server, the client never hears how it went."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._marker: bytes | None = None
        self.lost = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def lose_answer_to(self, marker: bytes) -> None:
        self._marker = marker
        self.lost.clear()

    async def __aenter__(self) -> LossyProxy:
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

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    armed.set()
                server_out.write(data)
                await server_out.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if armed.is_set():
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
            for writer in (client_out, server_out):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self._tasks.discard(task)


async def run_writers(url: str, processes: int, writes: int, config_key: str) -> list[str]:
    """Start ``processes`` writer subprocesses at once, each writing ``writes`` versions of one
    key; return their outputs (one ``version value`` line per acknowledged write)."""
    started = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER_SCRIPT),
            url,
            config_key,
            str(writes),
            f"p{number}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for number in range(processes)
    ]
    outputs = []
    for process in started:
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        outputs.append(stdout.decode())
    return outputs


@contextlib.asynccontextmanager
async def writer_process(
    url: str, config_key: str, writes: int, name: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A writer subprocess that waits for a line on stdin before each write."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER_SCRIPT),
        url,
        config_key,
        str(writes),
        name,
        "--step",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
