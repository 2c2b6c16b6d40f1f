"""A real MemoryConfigStore behind a switch that makes it behave like a backend that is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from confstore import (
    BackendUnavailableError,
    ChangeBatch,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    MemoryConfigStore,
)


class SwitchableStore(ConfigStore):
    """Delegates to a MemoryConfigStore; while ``down`` every call raises BackendUnavailableError.

    ``reads`` counts the latest-version reads that reached the backend, ``polls`` the change-feed
    requests (answered or refused); ``wait_for_polls(n)`` returns once n more have been made.
    """

    backend_name = "switchable"

    def __init__(self, inner: MemoryConfigStore | None = None) -> None:
        super().__init__()
        self.inner = inner or MemoryConfigStore()
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

    async def close(self) -> None:
        return None

    async def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry:
        self._check()
        return await self.inner._set_config(
            key,
            value,
            value_json,
            expected_version=expected_version,
            updated_by=updated_by,
            comment=comment,
        )

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        self._check()
        if version is None:
            self.reads += 1
        return await self.inner._get_config(key, version)

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        self._check()
        return await self.inner._get_config_history(key, limit)

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        self._check()
        return await self.inner._list_configs(tenant_id, scope, service)

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        self._check()
        return await self.inner._delete_config(
            key, purge=purge, updated_by=updated_by, comment=comment
        )

    async def list_tenants(self) -> list[str]:
        self._check()
        return await self.inner.list_tenants()

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        self._check()
        async for entry in self.inner._iter_configs(tenant_id, include_history):
            yield entry

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: Any) -> int:
        self._check()
        return await self.inner._import_entries(tenant_id, entries, mode)

    async def get_stats(self) -> dict[str, Any]:
        self._check()
        return await self.inner.get_stats()

    async def health_check(self) -> bool:
        return not self.down

    async def current_cursor(self) -> str:
        self._check()
        return await self.inner.current_cursor()

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        self.polls += 1
        if self._polled is not None:
            self._polled.set()
        self._check()
        return await self.inner._changes_since(cursor, limit)
