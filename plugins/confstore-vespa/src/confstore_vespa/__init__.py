"""confstore-vespa: the Vespa 8 backend of confstore (``vespa+http://`` and ``vespa+https://`` URLs).

``VespaConfigStore`` keeps the whole confstore store contract on Vespa's ``/document/v1`` API
through confstore.docstore's document protocol; ``confstore_vespa.emulator`` is an in-process
Vespa for tests (the store never imports it).
"""

from ._store import VespaConfigStore as VespaConfigStore

__version__ = "0.1.0"

__all__ = ["VespaConfigStore", "__version__"]
