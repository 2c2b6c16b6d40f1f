"""The etcd store against raw etcd calls through the same transport, on a real three-member
cluster started for the run (``confstore_etcd.cluster``, free loopback ports).

- latest read: ``get_config`` (no cache) against one raw linearizable ``/v3/kv/range`` of a key.
- sequential write: ``set_config`` against one raw ``/v3/kv/put`` (no versioning, no guard).
- 64 concurrent writers on 64 keys: ``set_config`` against 64 tasks doing raw puts.
  Both sides use the same ``confstore.http.HttpClient`` (aiohttp) to the same member (the
  leader, where the store sends its requests).
- watch propagation: another process follows ``ConfigManager.watch()`` (poll interval 60 s, so
  only the watch stream can bring changes in time); this process writes one version at a time
  and waits for it to arrive. The time from before the write to the event, p50 and p99, against
  the 50 ms the issue sets for p99, and against a raw etcd watch stream in another process
  measured the same way. Both processes read CLOCK_MONOTONIC, which is system wide on Linux.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable

from confstore_etcd import EtcdConfigStore
from confstore_etcd.cluster import EtcdCluster

from confstore import open_store
from confstore.http import HttpClient

from ._harness import Result, concurrent_write_rate, measure_rate

CONCURRENT_WRITERS = 64
P99_BUDGET_MS = 50.0
_VALUE = {"llm_model": "model-a", "temperature": 0.2, "max_tokens": 512, "tags": ["a", "b"]}
_IDENTITY = ("bench", "system", "svc", "settings")
_UNPIN = "import os\nif hasattr(os, 'sched_setaffinity'):\n    os.sched_setaffinity(0, range(os.cpu_count() or 1))\n"

# Another process: a ConfigManager following the feed, printing "version monotonic-time".
_MANAGER_WATCHER = _UNPIN + textwrap.dedent(
    """
    import asyncio, sys, time
    from confstore import ConfigManager

    async def main():
        async with ConfigManager(url=sys.argv[1], poll_interval=60) as manager:
            await manager.get_system_config("bench")
            watch = manager.watch(tenant_id="bench")
            await manager.refresh()
            print("ready", flush=True)
            async for event in watch:
                print(event.version, time.monotonic(), flush=True)

    asyncio.run(main())
    """
)

# Another process: a raw etcd watch of one key, printing "version monotonic-time".
_RAW_WATCHER = _UNPIN + textwrap.dedent(
    """
    import asyncio, base64, json, sys, time
    from confstore.http import HttpClient

    async def main():
        key = base64.b64encode(sys.argv[2].encode()).decode()
        async with HttpClient(sys.argv[1]) as client, client.stream(
            "POST", "v3/watch", json_body={"create_request": {"key": key}}
        ) as stream:
            async for line in stream.lines():
                result = json.loads(line)["result"]
                if result.get("created"):
                    print("ready", flush=True)
                for event in result.get("events", []):
                    print(event["kv"]["version"], time.monotonic(), flush=True)

    asyncio.run(main())
    """
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _raw_put(client: HttpClient, key: str, value: dict[str, object]) -> None:
    body = {"key": _b64(key), "value": _b64(json.dumps(value))}
    response = await client.request("POST", "v3/kv/put", json_body=body, idempotent=False)
    assert response.status == 200, response.text


async def _raw_range(client: HttpClient, key: str) -> None:
    response = await client.request("POST", "v3/kv/range", json_body={"key": _b64(key)})
    assert response.status == 200, response.text
    assert response.json().get("kvs"), response.text


async def _raw_concurrent_puts(client: HttpClient, writers: int, writes_each: int) -> float:
    async def write_many(writer: int) -> None:
        for count in range(writes_each):
            await _raw_put(client, f"raw/writer-{writer}", {"count": count, **_VALUE})

    started = time.perf_counter()
    await asyncio.gather(*(write_many(writer) for writer in range(writers)))
    return writers * writes_each / (time.perf_counter() - started)


async def _propagation(
    script: str, arguments: list[str], write: Callable[[int], Awaitable[object]], count: int
) -> list[float]:
    """Milliseconds from before each write to another process seeing it, one write at a time."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *arguments, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    latencies = []
    try:
        async with asyncio.timeout(60):
            assert (await process.stdout.readline()).strip() == b"ready"
            for number in range(1, count + 1):
                started = time.monotonic()
                version = await write(number)
                while True:
                    seen, at = (await process.stdout.readline()).split()
                    if int(seen) == version:
                        break
                latencies.append((float(at) - started) * 1000)
    finally:
        process.kill()
        await process.wait()
    return latencies


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _propagation_rows(
    cluster: EtcdCluster, store: EtcdConfigStore, url: str, quick: bool
) -> list[Result]:
    count = 40 if quick else 300
    await store.set_config("bench", "system", "system", "system_config", {"llm_model": "m-0"})

    async def confstore_write(number: int) -> int:
        entry = await store.set_config(
            "bench", "system", "system", "system_config", {"llm_model": f"m-{number}"}
        )
        return entry.version

    managed = await _propagation(_MANAGER_WATCHER, [url], confstore_write, count)
    async with HttpClient(store.client.current_endpoint) as client:
        raw_key = "raw/watched"

        async def raw_write(number: int) -> int:
            body = {"key": _b64(raw_key), "value": _b64(f"v{number}")}
            response = await client.request("POST", "v3/kv/put", json_body=body)
            assert response.status == 200
            return number + raw_offset

        raw_offset = await _raw_version(client, raw_key)
        raw = await _propagation(_RAW_WATCHER, [client.base_url, raw_key], raw_write, count)
    note = f"{count} writes, one at a time; the watcher is another process"
    rows = []
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        value, baseline = _percentile(managed, fraction), _percentile(raw, fraction)
        rows.append(
            Result(
                f"etcd write -> other process's watch(), {name}",
                value,
                baseline,
                "ms",
                higher_is_better=False,
                note=f"{note}; baseline: a raw etcd watch stream, measured the same way",
            )
        )
    rows.append(
        Result(
            "etcd write -> other process's watch(), p99 vs budget",
            _percentile(managed, 0.99),
            P99_BUDGET_MS,
            "ms",
            higher_is_better=False,
            target=1.0,
            note=f"baseline: the {P99_BUDGET_MS:.0f} ms the issue allows; "
            f"median {statistics.median(managed):.1f} ms",
        )
    )
    return rows


async def _raw_version(client: HttpClient, key: str) -> int:
    response = await client.request("POST", "v3/kv/range", json_body={"key": _b64(key)})
    kvs = response.json().get("kvs", [])
    return int(kvs[0]["version"]) if kvs else 0


async def _throughput_rows(
    cluster: EtcdCluster, store: EtcdConfigStore, quick: bool
) -> list[Result]:
    reads = 100 if quick else 1000
    writes = 50 if quick else 500
    writes_each = 2 if quick else 8
    async with HttpClient(store.client.current_endpoint, connection_limit=100) as client:
        await _raw_put(client, "raw/read", _VALUE)
        await store.set_config(*_IDENTITY, _VALUE)
        raw_read = await measure_rate(lambda: _raw_range(client, "raw/read"), reads)
        read = await measure_rate(lambda: store.get_config(*_IDENTITY), reads)
        raw_write = await measure_rate(lambda: _raw_put(client, "raw/write", _VALUE), writes)
        write = await measure_rate(lambda: store.set_config(*_IDENTITY, _VALUE), writes)
        raw_many = await _raw_concurrent_puts(client, CONCURRENT_WRITERS, writes_each)
        many = await concurrent_write_rate(store, CONCURRENT_WRITERS, writes_each, one_key=False)
    note = "same HttpClient transport to the same member, linearizable"
    return [
        Result("etcd latest read, uncached", read, raw_read, "reads/s", note=f"raw range; {note}"),
        Result("etcd write, sequential", write, raw_write, "writes/s", note=f"raw put; {note}"),
        Result(
            f"etcd write, {CONCURRENT_WRITERS} writers on {CONCURRENT_WRITERS} keys",
            many,
            raw_many,
            "writes/s",
            note=f"{CONCURRENT_WRITERS} tasks doing raw puts; {note}",
        ),
    ]


async def run(quick: bool) -> list[Result]:
    cluster = await asyncio.to_thread(EtcdCluster, 3)
    await asyncio.to_thread(cluster.start)
    try:
        url = cluster.store_url(prefix="bench/")
        store = open_store(url)
        assert isinstance(store, EtcdConfigStore)
        async with store:
            results = await _throughput_rows(cluster, store, quick)
            results += await _propagation_rows(cluster, store, url, quick)
        return results
    finally:
        await asyncio.to_thread(cluster.stop)
