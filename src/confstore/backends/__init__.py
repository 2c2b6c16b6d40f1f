"""Built-in stores, registered through the same hook third-party backends use."""

from __future__ import annotations

from typing import Any

from .._store import ConfigStore
from .._url import StoreURL
from ..hookspecs import BackendRegistrar, hookimpl


def _open_memory(url: StoreURL, /, **options: Any) -> ConfigStore:
    from .memory import MemoryConfigStore

    return MemoryConfigStore.from_url(url, **options)


def _open_sqlite(url: StoreURL, /, **options: Any) -> ConfigStore:
    from .sqlite import SQLiteConfigStore

    return SQLiteConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    register("memory", _open_memory, package="confstore")
    register("sqlite", _open_sqlite, package="confstore")
