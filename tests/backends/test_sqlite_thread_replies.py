"""The store's threads reply through a descriptor the loop watches: nothing leaks, nothing spins."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from confstore.backends._sqlite_thread import _detach, _LoopReplies
from confstore.backends.sqlite import SQLiteConfigStore

VALUE = {"answer": 42}


# Run in a process of its own: the test process's descriptors also open and close with whatever
# else runs there (another test's leftovers closing, garbage collected, in threads of their own),
# which moved the count by one under a loaded machine.
CYCLES = """
import asyncio, os, sys
from confstore.backends.sqlite import SQLiteConfigStore

def descriptors():
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed since
    return found

async def cycle():
    async with SQLiteConfigStore(sys.argv[1]) as store:
        await store.set_config("t", "system", "svc", "key", {"answer": 42})
        assert await store.get_config("t", "system", "svc", "key") is not None

asyncio.run(cycle())
before = descriptors()
for _ in range(5):
    asyncio.run(cycle())
after = descriptors()
print(len(before), len(after))
print({fd: target for fd, target in after.items() if before.get(fd) != target})
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_stores_opened_and_closed_in_many_loops_leave_no_descriptor_open(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CYCLES, str(tmp_path / "cycle.db")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    counts, opened = result.stdout.splitlines()
    before, after = map(int, counts.split())
    assert after == before, f"left open: {opened}"


def test_one_store_serves_a_second_loop_after_the_first_closed(tmp_path: Path) -> None:
    store = SQLiteConfigStore(tmp_path / "two-loops.db")

    async def first() -> None:
        await store.initialize()
        await store.set_config("t", "system", "svc", "key", VALUE)

    async def second() -> int:
        try:
            await store.set_config("t", "system", "svc", "key", {"answer": 43})
            entry = await store.get_config("t", "system", "svc", "key")
            assert entry is not None
            return entry.version
        finally:
            await store.close()

    asyncio.run(first())
    assert asyncio.run(second()) == 2


async def test_a_loop_in_another_thread_is_answered_while_the_first_loop_runs(
    tmp_path: Path,
) -> None:
    async with SQLiteConfigStore(tmp_path / "threads.db") as store:
        await store.set_config("t", "system", "svc", "key", VALUE)
        versions: list[int] = []

        def other_thread() -> None:
            async def body() -> None:
                entry = await store.set_config("t", "system", "svc", "other", VALUE)
                versions.append(entry.version)
                read = await store.get_config("t", "system", "svc", "key")
                assert read is not None
                versions.append(read.version)

            asyncio.run(body())

        thread = threading.Thread(target=other_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert versions == [1, 1]


async def test_an_open_idle_store_uses_no_cpu(tmp_path: Path) -> None:
    async with SQLiteConfigStore(tmp_path / "idle.db") as store:
        await store.set_config("t", "system", "svc", "key", VALUE)
        started = time.process_time()
        await asyncio.sleep(1.0)
        used = time.process_time() - started
    # Every thread of the process counts: an idle store's threads sleep on their queues.
    assert used < 0.05, f"an idle store used {used:.3f} s of CPU in 1 s"


async def test_a_cancelled_write_and_read_leave_the_store_working(tmp_path: Path) -> None:
    async with SQLiteConfigStore(tmp_path / "cancel.db") as store:
        writes = [
            asyncio.create_task(store.set_config("t", "system", "svc", "key", {"n": n}))
            for n in range(20)
        ]
        read = asyncio.create_task(store.get_config_history("t", "system", "svc", "key"))
        await asyncio.sleep(0)
        writes[10].cancel()
        read.cancel()
        outcomes = await asyncio.gather(*writes, read, return_exceptions=True)
        assert isinstance(outcomes[-1], asyncio.CancelledError)
        committed = [outcome for outcome in outcomes[:-1] if not isinstance(outcome, BaseException)]
        latest = await store.get_config("t", "system", "svc", "key")
        assert latest is not None
        # Versions stay contiguous: a cancelled write either committed or never ran.
        assert latest.version == len(
            await store.get_config_history("t", "system", "svc", "key", 100)
        )
        assert latest.version >= len(committed)


async def test_no_reply_is_lost_when_the_worker_signals_while_the_loop_drains() -> None:
    """A worker replying as fast as it can races the loop's drain on every reply; before the
    drain read its signal before clearing the flag, a reply sent in between never woke the loop
    (a store's await hung forever, seen as a CLI process that never exited)."""
    loop = asyncio.get_running_loop()
    replies = _LoopReplies.attach(loop)
    assert replies is not None
    expected = 20_000
    received: list[int] = []
    all_received = loop.create_future()

    def callback(context: object, result: int, error: BaseException | None) -> None:
        received.append(result)
        if len(received) == expected:
            all_received.set_result(None)

    def worker() -> None:
        for number in range(expected):
            replies.send(callback, None, number, None)
            time.sleep(0)  # let the loop's drain run between replies

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        async with asyncio.timeout(30):
            await all_received
    finally:
        thread.join()
        replies.send(_detach, replies, None, None)
        await asyncio.sleep(0.05)
    assert received == list(range(expected))
