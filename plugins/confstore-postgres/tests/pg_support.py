"""Test helpers: a TCP proxy that can lose a server's answer, a writer run as a subprocess, and a
blocker that holds a key's write lock so the store's next write stays in flight."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg

from confstore.emulation import LossyProxy as LossyProxy

WRITER_SCRIPT = Path(__file__).with_name("_pg_writer.py")
# Commits still write their WAL to the operating system before they are acknowledged, so a
# killed server (the fault tests) loses nothing acknowledged; only power-loss durability, which is
# PostgreSQL's own and not under test, is given up for speed on a disk shared with other work.
TEST_SETTINGS = {"fsync": "off"}


def with_options(url: str, **options: str) -> str:
    """``url`` with query options added."""
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def run_writers(
    url: str, processes: int, writes: int, config_key: str, *, tasks: int | None = None
) -> list[str]:
    """Start ``processes`` writer subprocesses at once, each writing ``writes`` versions of one
    key; return their outputs (one ``version value`` line per acknowledged write). With ``tasks``,
    each process runs that many concurrent writers on four keys (see ``_pg_writer.py``)."""
    options = [] if tasks is None else ["--tasks", str(tasks)]
    started = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER_SCRIPT),
            url,
            config_key,
            str(writes),
            f"p{number}",
            *options,
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


@contextlib.asynccontextmanager
async def holding_write_lock(
    connection: asyncpg.Connection, key: Sequence[str]
) -> AsyncIterator[None]:
    """Hold the write lock of ``key`` (tenant, scope, service, config_key) in a transaction on
    ``connection`` (not the store's) until the block ends: the store's writes of it wait."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(
            "SELECT pg_advisory_xact_lock(x'636F6E66'::int, hashtext($1))", "/".join(key)
        )
        yield
    finally:
        if not connection.is_closed():
            await transaction.rollback()


async def wait_for_lock_waiters(connection: asyncpg.Connection, count: int) -> None:
    """Return once ``count`` server sessions wait for a write lock."""
    async with asyncio.timeout(30):
        # PostgreSQL announces no "a session started waiting": look until it shows.
        while (  # noqa: ASYNC110
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
            )
            != count
        ):
            await asyncio.sleep(0.01)
