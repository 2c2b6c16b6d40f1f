"""Registers the PostgreSQL URL schemes with confstore (no I/O here)."""

from __future__ import annotations

from typing import Any

from confstore import ConfigStore, StoreURL
from confstore.hookspecs import BackendRegistrar, hookimpl

PACKAGE = "confstore-postgres"
SCHEMES = ("postgresql", "postgres")


def open_postgres_store(url: StoreURL, /, **options: Any) -> ConfigStore:
    from ._store import PostgresConfigStore

    return PostgresConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    for scheme in SCHEMES:
        register(scheme, open_postgres_store, package=PACKAGE)
