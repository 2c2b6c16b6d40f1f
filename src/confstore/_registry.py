"""Backend discovery: explicit registrations, then built-ins, then ``confstore`` entry points."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pluggy

from . import hookspecs
from ._errors import InvalidConfigError, NoSuchBackendError
from ._store import ConfigStore
from ._url import StoreURL, default_store_url
from .hookspecs import StoreFactory

# Schemes served by plugin distributions we know of, so a missing one gets an install hint.
KNOWN_PLUGIN_PACKAGES = {
    "vespa": "confstore-vespa",
    "elasticsearch": "confstore-elasticsearch",
    "opensearch": "confstore-elasticsearch",
    "postgresql": "confstore-postgres",
    "postgres": "confstore-postgres",
    "etcd": "confstore-etcd",
}


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-ins and installed plugins loaded."""
    from . import _typed, backends

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(backends, name="confstore.backends")
    manager.register(_typed, name="confstore.schemas")
    manager.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    manager.check_pending()
    return manager


class BackendRegistry:
    """Maps URL schemes to store factories."""

    def __init__(self) -> None:
        self._factories: dict[str, StoreFactory] = {}
        self._packages: dict[str, str | None] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def register(self, scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
        """Serve ``scheme`` with ``factory``; a scheme registered twice raises ValueError."""
        scheme = scheme.lower()
        if scheme in self._factories:
            raise ValueError(f"confstore backend scheme {scheme!r} is already registered")
        self._factories[scheme] = factory
        self._packages[scheme] = package

    def unregister(self, scheme: str) -> None:
        self._factories.pop(scheme.lower(), None)
        self._packages.pop(scheme.lower(), None)

    def schemes(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def factory(self, scheme: str) -> StoreFactory:
        """The factory for ``scheme``; NoSuchBackendError (naming a package to install) if none."""
        self._load()
        try:
            return self._factories[scheme]
        except KeyError:
            backend = scheme.split("+", 1)[0]
            raise NoSuchBackendError(
                scheme, package=KNOWN_PLUGIN_PACKAGES.get(backend), known=list(self._factories)
            ) from None

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            explicit = dict(self._factories)
            self._factories.clear()
            plugin_manager().hook.confstore_register_backends(register=self._register_from_hook)
            # Explicit registrations made before loading win over built-ins and entry points.
            self._factories.update(explicit)

    def _register_from_hook(
        self, scheme: str, factory: StoreFactory, *, package: str | None = None
    ) -> None:
        self.register(scheme, factory, package=package)


backend_registry = BackendRegistry()


def register_backend(scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
    """Register a backend in this process without an entry point (tests, applications)."""
    backend_registry.register(scheme, factory, package=package)


def open_store(url: str | StoreURL | None = None, **options: Any) -> ConfigStore:
    """Build the store for ``url`` (default: ``$CONFSTORE_URL``, else the SQLite default). No I/O.

    Query parameters in the URL and keyword ``options`` both reach the backend; keywords win.
    Raises NoSuchBackendError for an unknown scheme and InvalidConfigError for a bad URL or option.
    """
    parsed = url if isinstance(url, StoreURL) else StoreURL.parse(url or default_store_url())
    factory = backend_registry.factory(parsed.scheme)
    merged: dict[str, Any] = {**parsed.options, **options}
    try:
        return factory(parsed, **merged)
    except TypeError as exc:
        raise InvalidConfigError(
            f"bad options for {parsed.scheme} store: {exc}", field="url"
        ) from exc
