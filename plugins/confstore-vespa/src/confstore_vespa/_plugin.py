"""The ``confstore`` entry point: registers the ``vespa+http`` and ``vespa+https`` schemes."""

from __future__ import annotations

from typing import Any

from confstore import ConfigStore, StoreURL
from confstore.hookspecs import BackendRegistrar, hookimpl

PACKAGE = "confstore-vespa"


def open_vespa_store(url: StoreURL, /, **options: Any) -> ConfigStore:
    """Build a VespaConfigStore from a ``vespa+http(s)://`` URL; no I/O."""
    from ._store import VespaConfigStore

    return VespaConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    register("vespa+http", open_vespa_store, package=PACKAGE)
    register("vespa+https", open_vespa_store, package=PACKAGE)
