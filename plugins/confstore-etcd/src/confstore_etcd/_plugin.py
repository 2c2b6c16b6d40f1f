"""Registers the etcd URL schemes with confstore (no I/O here)."""

from __future__ import annotations

from typing import Any

from confstore import ConfigStore, StoreURL
from confstore.hookspecs import BackendRegistrar, hookimpl

PACKAGE = "confstore-etcd"
SCHEMES = ("etcd+http", "etcd+https")


def open_etcd_store(url: StoreURL, /, **options: Any) -> ConfigStore:
    from ._store import EtcdConfigStore

    return EtcdConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    for scheme in SCHEMES:
        register(scheme, open_etcd_store, package=PACKAGE)
