"""Hook specifications for confstore plugins: the plugin author's reference.

A plugin is a module (or object) exposing hook implementations, published under the
``confstore`` entry-point group::

    # pyproject.toml of a plugin distribution
    [project.entry-points.confstore]
    mystore = "mystore_confstore.plugin"

    # mystore_confstore/plugin.py
    from confstore.hookspecs import hookimpl

    @hookimpl
    def confstore_register_backends(register):
        register("mystore", MyStore.from_url, package="mystore-confstore")

Hooks only register; they never do I/O. confstore's own backends register through the same hooks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from ._store import ConfigStore
    from ._url import StoreURL

PROJECT_NAME = "confstore"
ENTRY_POINT_GROUP = "confstore"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class StoreFactory(Protocol):
    """Builds a store from a parsed URL and options, without I/O."""

    def __call__(self, url: StoreURL, /, **options: Any) -> ConfigStore: ...


class BackendRegistrar(Protocol):
    """What ``confstore_register_backends`` receives."""

    def __call__(self, scheme: str, factory: StoreFactory, *, package: str | None = None) -> None:
        """Serve URLs whose scheme is ``scheme`` (for example ``vespa+https``) with ``factory``.

        ``package`` is the distribution to install for it: when ``factory`` raises ImportError
        (the store module, or a driver it needs, is missing), ``open_store`` raises
        NoSuchBackendError saying ``pip install <package>``. Keep the heavy imports inside
        ``factory`` so that registering stays cheap and a missing driver gets that hint.
        A scheme registered by two plugins (or twice) is served by neither: ``open_store``
        raises AmbiguousBackendError naming both, and every other scheme keeps working.
        """


class SchemaRegistrar(Protocol):
    """What ``confstore_register_schemas`` receives."""

    def __call__(
        self,
        model: type[Any],
        *,
        scope: str,
        config_key: str,
        default_service: str | None = None,
        name: str | None = None,
    ) -> None:
        """Make the pydantic model ``model`` a typed config stored at (scope, service, config_key).

        ``default_service`` is the service used when the caller gives none; without one the
        caller must always name the service (as for agents, where the service is the agent name).
        ``name`` is how the CLI and ``spec_for`` refer to it (default: the class name without a
        ``Config`` suffix, in snake case). A name or model registered twice raises ValueError.
        """


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a plugin package's ``__init__.py`` that imports the module
    of each exported name (relative to ``package``) when the name is first used::

        __getattr__ = lazy_exports(__name__, {"MyStore": "._store"})

    Importing the plugin's entry point imports its package first, and confstore imports every
    installed plugin's entry point when a process opens its first store, of any kind: with the
    store exported so, that costs nothing of the store's own imports (its driver, for one).
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__


@hookspec
def confstore_register_backends(register: BackendRegistrar) -> None:
    """Register store backends by URL scheme. Called once, when the registry first loads."""


@hookspec
def confstore_register_schemas(register: SchemaRegistrar) -> None:
    """Register typed config schemas for ConfigManager.get()/set() and the CLI."""
