"""``confstore serve`` under load: one server process (its own CPU when there is one), on SQLite.

Cached GETs: keep-alive connections GET one config over and over (hot in SQLite's page cache
and confstore's validated-key cache), each request authenticated, its tenant checked, read
from the store and serialised. Baseline: a bare aiohttp server process answering the same
bytes from memory, driven by the same client in the same run: the ratio is the share of a
plain aiohttp server's throughput that confstore keeps.

Fan-out: W watchers on /v1/watch (1,000; --quick: 50) while writes are PUT one after another;
every watcher must receive every change. Latency is from just before a PUT is sent to a
watcher's receipt of its event, over every (watcher, change); baseline: the same with one
watcher, so the ratio shows what fanning out to W costs.

Keyed writes: PUTs that each carry a new Idempotency-Key (the server fingerprints the request
and remembers the answer); baseline: the same PUTs without one; the best of two runs each. The machine is shared with other
work: absolute numbers move with its load, ratios less so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from confstore.server import TokenFile

from ._harness import Result

TENANT = "bench"
CONFIG_PATH = f"/v1/tenants/{TENANT}/configs/system/svc/hot"
GET_CONNECTIONS = 16
_VERSION = re.compile(rb'"version":(\d+)')

_BASELINE_SERVER = """
import sys
from aiohttp import web
body = sys.stdin.read().encode()
async def answer(request):
    return web.Response(body=body, content_type="application/json")
async def main():
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"serving on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def _process(*arguments: str, stdin: bytes | None = None) -> AsyncIterator[str]:
    """A server process on its own CPU(s) when the benchmark is pinned; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.close()
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        if "serving on " not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        others = set(range(os.cpu_count() or 1)) - mine
        if others and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(process.pid, others)
        yield line.split("serving on ")[1].strip()
    finally:
        process.kill()
        await process.wait()


class _Connection:
    """A raw keep-alive HTTP/1.1 connection: far cheaper per request than a full client, so the
    client is not what limits the measurement."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> _Connection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def request(self, head: bytes) -> tuple[int, bytes]:
        self.writer.write(head)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in status_and_headers.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return int(status_and_headers[9:12]), body

    def close(self) -> None:
        self.writer.close()


async def _get_rate(url: str, head: bytes, count: int, expected_status: int) -> float:
    """Requests per second of ``count`` requests over GET_CONNECTIONS keep-alive connections."""
    connections = [await _Connection.open(url) for _ in range(GET_CONNECTIONS)]
    per_connection = max(1, count // GET_CONNECTIONS)

    async def drive(connection: _Connection) -> None:
        for _ in range(per_connection):
            status, _ = await connection.request(head)
            if status != expected_status:
                raise RuntimeError(f"unexpected HTTP {status}")

    try:
        await asyncio.gather(*(drive(connection) for connection in connections[:2]))  # warm up
        started = time.perf_counter()
        await asyncio.gather(*(drive(connection) for connection in connections))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return per_connection * GET_CONNECTIONS / elapsed


async def _put_rate(url: str, auth: str, count: int, *, keyed: bool) -> float:
    """Writes per second of ``count`` PUTs (each a new version of one of GET_CONNECTIONS keys)
    over GET_CONNECTIONS keep-alive connections; ``keyed``: each with its own Idempotency-Key."""
    connections = [await _Connection.open(url) for _ in range(GET_CONNECTIONS)]
    per_connection = max(1, count // GET_CONNECTIONS)
    body = b'{"value": {"llm_model": "gpt-4o", "temperature": 0.2, "max_tokens": 512}}'
    prefix = "keyed" if keyed else "plain"
    run = uuid.uuid4().hex  # keys never seen before, so every PUT is written, none replayed

    async def drive(number: int, connection: _Connection) -> None:
        for write in range(per_connection):
            key = f"Idempotency-Key: {run}-{number}-{write}\r\n" if keyed else ""
            head = (
                f"PUT {CONFIG_PATH.replace('hot', f'{prefix}-{number}')} HTTP/1.1\r\n"
                f"Host: bench\r\n{auth}{key}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            status, _ = await connection.request(head + body)
            if status not in (200, 201):
                raise RuntimeError(f"unexpected HTTP {status}")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(drive(n, connection) for n, connection in enumerate(connections)))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return per_connection * GET_CONNECTIONS / elapsed


async def _put_rates(url: str, auth: str, count: int) -> tuple[float, float]:
    """The best of two runs each of plain and keyed PUTs, in alternating order (plain, keyed,
    keyed, plain), so neither gains from coming second on a shared machine."""
    plain: list[float] = []
    keyed: list[float] = []
    for keyed_first in (False, True):
        for is_keyed in (keyed_first, not keyed_first):
            rate = await _put_rate(url, auth, count, keyed=is_keyed)
            (keyed if is_keyed else plain).append(rate)
    return max(plain), max(keyed)


class _Watcher:
    """One /v1/watch stream; records when each change's event arrived."""

    def __init__(self, expected: int) -> None:
        self.received: dict[int, float] = {}
        self.expected = expected
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def follow(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                f"GET /v1/watch?tenant={TENANT} HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            await reader.readuntil(b"\r\n\r\n")
            pending = b""
            while chunk := await reader.read(1 << 16):
                # Whole events only (a read may end inside one); a regex, not a parser, so the
                # client's own work stays small next to the server's.
                complete, _, pending = (pending + chunk).rpartition(b"\n\n")
                if b"event: ready" in complete:
                    self.ready.set()
                arrived = time.perf_counter()
                for version in _VERSION.findall(complete):
                    self.received.setdefault(int(version), arrived)
                if len(self.received) >= self.expected:
                    self.complete.set()
        finally:
            writer.close()


async def _fan_out(url: str, token: str, watchers: int, writes: int) -> tuple[float, int]:
    """p99 seconds from sending a write to a watcher receiving it, and how many watchers got
    every write."""
    followers = [_Watcher(writes) for _ in range(watchers)]
    for follower in followers:
        follower.task = asyncio.create_task(follower.follow(url, token))
    async with asyncio.timeout(120):
        await asyncio.gather(*(follower.ready.wait() for follower in followers))
    writer = await _Connection.open(url)
    sent: dict[int, float] = {}
    try:
        for version in range(1, writes + 1):
            body = json.dumps({"value": {"version": version}}).encode()
            head = (
                f"PUT {CONFIG_PATH.replace('hot', 'fanned')} HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            sent_at = time.perf_counter()
            _, answer = await writer.request(head)
            sent[json.loads(answer)["version"]] = sent_at
            await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):  # those still incomplete then are counted as such
                await asyncio.gather(*(follower.complete.wait() for follower in followers))
    finally:
        writer.close()
        for follower in followers:
            assert follower.task is not None
            follower.task.cancel()
        await asyncio.gather(
            *(follower.task for follower in followers if follower.task), return_exceptions=True
        )
    latencies = [
        received - sent[version]
        for follower in followers
        for version, received in follower.received.items()
        if version in sent
    ]
    complete = sum(len(follower.received) >= writes for follower in followers)
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else 0.0, complete


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(quick: bool) -> list[Result]:
    _raise_file_limit()
    gets = 1_000 if quick else 20_000
    watchers = 50 if quick else 1_000
    writes = 3 if quick else 20
    puts = 160 if quick else 4_000
    with tempfile.TemporaryDirectory() as directory:
        tokens = TokenFile(Path(directory) / "tokens.json")
        token, _ = tokens.create("bench", "admin", ["*"])
        auth = f"Authorization: Bearer {token}\r\n"
        serve = (
            sys.executable,
            "-m",
            "confstore.cli",
            "--url",
            f"sqlite:///{Path(directory) / 'bench.db'}",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tokens",
            str(tokens.path),
        )
        async with _process(*serve) as url:
            writer = await _Connection.open(url)
            body = b'{"value": {"llm_model": "gpt-4o", "temperature": 0.2, "max_tokens": 512}}'
            _, entry = await writer.request(
                f"PUT {CONFIG_PATH} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            writer.close()
            get = f"GET {CONFIG_PATH} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode()
            conditional = f'GET {CONFIG_PATH} HTTP/1.1\r\nHost: bench\r\n{auth}If-None-Match: "1"\r\n\r\n'.encode()
            confstore_gets = await _get_rate(url, get, gets, 200)
            not_modified = await _get_rate(url, conditional, gets, 304)
            plain_puts, keyed_puts = await _put_rates(url, auth, puts)
            one_watcher, _ = await _fan_out(url, token, 1, writes)
            p99, complete = await _fan_out(url, token, watchers, writes)
        baseline_server = (sys.executable, "-c", _BASELINE_SERVER)
        async with _process(*baseline_server, stdin=entry) as baseline_url:
            plain = f"GET {CONFIG_PATH} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
            baseline_gets = await _get_rate(baseline_url, plain, gets, 200)
    get_note = f"{GET_CONNECTIONS} keep-alive connections; baseline: bare aiohttp, same bytes"
    return [
        Result(
            "server GET of a hot config (requests/s)",
            confstore_gets,
            baseline_gets,
            "req/s",
            note=get_note,
        ),
        Result(
            "server GET with If-None-Match, 304 (requests/s)",
            not_modified,
            baseline_gets,
            "req/s",
            note=get_note,
        ),
        Result(
            "server PUT with an Idempotency-Key (writes/s)",
            keyed_puts,
            plain_puts,
            "writes/s",
            note=f"{GET_CONNECTIONS} connections, a new key each; baseline: the same PUTs "
            "without a key",
        ),
        Result(
            f"server fan-out p99, {watchers} SSE watchers (ms)",
            p99 * 1000,
            one_watcher * 1000,
            "ms",
            higher_is_better=False,
            note=f"{writes} writes; baseline: p99 with one watcher",
        ),
        Result(
            f"server watchers that got all {writes} changes",
            complete,
            watchers,
            "watchers",
            target=1.0,
            note="every watcher must receive every change",
        ),
    ]
