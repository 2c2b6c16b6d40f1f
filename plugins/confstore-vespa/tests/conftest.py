"""Fixtures of the confstore-vespa tests: a fresh in-process Vespa emulator and stores on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from confstore_vespa import VespaConfigStore
from confstore_vespa.emulator import VespaEmulator
from vespa_test_support import FAST_RETRY, StoreFactory


@pytest.fixture
async def vespa() -> AsyncIterator[VespaEmulator]:
    async with VespaEmulator(seed=1234) as emulator:
        yield emulator


@pytest.fixture
async def make_store(vespa: VespaEmulator) -> AsyncIterator[StoreFactory]:
    """Open initialised stores on the emulator (each one is another "host"); closes them all."""
    opened: list[VespaConfigStore] = []

    async def make(**options: Any) -> VespaConfigStore:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("timeout", 5.0)
        store = VespaConfigStore(vespa.url, **options)
        await store.initialize()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
