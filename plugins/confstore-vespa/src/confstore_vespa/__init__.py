"""confstore-vespa: the Vespa 8 backend of confstore (``vespa+http://`` and ``vespa+https://`` URLs).

``VespaConfigStore`` keeps the whole confstore store contract on Vespa's ``/document/v1`` API
through confstore.docstore's document protocol; ``confstore_vespa.emulator`` is an in-process
Vespa for tests (the store never imports it).
"""

from typing import TYPE_CHECKING

from confstore.hookspecs import lazy_exports

if TYPE_CHECKING:
    from ._store import VespaConfigStore as VespaConfigStore

__version__ = "0.1.0"

__all__ = ["VespaConfigStore", "__version__"]

# Imported on first use: the entry point (``._plugin``) imports this package whenever a store
# of any kind is first opened in a process, and must not import this store and its drivers.
__getattr__ = lazy_exports(
    __name__,
    {
        "VespaConfigStore": "._store",
    },
)
