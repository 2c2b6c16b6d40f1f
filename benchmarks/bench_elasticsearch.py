"""The Elasticsearch store on the in-process emulator: round trips per operation, counted from
the emulator's request log, and write throughput at 64 concurrent writers with 5 ms per request.

Round-trip rows: the value is what was measured, the baseline the design's budget (latest read
1 request, write at most 3 sequential requests, history at most 2 sequential rounds), so a ratio
of 1 or more means "within budget". Throughput rows: 64 concurrent writers (on 64 keys, then all
on one key) against one writer, in the same run and with the same injected latency.
"""

from __future__ import annotations

from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch.emulator import ElasticsearchEmulator, sequential_rounds

from ._harness import Result, concurrent_write_rate

INJECTED_LATENCY = 0.005
CONCURRENT_WRITERS = 64
IDENTITY = ("bench", "agent", "planner")


async def _budget_rows(
    store: ElasticsearchConfigStore, emulator: ElasticsearchEmulator
) -> list[Result]:
    for number in range(12):
        await store.set_config(*IDENTITY, "settings", {"n": number})
    emulator.latency = INJECTED_LATENCY
    operations = {
        "latest read": (store.get_config(*IDENTITY, "settings"), 1, len),
        "write": (store.set_config(*IDENTITY, "settings", {"n": -1}), 3, sequential_rounds),
        "history(10)": (
            store.get_config_history(*IDENTITY, "settings", limit=10),
            2,
            sequential_rounds,
        ),
    }
    rows = []
    for name, (operation, budget, measure) in operations.items():
        emulator.clear_log()
        await operation
        rows.append(
            Result(
                name=f"elasticsearch {name}: round trips",
                value=measure(emulator.requests),
                baseline=budget,
                unit="round trips",
                higher_is_better=False,
                target=1.0,
                note=f"{len(emulator.requests)} request(s), from the emulator's request log",
            )
        )
    emulator.latency = 0.0
    return rows


async def _throughput_rows(
    store: ElasticsearchConfigStore, emulator: ElasticsearchEmulator, quick: bool
) -> list[Result]:
    writes_each = 2 if quick else 8
    emulator.latency = INJECTED_LATENCY
    alone = await concurrent_write_rate(store, 1, writes_each * 4, one_key=False)
    many_keys = await concurrent_write_rate(store, CONCURRENT_WRITERS, writes_each, one_key=False)
    one_key = await concurrent_write_rate(
        store, CONCURRENT_WRITERS, 1 if quick else 2, one_key=True
    )
    emulator.latency = 0.0
    note = f"{INJECTED_LATENCY * 1000:.0f} ms injected per request; baseline: a single writer"
    return [
        Result(
            f"elasticsearch {CONCURRENT_WRITERS} writers, {CONCURRENT_WRITERS} keys",
            many_keys,
            alone,
            "writes/s",
            note=note,
        ),
        Result(
            f"elasticsearch {CONCURRENT_WRITERS} writers, one key",
            one_key,
            alone,
            "writes/s",
            note=note,
        ),
    ]


async def run(quick: bool) -> list[Result]:
    async with (
        ElasticsearchEmulator() as emulator,
        ElasticsearchConfigStore(emulator.url, index="bench") as store,
    ):
        results = await _budget_rows(store, emulator)
        results += await _throughput_rows(store, emulator, quick)
    return results
