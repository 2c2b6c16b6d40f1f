"""The ``confstore`` entry point: registers the ``confstore+http`` and ``confstore+https`` schemes."""

from __future__ import annotations

from typing import Any

from confstore import ConfigStore, StoreURL
from confstore.hookspecs import BackendRegistrar, hookimpl

PACKAGE = "confstore-remote"


def open_remote_store(url: StoreURL, /, **options: Any) -> ConfigStore:
    """Build a RemoteConfigStore from a ``confstore+http(s)://`` URL; no I/O."""
    from ._store import RemoteConfigStore

    return RemoteConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    register("confstore+http", open_remote_store, package=PACKAGE)
    register("confstore+https", open_remote_store, package=PACKAGE)
