"""The reference MemoryConfigStore behind a switch that makes it behave like a backend that is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from confstore import BackendUnavailableError, ChangeBatch, ConfigEntry, MemoryConfigStore


class SwitchableStore(MemoryConfigStore):
    """While ``down`` every backend call raises BackendUnavailableError (health_check: False).

    ``reads`` counts the latest-version reads that reached the backend, ``polls`` the change-feed
    requests (answered or refused); ``wait_for_polls(n)`` returns once n more have been made.
    """

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reads = 0
        self.polls = 0
        self._polled: asyncio.Event | None = None

    async def wait_for_polls(self, count: int) -> None:
        target = self.polls + count
        while self.polls < target:
            self._polled = asyncio.Event()
            await self._polled.wait()

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailableError("switchable store: backend is down")

    async def initialize(self) -> None:
        self._check()

    async def health_check(self) -> bool:
        return not self.down

    async def current_cursor(self) -> str:
        self._check()
        return await super().current_cursor()

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        self.polls += 1
        if self._polled is not None:
            self._polled.set()
        self._check()
        return await super()._changes_since(cursor, limit)

    async def _get_config(self, *args: Any, **kwargs: Any) -> ConfigEntry | None:
        self._check()
        if args[1] is None:
            self.reads += 1
        return await super()._get_config(*args, **kwargs)

    async def _set_config(self, *args: Any, **kwargs: Any) -> ConfigEntry:
        self._check()
        return await super()._set_config(*args, **kwargs)

    async def _get_config_history(self, *args: Any, **kwargs: Any) -> list[ConfigEntry]:
        self._check()
        return await super()._get_config_history(*args, **kwargs)

    async def _list_configs(self, *args: Any, **kwargs: Any) -> list[ConfigEntry]:
        self._check()
        return await super()._list_configs(*args, **kwargs)

    async def _delete_config(self, *args: Any, **kwargs: Any) -> bool:
        self._check()
        return await super()._delete_config(*args, **kwargs)

    async def _iter_configs(self, *args: Any, **kwargs: Any) -> AsyncIterator[ConfigEntry]:
        self._check()
        async for entry in super()._iter_configs(*args, **kwargs):
            yield entry

    async def _import_entries(self, *args: Any, **kwargs: Any) -> int:
        self._check()
        return await super()._import_entries(*args, **kwargs)

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        self._check()
        return await super()._list_tenants(include_deleted)

    async def get_stats(self) -> dict[str, Any]:
        self._check()
        return await super().get_stats()


class Gate:
    """One read held back: ``entered`` is set once the read has its value, ``release`` lets it return."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


class GatedStore(MemoryConfigStore):
    """Holds back the next latest-version read of a tenant after it has read its value, so a test
    can interleave other work between a read and its return."""

    def __init__(self) -> None:
        super().__init__()
        self._gates: dict[str, Gate] = {}

    def gate(self, tenant_id: str) -> Gate:
        self._gates[tenant_id] = Gate()
        return self._gates[tenant_id]

    async def _get_config(self, key: Any, version: int | None) -> ConfigEntry | None:
        entry = await super()._get_config(key, version)
        gate = self._gates.pop(key.tenant_id, None) if version is None else None
        if gate is not None:
            gate.entered.set()
            await gate.release.wait()
        return entry
