"""confstore-remote: a store that speaks to ``confstore serve`` (``confstore+http://host:port``).

``RemoteConfigStore`` keeps the whole confstore store contract through the server's ``/v1`` API,
so ``ConfigManager`` and the ``confstore`` CLI work on a remote server unchanged; its
``wait_for_changes`` follows the server's event stream, so hot reload is immediate.
"""

from typing import TYPE_CHECKING

from confstore.hookspecs import lazy_exports

if TYPE_CHECKING:
    from ._store import AccessDeniedError as AccessDeniedError
    from ._store import RemoteConfigStore as RemoteConfigStore

__version__ = "0.1.0"

__all__ = ["AccessDeniedError", "RemoteConfigStore", "__version__"]

# Imported on first use: the entry point (``._plugin``) imports this package whenever a store
# of any kind is first opened in a process, and must not import this store and its drivers.
__getattr__ = lazy_exports(
    __name__,
    {
        "AccessDeniedError": "._store",
        "RemoteConfigStore": "._store",
    },
)
