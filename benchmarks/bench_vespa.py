"""The Vespa store on the in-process emulator: round trips counted from its request log, and
write throughput with 64 concurrent writers when every request takes 5 ms.

Round-trip rows compare the measured count with the design's budget (baseline = the budget,
ratio >= 1 means within it): a latest read is 1 request, a write at most 3 sequential requests,
history(10) at most 2 sequential rounds (the head, then the other versions in parallel).
Throughput rows compare 64 concurrent writers with one writer in the same run (the speed-up
the store gets from concurrency while each request waits 5 ms; 64 distinct keys, then one key).
"""

from __future__ import annotations

from confstore_vespa import VespaConfigStore
from confstore_vespa.emulator import VespaEmulator, sequential_rounds

from ._harness import Result, concurrent_write_rate

LATENCY = 0.005
# Round trips are counted with a longer latency, so that requests sent in parallel overlap on the
# emulator even on a busy machine (a wave is a set of overlapping requests).
ROUND_TRIP_LATENCY = 0.02
WRITERS = 64
TENANT, SCOPE, SERVICE = "bench", "system", "svc"


async def _round_trips(store: VespaConfigStore, vespa: VespaEmulator) -> list[Result]:
    for version in range(12):
        await store.set_config(TENANT, SCOPE, SERVICE, "key", {"n": version})
    vespa.latency = ROUND_TRIP_LATENCY
    measured = {}
    vespa.request_log.clear()
    await store.get_config(TENANT, SCOPE, SERVICE, "key")
    measured["latest read: requests"] = (len(vespa.request_log), 1)
    vespa.request_log.clear()
    await store.set_config(TENANT, SCOPE, SERVICE, "key", {"n": -1})
    measured["write: sequential requests"] = (sequential_rounds(vespa.request_log), 3)
    vespa.request_log.clear()
    await store.get_config_history(TENANT, SCOPE, SERVICE, "key", limit=10)
    measured["history(10): sequential rounds"] = (sequential_rounds(vespa.request_log), 2)
    history_requests = len(vespa.request_log)
    vespa.latency = 0.0
    return [
        Result(
            name=f"vespa {name}",
            value=value,
            baseline=budget,
            unit="round trips",
            higher_is_better=False,
            target=1.0,
            note=f"{history_requests} requests in 2 rounds"
            if name.startswith("history")
            else "counted from the emulator's request log",
        )
        for name, (value, budget) in measured.items()
    ]


async def _throughput(store: VespaConfigStore, vespa: VespaEmulator, quick: bool) -> list[Result]:
    writes = 2 if quick else 8
    vespa.latency = LATENCY
    single = await concurrent_write_rate(store, 1, writes * 4, one_key=False)
    distinct = await concurrent_write_rate(store, WRITERS, writes, one_key=False)
    shared = await concurrent_write_rate(store, WRITERS, 1 if quick else 2, one_key=True)
    vespa.latency = 0.0
    note = f"{LATENCY * 1000:.0f} ms per request; baseline: one writer, same latency"
    return [
        Result(
            f"vespa {WRITERS} writers, distinct keys (writes/s)",
            distinct,
            single,
            "writes/s",
            note=note,
        ),
        Result(
            f"vespa {WRITERS} writers, one key (writes/s)", shared, single, "writes/s", note=note
        ),
    ]


async def run(quick: bool) -> list[Result]:
    async with VespaEmulator() as vespa, VespaConfigStore(vespa.url) as store:
        results = await _round_trips(store, vespa)
        results += await _throughput(store, vespa, quick)
    return results
