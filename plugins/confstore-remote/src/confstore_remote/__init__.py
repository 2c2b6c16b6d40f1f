"""confstore-remote: a store that speaks to ``confstore serve`` (``confstore+http://host:port``).

``RemoteConfigStore`` keeps the whole confstore store contract through the server's ``/v1`` API,
so ``ConfigManager`` and the ``confstore`` CLI work on a remote server unchanged; its
``wait_for_changes`` follows the server's event stream, so hot reload is immediate.
"""

from ._store import AccessDeniedError as AccessDeniedError
from ._store import RemoteConfigStore as RemoteConfigStore

__version__ = "0.1.0"

__all__ = ["AccessDeniedError", "RemoteConfigStore", "__version__"]
