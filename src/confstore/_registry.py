"""Backend discovery: explicit registrations, then built-ins, then ``confstore`` entry points."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from ._errors import AmbiguousBackendError, InvalidConfigError, NoSuchBackendError
from ._store import ConfigStore
from ._url import StoreURL, default_store_url
from .hookspecs import BackendRegistrar, StoreFactory

logger = logging.getLogger("confstore")


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-ins and installed plugins loaded."""
    from . import _typed, backends

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(backends, name="confstore.backends")
    manager.register(_typed, name="confstore.schemas")
    _load_entry_points(manager)
    manager.check_pending()
    return manager


# The distribution of each plugin loaded from an entry point (by id), and the entry points that
# could not be loaded, with why: each of those costs only its own schemes.
_plugin_distributions: dict[int, str] = {}
_unloadable_plugins: dict[str, str] = {}


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    """Load the ``confstore`` entry points as pluggy's ``load_setuptools_entrypoints`` does, but
    each on its own: a plugin whose module cannot be imported (a dependency missing, a bug) is
    logged and skipped, and named when a scheme is not found, instead of making every store,
    SQLite included, fail to open."""
    for distribution in importlib.metadata.distributions():
        for entry in distribution.entry_points:
            if entry.group != hookspecs.ENTRY_POINT_GROUP or manager.has_plugin(entry.name):
                continue
            try:
                plugin = entry.load()
                manager.register(plugin, name=entry.name)
            except Exception as exc:  # whatever importing a third party's module raises
                _unloadable_plugins[entry.name] = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "confstore: the plugin %r (distribution %s) cannot be loaded and is "
                    "skipped: %s",
                    entry.name,
                    distribution.metadata["Name"],
                    _unloadable_plugins[entry.name],
                )
                continue
            _plugin_distributions[id(plugin)] = distribution.metadata["Name"]


@dataclass(frozen=True, slots=True)
class RegisteredBackend:
    """A scheme's store factory, the package a user installs to get it, and who registered it
    (the plugin's distribution, else ``package``, else the plugin's name)."""

    factory: StoreFactory
    package: str | None
    provider: str


KNOWN_PLUGINS: dict[str, str] = {
    "vespa": "confstore-vespa",
    "elasticsearch": "confstore-elasticsearch",
    "opensearch": "confstore-elasticsearch",
    "postgresql": "confstore-postgres",
    "postgres": "confstore-postgres",
    "etcd": "confstore-etcd",
    "confstore": "confstore-remote",
}
"""The URL scheme families of this project's own plugin distributions: an unregistered scheme of
one of these families (``etcd+http``, ``postgres``) names the package to install."""


class BackendRegistry:
    """Maps URL schemes to store factories.

    In-process registrations (``register_backend``) win over discovered ones (built-ins and the
    ``confstore`` entry points, loaded once). A scheme two plugins register is never served by
    either: asking for it raises AmbiguousBackendError naming both, and every other scheme,
    and every in-process registration, keeps working.
    """

    def __init__(self) -> None:
        self._explicit: dict[str, RegisteredBackend] = {}
        self._discovered: dict[str, RegisteredBackend] | None = None
        self._conflicts: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def register(self, scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
        """Serve ``scheme`` with ``factory`` in this process; a scheme registered twice this way
        raises ValueError."""
        scheme = scheme.lower()
        if scheme in self._explicit:
            raise ValueError(f"confstore backend scheme {scheme!r} is already registered")
        self._explicit[scheme] = RegisteredBackend(factory, package, package or "this process")

    def unregister(self, scheme: str) -> None:
        """Forget an in-process registration."""
        self._explicit.pop(scheme.lower(), None)

    def schemes(self) -> list[str]:
        return sorted(self._explicit.keys() | self._load().keys())

    def backend(self, scheme: str) -> RegisteredBackend:
        """What serves ``scheme``; NoSuchBackendError (AmbiguousBackendError if two plugins
        claim it) otherwise."""
        registered = self._explicit.get(scheme) or self._load().get(scheme)
        if registered is not None:
            return registered
        if scheme in self._conflicts:
            raise AmbiguousBackendError(scheme, self._conflicts[scheme])
        known = self.schemes()
        family = scheme.split("+", 1)[0]
        similar = [name for name in known if name.split("+", 1)[0] == family]
        unloadable = "; ".join(
            f"plugin {name!r} could not be loaded: {why}"
            for name, why in sorted(_unloadable_plugins.items())
        )
        if not similar and family in KNOWN_PLUGINS:
            raise NoSuchBackendError(
                scheme, package=KNOWN_PLUGINS[family], reason=unloadable or None
            )
        raise NoSuchBackendError(scheme, known=known, similar=similar, reason=unloadable or None)

    def factory(self, scheme: str) -> StoreFactory:
        """The factory for ``scheme``; see ``backend`` for the errors."""
        return self.backend(scheme).factory

    def _load(self) -> dict[str, RegisteredBackend]:
        discovered = self._discovered
        if discovered is not None:
            return discovered
        with self._lock:
            if self._discovered is None:
                self._discovered, self._conflicts = _discover_backends(plugin_manager())
            return self._discovered


def _discover_backends(
    manager: pluggy.PluginManager,
) -> tuple[dict[str, RegisteredBackend], dict[str, list[str]]]:
    """Every scheme the plugins' ``confstore_register_backends`` hooks register, and the schemes
    registered more than once (with who registered them)."""
    claims: dict[str, list[RegisteredBackend]] = {}
    for hook in manager.hook.confstore_register_backends.get_hookimpls():
        distribution = _plugin_distributions.get(id(hook.plugin))
        register = _registrar(claims, distribution, hook.plugin_name)
        hook.function(**{name: register for name in hook.argnames})
    served = {scheme: found[0] for scheme, found in claims.items() if len(found) == 1}
    conflicts = {
        scheme: [claim.provider for claim in found]
        for scheme, found in claims.items()
        if len(found) > 1
    }
    return served, conflicts


def _registrar(
    claims: dict[str, list[RegisteredBackend]], distribution: str | None, plugin_name: str
) -> BackendRegistrar:
    """The ``register`` one plugin's hook gets: it records who claims which scheme."""

    def register(scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
        provider = distribution or package or plugin_name
        claims.setdefault(scheme.lower(), []).append(RegisteredBackend(factory, package, provider))

    return register


backend_registry = BackendRegistry()


def register_backend(scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
    """Register a backend in this process without an entry point (tests, applications)."""
    backend_registry.register(scheme, factory, package=package)


def open_store(url: str | StoreURL | None = None, **options: Any) -> ConfigStore:
    """Build the store for ``url`` (None: ``$CONFSTORE_URL``, else the SQLite default). No I/O.

    Query parameters in the URL and keyword ``options`` both reach the backend; keywords win.
    Raises NoSuchBackendError for an unknown scheme or a backend that cannot be imported (naming
    the package its plugin registered it with), AmbiguousBackendError for a scheme two plugins
    register, and InvalidConfigError for a bad URL or option.
    """
    parsed = (
        url
        if isinstance(url, StoreURL)
        else StoreURL.parse(default_store_url() if url is None else url)
    )
    backend = backend_registry.backend(parsed.scheme)
    merged: dict[str, Any] = {**parsed.options, **options}
    try:
        return backend.factory(parsed, **merged)
    except TypeError as exc:
        raise InvalidConfigError(
            f"bad options for {parsed.scheme} store: {exc}", field="url"
        ) from exc
    except ImportError as exc:  # a plugin whose store module, or what it needs, is missing
        raise NoSuchBackendError(
            parsed.scheme, package=backend.package or backend.provider, reason=str(exc)
        ) from exc
