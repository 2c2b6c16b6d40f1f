"""Shared timing helpers and the result row every benchmark returns."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from confstore import ConfigStore

_T = TypeVar("_T")

# Every CPU the process could use before ``python -m benchmarks`` pinned it (None: unknown).
ALL_CPUS: frozenset[int] | None = None


@dataclass(frozen=True)
class Result:
    """One row of the table: confstore's figure against a baseline measured in the same run.

    ``ratio`` is always "how many times better than the baseline" (higher is better), so a
    throughput row divides confstore by baseline and a latency row divides baseline by confstore.
    ``target`` is the ratio the issue asks for (None when the row is informational).
    """

    name: str
    value: float
    baseline: float
    unit: str
    higher_is_better: bool = True
    target: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.value / self.baseline if self.baseline else float("inf")
        return self.baseline / self.value if self.value else float("inf")

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


async def measure_rate(operation: Callable[[], Awaitable[object]], count: int) -> float:
    """Operations per second of ``count`` sequential awaits of ``operation``."""
    started = time.perf_counter()
    for _ in range(count):
        await operation()
    return count / (time.perf_counter() - started)


async def median_seconds(
    operation: Callable[[], Awaitable[object]], count: int, *, batch: int = 100
) -> float:
    """Median seconds per call, timing batches of ``batch`` calls to keep timer overhead out."""
    samples = []
    for _ in range(max(1, count // batch)):
        started = time.perf_counter()
        for _ in range(batch):
            await operation()
        samples.append((time.perf_counter() - started) / batch)
    return statistics.median(samples)


async def concurrent_write_rate(
    store: ConfigStore, writers: int, writes_each: int, *, one_key: bool
) -> float:
    """Writes per second of ``writers`` concurrent tasks each writing ``writes_each`` versions,
    to one shared key or to a key of their own."""

    async def write_many(writer: int) -> None:
        config_key = "shared" if one_key else f"key-{writer}"
        for count in range(writes_each):
            await store.set_config(
                "bench", "system", "svc", config_key, {"writer": writer, "count": count}
            )

    started = time.perf_counter()
    await asyncio.gather(*(write_many(writer) for writer in range(writers)))
    return writers * writes_each / (time.perf_counter() - started)


async def run_unpinned(body: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``body()`` in an event loop of its own, in a thread allowed on every CPU.

    On Linux ``sched_setaffinity(0, ...)`` sets the calling thread's affinity, which threads it
    starts later inherit: the store's and aiosqlite's threads then run where the kernel puts them.
    """
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def in_thread() -> None:
        if ALL_CPUS is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, ALL_CPUS)
        try:
            outcome.append(asyncio.run(body()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=in_thread, name="benchmark-unpinned")
    thread.start()
    await asyncio.to_thread(thread.join)
    if failure:
        raise failure[0]
    return outcome[0]
