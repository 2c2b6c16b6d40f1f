"""confstore-elasticsearch: the confstore backend for Elasticsearch 8/9 and OpenSearch 2.

URLs ``elasticsearch+http(s)://[user:password@]host:port?index=confstore&timeout=10`` and the
same with ``opensearch+``; see ``ElasticsearchConfigStore`` for the options. The write protocol is
confstore.docstore's; ``confstore_elasticsearch.emulator`` holds an in-process emulator for tests
(the store never imports it).
"""

from typing import TYPE_CHECKING

from confstore.hookspecs import lazy_exports

if TYPE_CHECKING:
    from ._store import ElasticsearchConfigStore as ElasticsearchConfigStore

__version__ = "0.1.0"

__all__ = ["ElasticsearchConfigStore", "__version__"]

# Imported on first use: the entry point (``._plugin``) imports this package whenever a store
# of any kind is first opened in a process, and must not import this store and its drivers.
__getattr__ = lazy_exports(
    __name__,
    {
        "ElasticsearchConfigStore": "._store",
    },
)
