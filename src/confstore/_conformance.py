"""What ``confstore conformance`` and its pytest plugin share: the run's settings and its areas.

No pytest here: the command imports this module before it knows pytest is installed. The command
checks the store once (``open_area`` with number 0), then runs pytest in a child process with
``confstore.testing._conformance`` as a plugin, passing ``RunSettings`` as JSON in
``$CONFSTORE_CONFORMANCE``; the plugin opens area 1, 2, ... (one per test) the same way.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType

from ._registry import open_store
from ._store import ConfigStore, IsolatedArea
from ._url import StoreURL

SETTINGS_VARIABLE = "CONFSTORE_CONFORMANCE"
RESULTS_FORMAT = "confstore-conformance-results"


@dataclass(frozen=True)
class RunSettings:
    """One run: the store URL (credentials included), ``run_id`` (names the areas),
    ``allow_shared``, ``keep``, ``feed_latency`` (the suite's ``change_feed_latency``) and
    ``results`` (where the plugin writes each test's outcome, as JSON, when the session ends)."""

    url: str
    run_id: str
    results: str
    allow_shared: bool = False
    keep: bool = False
    feed_latency: float = 0.0

    def to_environment(self) -> dict[str, str]:
        return {SETTINGS_VARIABLE: json.dumps(asdict(self))}

    @classmethod
    def from_environment(cls) -> RunSettings | None:
        text = os.environ.get(SETTINGS_VARIABLE)
        return cls(**json.loads(text)) if text else None


def open_area(
    store_class: type[ConfigStore], url: StoreURL, run_id: str, number: int, *, allow_shared: bool
) -> IsolatedArea | None:
    """Area ``number`` of the run: ``store_class.isolated_area``, else (with ``allow_shared``)
    the store itself, emptied by ``remove()``; None when the store cannot isolate and sharing
    was not allowed. May raise PermissionDeniedError (a visibly read-only store)."""
    area = store_class.isolated_area(url, f"conformance-{run_id}-{number:04d}")
    if area is not None:
        return area
    if not allow_shared:
        return None
    return IsolatedArea(url, f"the store itself ({url}), emptied after each test", _Purge(url))


def is_shared(area: IsolatedArea) -> bool:
    return isinstance(area.remove, _Purge)


async def stored_tenants(url: StoreURL) -> list[str]:
    """Every tenant the store at ``url`` keeps a version of, deleted ones included."""
    async with open_store(url) as store:
        return await store.list_tenants(include_deleted=True)


@dataclass(frozen=True)
class _Purge:
    """Remove every version of every key of every tenant of the store at ``url``."""

    url: StoreURL

    async def __call__(self) -> None:
        async with open_store(self.url) as store:
            for tenant_id in await store.list_tenants(include_deleted=True):
                keys = {
                    entry.key async for entry in store.iter_configs(tenant_id, include_history=True)
                }
                for key in sorted(keys):
                    await store.delete_config(
                        key.tenant_id, key.scope, key.service, key.config_key, purge=True
                    )


def unreachable_url(url: StoreURL) -> StoreURL | None:
    """``url`` with its server(s) replaced by a closed port on 127.0.0.1; None for a URL that
    names no server port (a file, memory; also a server on its default port, which the URL does
    not distinguish from a name)."""
    if url.port is None and not url.hosts and url.transport is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {name: value for name, value in url.options.items() if name != "host"}
    return replace(url, host="127.0.0.1", port=port, hosts=(), options=MappingProxyType(options))
