"""Fault soak on both HTTP emulators: concurrent writers on two "hosts" while 10% of requests fail.

Every request may be answered 503 or 429, or have its connection dropped before or after the
server applied it. Afterwards, with the faults switched off: versions of every key are contiguous
and unique, every acknowledged write is stored exactly as acknowledged, no write is stored twice,
and no writer ever saw an exception other than the documented BackendUnavailableError and
BackendTimeoutError (whose writes may or may not have been applied).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import pytest
from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch.emulator import ElasticsearchEmulator
from confstore_vespa import VespaConfigStore
from confstore_vespa.emulator import VespaEmulator

from confstore import BackendTimeoutError, BackendUnavailableError, ConfigStore
from confstore.http import RetryPolicy

FAULT_RATE = 0.10
WRITERS = int(os.environ.get("CONFSTORE_SOAK_WRITERS", "32"))
WRITES_PER_WRITER = int(os.environ.get("CONFSTORE_SOAK_WRITES", "8"))
KEYS = 4
# A realistic policy: few enough attempts that some faults outlast them and reach the writers.
RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)

Hosts = tuple[ConfigStore, ConfigStore]
Switch = Callable[[bool], None]
FaultCount = Callable[[], int]


@asynccontextmanager
async def vespa_hosts(seed: int) -> AsyncIterator[tuple[Hosts, Switch, FaultCount]]:
    async with VespaEmulator(seed=seed) as emulator, AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(
                VespaConfigStore(emulator.url, retry=RETRY, timeout=5.0)
            )
            for _ in range(2)
        ]
        rules = [
            emulator.add_fault("status", status=503, probability=FAULT_RATE / 4),
            emulator.add_fault("status", status=429, probability=FAULT_RATE / 4),
            emulator.add_fault("drop_before", probability=FAULT_RATE / 4),
            emulator.add_fault("drop_after", probability=FAULT_RATE / 4),
        ]

        def switch(on: bool) -> None:
            emulator.faults[:] = rules if on else []

        yield (hosts[0], hosts[1]), switch, lambda: sum(rule.fired for rule in rules)


@asynccontextmanager
async def elasticsearch_hosts(
    seed: int, flavor: str
) -> AsyncIterator[tuple[Hosts, Switch, FaultCount]]:
    async with (
        ElasticsearchEmulator(flavor=flavor, seed=seed) as emulator,
        AsyncExitStack() as stack,
    ):  # type: ignore[arg-type]
        hosts = [
            await stack.enter_async_context(
                ElasticsearchConfigStore(emulator.url, retry=RETRY, timeout=5.0, flavor=flavor)
            )
            for _ in range(2)
        ]

        def switch(on: bool) -> None:
            emulator.random_fault_rate = FAULT_RATE if on else 0.0

        def fired() -> int:
            return sum(1 for request in emulator.requests if request.fault is not None)

        yield (hosts[0], hosts[1]), switch, fired


@dataclass
class Outcomes:
    acknowledged: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)
    unknown: int = 0
    unexpected: list[BaseException] = field(default_factory=list)


async def soak(hosts: Hosts, outcomes: Outcomes, seed: int) -> None:
    rng = random.Random(seed)

    async def writer(number: int) -> None:
        for sequence in range(WRITES_PER_WRITER):
            config_key = f"key-{rng.randrange(KEYS)}"
            value = {"writer": number, "sequence": sequence}
            try:
                entry = await hosts[number % 2].set_config(
                    "soak", "system", "svc", config_key, value
                )
            except (BackendUnavailableError, BackendTimeoutError):
                outcomes.unknown += 1
                continue
            except Exception as exc:  # anything else breaks the contract
                outcomes.unexpected.append(exc)
                continue
            versions = outcomes.acknowledged.setdefault(config_key, {})
            assert entry.version not in versions, (
                f"{config_key} v{entry.version} acknowledged twice"
            )
            versions[entry.version] = value

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))


async def check_stored(hosts: Hosts, outcomes: Outcomes) -> int:
    total = 0
    for index in range(KEYS):
        config_key = f"key-{index}"
        history = await hosts[index % 2].get_config_history(
            "soak", "system", "svc", config_key, limit=10_000
        )
        versions = sorted(entry.version for entry in history)
        assert versions == list(range(1, len(versions) + 1)), f"{config_key}: versions {versions}"
        stored = {entry.version: entry.config_value for entry in history}
        for version, value in outcomes.acknowledged.get(config_key, {}).items():
            assert stored.get(version) == value, f"{config_key} v{version} lost or changed"
        values = [(value["writer"], value["sequence"]) for value in stored.values()]
        assert len(values) == len(set(values)), f"{config_key}: a write is stored twice"
        total += len(versions)
    return total


@pytest.mark.parametrize("backend", ["vespa", "elasticsearch", "opensearch"])
async def test_writers_under_injected_faults_lose_and_duplicate_nothing(backend: str) -> None:
    seed = 20261126
    hosts_context = vespa_hosts(seed) if backend == "vespa" else elasticsearch_hosts(seed, backend)
    outcomes = Outcomes()
    async with hosts_context as (hosts, switch_faults, faults_fired):
        switch_faults(True)
        await soak(hosts, outcomes, seed)
        switch_faults(False)
        injected = faults_fired()
        stored = await check_stored(hosts, outcomes)
    assert injected >= 20, f"only {injected} faults were injected"
    assert not outcomes.unexpected, outcomes.unexpected
    acknowledged = sum(len(versions) for versions in outcomes.acknowledged.values())
    assert acknowledged + outcomes.unknown == WRITERS * WRITES_PER_WRITER
    assert acknowledged > WRITERS * WRITES_PER_WRITER // 2, (
        "faults drowned the run: nothing was tested"
    )
    assert acknowledged <= stored <= acknowledged + outcomes.unknown
