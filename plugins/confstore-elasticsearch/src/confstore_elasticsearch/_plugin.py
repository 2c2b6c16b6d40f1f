"""Registers the Elasticsearch and OpenSearch URL schemes with confstore (no I/O here)."""

from __future__ import annotations

from typing import Any

from confstore import ConfigStore, StoreURL
from confstore.hookspecs import BackendRegistrar, hookimpl

PACKAGE = "confstore-elasticsearch"
SCHEMES = ("elasticsearch+http", "elasticsearch+https", "opensearch+http", "opensearch+https")


def open_elasticsearch_store(url: StoreURL, /, **options: Any) -> ConfigStore:
    from ._store import ElasticsearchConfigStore

    return ElasticsearchConfigStore.from_url(url, **options)


@hookimpl
def confstore_register_backends(register: BackendRegistrar) -> None:
    for scheme in SCHEMES:
        register(scheme, open_elasticsearch_store, package=PACKAGE)
