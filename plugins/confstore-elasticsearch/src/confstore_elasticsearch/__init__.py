"""confstore-elasticsearch: the confstore backend for Elasticsearch 8/9 and OpenSearch 2.

URLs ``elasticsearch+http(s)://[user:password@]host:port?index=confstore&timeout=10`` and the
same with ``opensearch+``; see ``ElasticsearchConfigStore`` for the options. The write protocol is
confstore.docstore's; ``confstore_elasticsearch.emulator`` holds an in-process emulator for tests
(the store never imports it).
"""

from ._store import ElasticsearchConfigStore as ElasticsearchConfigStore

__version__ = "0.1.0"

__all__ = ["ElasticsearchConfigStore", "__version__"]
