"""ElasticsearchConfigStore: confstore's document protocol (confstore.docstore) on the REST API
of Elasticsearch 8/9 and OpenSearch 2.

This module keeps only the mapping onto Elasticsearch; the protocol (writes, repair, purge, the
change feed) is ``DocumentConfigStore``'s, document shapes and ids are in ``_documents`` and the
requests in ``_client``. Create-only is ``POST {index}-versions/_create/{id}`` (201, or 409 when
the id exists); the head's compare-and-set is ``POST {index}-heads/_doc/{id}?if_seq_no=..&
if_primary_term=..`` (``_create`` for a key without a head); reads are real-time GET and
``_mget``; scans are refreshed searches; a generation is deleted with ``_delete_by_query``.
The versions index has one shard, so a refresh never shows version N+1 of a key without N.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from confstore import ConfigKey, InvalidConfigError, IsolatedArea, StoreOptions, StoreURL
from confstore.docstore import (
    DEFAULT_CHANGE_WINDOW,
    SUMMARY_FIELDS,
    DocumentConfigStore,
    DocumentStore,
    Head,
    HeadQuery,
    PollBounds,
    Record,
    WriteOutcome,
)
from confstore.http import HttpClient, RetryPolicy, auth_headers, make_ssl_context

from ._client import PAGE_SIZE, IndexClient, token
from ._documents import (
    HEADS,
    VERSIONS,
    head_from,
    head_source,
    key_id,
    load_mapping,
    path_id,
    record_from,
    record_id,
    record_source,
    version_id,
)

_INDEX_PREFIX_FORBIDDEN = set('\\/*?"<>| ,#:')
_KEY_ORDER = [{"scope": "asc"}, {"service": "asc"}, {"config_key": "asc"}, {"key_id": "asc"}]
_FEED_ORDER = [{"written_micros": "asc"}, {"doc_id": "asc"}]
_VERSION_ORDER = [{"version": "asc"}, {"doc_id": "asc"}]


class ElasticsearchDocuments(DocumentStore):
    """The DocumentStore primitives on two indices, ``{prefix}-heads`` and ``{prefix}-versions``."""

    def __init__(self, http: HttpClient, *, prefix: str, replicas: int, timeout: float) -> None:
        self.client = IndexClient(http)
        self.heads = f"{prefix}-{HEADS}"
        self.versions = f"{prefix}-{VERSIONS}"
        self.replicas = replicas
        self.timeout = timeout

    async def initialize(self) -> None:
        """Create both indices with their strict mappings; an index that exists is fine."""
        for kind, name in ((HEADS, self.heads), (VERSIONS, self.versions)):
            body = load_mapping(kind)
            body["settings"]["number_of_replicas"] = self.replicas
            await self.client.create_index(name, body)

    async def close(self) -> None:
        await self.client.http.close()

    async def health_check(self) -> bool:
        return await self.client.healthy(self.timeout)

    async def get_head(self, key: ConfigKey) -> Head | None:
        found = await self.client.get(self.heads, path_id(key_id(key)))
        return None if found is None else head_from(found["_source"], token(found))

    async def get_heads(self, keys: Sequence[ConfigKey]) -> list[Head | None]:
        found = await self.client.mget(self.heads, [key_id(key) for key in keys])
        return [None if hit is None else head_from(hit["_source"], token(hit)) for hit in found]

    async def put_head(self, head: Head, expected: Head | None) -> WriteOutcome:
        doc_id = path_id(key_id(head.key))
        if expected is None:
            return await self.client.write(f"{self.heads}/_create/{doc_id}", head_source(head))
        seq_no, primary_term = expected.token
        params = {"if_seq_no": str(seq_no), "if_primary_term": str(primary_term)}
        return await self.client.write(f"{self.heads}/_doc/{doc_id}", head_source(head), params)

    async def create_record(self, record: Record) -> WriteOutcome:
        path = f"{self.versions}/_create/{path_id(record_id(record))}"
        return await self.client.write(path, record_source(record))

    async def create_records(self, records: Sequence[Record]) -> list[WriteOutcome]:
        documents = [(record_id(record), record_source(record)) for record in records]
        outcomes: list[WriteOutcome] = []
        for start in range(0, len(documents), PAGE_SIZE):
            page = documents[start : start + PAGE_SIZE]
            outcomes.extend(await self.client.bulk_create(self.versions, page))
        return outcomes

    async def get_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> list[Record | None]:
        ids = [version_id(key, generation, version) for version in versions]
        found = await self.client.mget(self.versions, ids)
        return [None if hit is None else record_from(hit["_source"]) for hit in found]

    async def scan_versions(self, key: ConfigKey, generation: int) -> AsyncIterator[Record]:
        query = _filters(
            _term("key_id", key_id(key)), _term("kind", "version"), _term("generation", generation)
        )
        async for hit in self.client.scan(self.versions, query, _VERSION_ORDER):
            yield record_from(hit["_source"])

    async def scan_heads(self, query: HeadQuery) -> AsyncIterator[Head]:
        clauses = [_term(name, value) for name, value in query.filters()]
        source = True if query.values else {"excludes": ["value"]}
        async for hit in self.client.scan(self.heads, _filters(*clauses), _KEY_ORDER, source):
            yield head_from(hit["_source"])

    async def scan_feed(self, since_micros: int | None) -> AsyncIterator[Record]:
        query: dict[str, Any] = {"match_all": {}}
        if since_micros is not None:
            query = {"range": {"written_micros": {"gte": since_micros}}}
        async for hit in self.client.scan(self.versions, query, _FEED_ORDER, SUMMARY_FIELDS):
            yield record_from(hit["_source"])

    async def delete_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> None:
        query = _filters(
            _term("key_id", key_id(key)),
            _term("kind", "version"),
            _term("generation", generation),
            {"terms": {"version": list(versions)}},
        )
        await self.client.delete_by_query(self.versions, query)

    async def delete_generations(self, key: ConfigKey, up_to: int) -> None:
        query = _filters(
            _term("key_id", key_id(key)),
            _term("kind", "version"),
            {"range": {"generation": {"lte": up_to}}},
        )
        await self.client.delete_by_query(self.versions, query)


class ElasticsearchConfigStore(DocumentConfigStore):
    """Versioned configs in two Elasticsearch/OpenSearch indices (``{index}-heads``, ``{index}-versions``).

    ``url`` is the cluster's base URL (``http://host:9200``). Authentication: ``username`` and
    ``password`` (basic), ``api_key`` (the base64 ``id:key`` ES returns as ``encoded``) or
    ``bearer_token``; TLS: ``ca_file`` and ``verify``. No I/O until ``initialize()``.
    """

    backend_name: ClassVar[str] = "elasticsearch"

    def __init__(
        self,
        url: str = "http://localhost:9200",
        *,
        index: str = "confstore",
        timeout: float = 10.0,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        replicas: int = 0,
        change_window: float = DEFAULT_CHANGE_WINDOW,
        retry: RetryPolicy | None = None,
        flavor: str = "elasticsearch",
        max_value_bytes: int = 1024 * 1024,
        poll: PollBounds | None = None,
    ) -> None:
        self.index_prefix = _check_prefix(index)
        self.flavor = flavor
        self.replicas = replicas
        self.timeout = timeout
        retry = retry or RetryPolicy()
        ssl_context = None
        if url.startswith("https:") and (ca_file or not verify):
            ssl_context = make_ssl_context(ca_file=ca_file, verify=verify)
        self._http = HttpClient(
            url,
            timeout=timeout,
            retry=retry,
            headers=auth_headers(
                username=username, password=password, api_key=api_key, bearer_token=bearer_token
            ),
            ssl_context=ssl_context,
        )
        documents = ElasticsearchDocuments(
            self._http, prefix=self.index_prefix, replicas=replicas, timeout=timeout
        )
        super().__init__(
            documents,
            change_window=change_window,
            retry=retry,
            max_value_bytes=max_value_bytes,
            poll=poll,
        )

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> ElasticsearchConfigStore:
        """Build from ``elasticsearch+http(s)://[user:pass@]host:port[/path]?index=..&timeout=..``."""
        reader = StoreOptions(url.backend, options)
        base = url.base_url + (f"/{url.path}" if url.path else "")
        store = cls(
            base,
            index=reader.take_str("index", "confstore") or "confstore",
            timeout=reader.take_float("timeout", 10.0, minimum=0.001),
            username=url.username,
            password=url.password,
            api_key=reader.take_str("api_key"),
            bearer_token=reader.take_str("bearer_token"),
            ca_file=reader.take_str("ca_file"),
            verify=reader.take_bool("verify", True),
            replicas=reader.take_int("replicas", 0),
            change_window=reader.take_float("change_window", DEFAULT_CHANGE_WINDOW),
            flavor=url.backend,
            poll=PollBounds.from_options(reader),
            max_value_bytes=reader.take_int("max_value_bytes", 1024 * 1024, minimum=1),
        )
        reader.finish()
        return store

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """Two new indices: the URL's index prefix (default ``confstore``), ``-``, ``name``."""
        return IsolatedArea.with_suffix(
            url,
            "index",
            "confstore",
            name,
            lambda index: f"indices {index}-* of {url.backend} at {url.base_url}",
            cls,
            cls.delete_indices,
        )

    async def backend_version(self) -> str | None:
        return await IndexClient(self._http).server_version()

    async def delete_indices(self) -> None:
        """Delete this store's two indices and everything in them (every tenant, every version).
        For tests and decommissioning; needs no ``initialize()``."""
        client = IndexClient(self._http)
        for kind in (HEADS, VERSIONS):
            await client.delete_index(self.index_name(kind))

    @property
    def http(self) -> HttpClient:
        """The HTTP client (tests add request hooks to it)."""
        return self._http

    def index_name(self, kind: str) -> str:
        return f"{self.index_prefix}-{kind}"

    async def get_stats(self) -> dict[str, Any]:
        return {**await super().get_stats(), "flavor": self.flavor}


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: value}}


def _filters(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(clauses)}}


def _check_prefix(prefix: str) -> str:
    if (
        not isinstance(prefix, str)
        or not prefix
        or prefix != prefix.lower()
        or prefix[0] in "-_+."
        or any(char in _INDEX_PREFIX_FORBIDDEN for char in prefix)
        or len(prefix) > 200
    ):
        raise InvalidConfigError(
            f"index prefix must be a lowercase Elasticsearch index name, got {prefix!r}",
            field="index",
        )
    return prefix
