"""ElasticsearchConfigStore: the whole ConfigStore contract on Elasticsearch 8/9 and OpenSearch 2.

Write protocol (every write: read head, create version, advance head = 3 sequential requests)::

    1. GET heads/_doc/{key}            real-time; latest version N, its seq_no/primary_term
                                       (a head marked ``purging`` is purged to completion first)
    2. POST versions/_create/{key}/N+1 create-only: 201, or 409 if the version exists
    3. POST heads/_doc/{key}?if_seq_no=..&if_primary_term=..   (POST heads/_create/{key} for N=0)

- Uniqueness: a version document is created only with ``_create``, so two writers (tasks,
  processes, hosts) can never both get version N+1; the loser sees 409.
- Crash between 2 and 3: the head still says N while N+1 exists. The next writer's create of
  N+1 gets 409; it re-reads the head and, if it has not moved, copies that version document into
  the head (a compare-and-set, so racing repairers are harmless) and carries on with N+2: no gap,
  no duplicate. (A version of the key's previous lineage, left by a writer that died during a
  purge, is withdrawn instead.) Until then the orphan shows in searches (export with history, total_versions,
  the change feed), not in reads through the head.
- A head compare-and-set that fails (409) is resolved by reading the head back: if it carries
  our ``write_id`` (we, or a repairer copying our version, advanced it) or has moved past our
  version while our version document stands, the write is committed. Otherwise (the key was
  purged meanwhile) our version document is withdrawn and the write starts over.
- Unknown outcomes (dropped connection, timeout, 502/503/504 on a write): every write is a POST,
  which aiohttp never re-sends by itself, and is resolved by reading the document back and
  comparing ``write_id`` before anything is sent again. A 409 is otherwise a final answer.
- ``expected_version`` is checked against the head read in step 1 and enforced by the create
  (step 2 fails if anyone wrote N+1 since), so a compare-and-set never overwrites.
- A writer that loses step 2 backs off briefly (capped, jittered), then catches up from the head.
- Delete writes a tombstone version the same way. Purge marks the head ``purging`` (CAS), refreshes
  and deletes the version documents of the key's current *lineage* by query (a lineage is one
  life of a key, from its first version to its purge, so a late finisher never deletes the next
  life), writes a purge marker for the change feed and deletes the head if it is still the marked
  one; any writer or purger that meets a ``purging`` head finishes the purge first.

Reads: the latest version is one real-time GET of the head; a given version one GET; history a
head GET plus one ``_mget`` of the version ids below it (2 rounds). Searches (listing, export,
stats, tenants, change feed) see only refreshed data, so each is preceded by ``POST /{index}/_refresh``.
Stats are exact: ``_count`` and terms/composite aggregations, never ``cardinality``.

Change feed: version documents and purge markers carry ``written_micros`` (the writer's clock,
forced above the previous version's, so it grows with the version of a key). The feed sorts by
(written_micros, doc_id); the cursor keeps the largest value delivered and the documents
delivered within a re-scan window below it (``change_window``, default 5 s), so a write that
becomes visible late but within the window is still delivered, once. Limits: a write whose
request took longer than the window, or a host whose clock lags by more than it, can be missed;
versions of a purged key not yet read are replaced by the purge record.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from confstore import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ChangeBatch,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    InvalidConfigError,
    StoreCapabilities,
    StoreOptions,
    StoreURL,
    VersionConflictError,
    epoch_micros,
    plan_restore,
    utc_now,
)
from confstore.http import HttpClient, HttpResponse, RetryPolicy, auth_headers, make_ssl_context

from ._documents import (
    HEADS,
    VERSIONS,
    FeedCursor,
    change_from,
    document,
    entry_from,
    feed_token,
    head_document,
    key_id,
    load_mapping,
    path_id,
    version_id,
)

_PAGE_SIZE = 500
_MGET_CHUNK = 500
_UNKNOWN_OUTCOME = frozenset({502, 503, 504})
# Backoff after losing a version race to another writer (not for failures: see RetryPolicy).
_CONTENTION_BACKOFF = RetryPolicy(base_delay=0.002, max_delay=0.1)
_SINGLE_TRY = RetryPolicy(attempts=1)
_HEALTH_ATTEMPTS = 3
_INDEX_PREFIX_FORBIDDEN = set('\\/*?"<>| ,#:')


@dataclass(frozen=True, slots=True)
class _Doc:
    """A document as read back: its source and the compare-and-set token."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int

    @property
    def version(self) -> int:
        return int(self.source["version"])

    @property
    def write_id(self) -> str:
        return str(self.source.get("write_id"))

    @property
    def lineage(self) -> str:
        return str(self.source["lineage"])

    @property
    def purging(self) -> bool:
        return bool(self.source.get("purging"))

    @property
    def live(self) -> bool:
        return not self.source.get("deleted") and not self.purging


class ElasticsearchConfigStore(ConfigStore):
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
        change_window: float = 5.0,
        retry: RetryPolicy | None = None,
        flavor: str = "elasticsearch",
        max_value_bytes: int = 1024 * 1024,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        self.index_prefix = _check_prefix(index)
        self.flavor = flavor
        self.replicas = replicas
        self.change_window_micros = int(change_window * 1_000_000)
        self._retry = retry or RetryPolicy()
        ssl_context = None
        if url.startswith("https:") and (ca_file or not verify):
            ssl_context = make_ssl_context(ca_file=ca_file, verify=verify)
        self._http = HttpClient(
            url,
            timeout=timeout,
            retry=self._retry,
            headers=auth_headers(
                username=username, password=password, api_key=api_key, bearer_token=bearer_token
            ),
            ssl_context=ssl_context,
        )
        self.timeout = timeout

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
            change_window=reader.take_float("change_window", 5.0),
            flavor=url.backend,
            max_value_bytes=reader.take_int("max_value_bytes", 1024 * 1024, minimum=1),
        )
        reader.finish()
        return store

    @property
    def http(self) -> HttpClient:
        """The HTTP client (tests add request hooks to it)."""
        return self._http

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=True)

    def index_name(self, kind: str) -> str:
        return f"{self.index_prefix}-{kind}"

    async def initialize(self) -> None:
        """Create both indices with their strict mappings; an index that exists is fine."""
        for kind in (HEADS, VERSIONS):
            body = load_mapping(kind)
            body["settings"]["number_of_replicas"] = self.replicas
            response = await self._http.request(
                "PUT", self.index_name(kind), json_body=body, idempotent=True
            )
            if response.status == 200:
                continue
            if (
                response.status == 400
                and _error_type(response) == "resource_already_exists_exception"
            ):
                continue
            raise response.error(f"cannot create index {self.index_name(kind)}")

    async def close(self) -> None:
        await self._http.close()

    async def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry:
        entry = await self._write_version(
            key,
            value,
            expected_version=expected_version,
            updated_by=updated_by,
            comment=comment,
            deleted=False,
        )
        assert entry is not None
        return entry

    async def _write_version(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
        deleted: bool,
        only_if_live: bool = False,
    ) -> ConfigEntry | None:
        """The write protocol of the module docstring; None when ``only_if_live`` and not live."""
        write_id = uuid.uuid4().hex
        lost_races = 0
        head = await self._get_doc(HEADS, key_id(key))
        while True:
            if head is not None and head.purging:
                await self._finish_purge(key, head)
                head = await self._get_doc(HEADS, key_id(key))
                continue
            latest = head.version if head is not None else 0
            if expected_version is not None and expected_version != latest:
                raise VersionConflictError(expected_version, latest, key=key)
            if only_if_live and (head is None or not head.live):
                return None
            now = utc_now()
            entry = ConfigEntry(
                tenant_id=key.tenant_id,
                scope=key.scope,
                service=key.service,
                config_key=key.config_key,
                config_value=value,
                version=latest + 1,
                created_at=entry_from(head.source).created_at if head is not None else now,
                updated_at=now,
                updated_by=updated_by,
                comment=comment,
                deleted=deleted,
            )
            written = max(epoch_micros(now), _written_micros(head) + 1)
            lineage = head.lineage if head is not None else write_id
            source = document(entry, write_id=write_id, written_micros=written, lineage=lineage)
            created = await self._create_version(version_id(key, entry.version), source)
            if created is None:
                # Lost the race for this version: back off a little (capped, jittered) so that
                # many writers on one key do not all retry in lockstep, then catch up.
                lost_races += 1
                await asyncio.sleep(_CONTENTION_BACKOFF.delay(lost_races))
                head = await self._catch_up(key, head)
                continue
            committed, current = await self._advance_head(
                key, head, head_document(source), write_id
            )
            if committed or await self._committed_by_others(key, entry.version, write_id, current):
                return entry
            await self._withdraw(VERSIONS, version_id(key, entry.version), created)
            head = await self._get_doc(HEADS, key_id(key))

    async def _create_version(self, doc_id: str, source: dict[str, Any]) -> _Doc | None:
        """Create a document in the versions index: ours as stored, or None when another writer's
        document stands under ``doc_id``. Unknown outcomes are read back (``write_id``)."""
        path = f"{self.index_name(VERSIONS)}/_create/{path_id(doc_id)}"
        for attempt in range(1, self._retry.attempts + 1):
            response = await self._send_write("POST", path, source)
            if response is not None and response.status == 201:
                body = response.json()
                return _Doc(source, int(body["_seq_no"]), int(body["_primary_term"]))
            if attempt == 1 and response is not None and response.status == 409:
                return None  # a first, definite 409: nobody but another writer made it
            if response is not None and response.status not in _UNKNOWN_OUTCOME | {409}:
                raise response.error(f"cannot create {doc_id}")
            stored = await self._get_doc(VERSIONS, doc_id)
            if stored is not None:
                return stored if stored.write_id == source["write_id"] else None
            await asyncio.sleep(self._retry.delay(attempt))
        raise BackendUnavailableError(
            f"could not create {doc_id} after {self._retry.attempts} attempts"
        )

    async def _advance_head(
        self, key: ConfigKey, head: _Doc | None, source: dict[str, Any], write_id: str
    ) -> tuple[bool, _Doc | None]:
        """Compare-and-set the head from ``head`` to ``source``: (committed, the head now)."""
        name = self.index_name(HEADS)
        doc_id = path_id(key_id(key))
        if head is None:
            path, params = f"{name}/_create/{doc_id}", None
        else:
            path = f"{name}/_doc/{doc_id}"
            params = {"if_seq_no": str(head.seq_no), "if_primary_term": str(head.primary_term)}
        for attempt in range(1, self._retry.attempts + 1):
            response = await self._send_write("POST", path, source, params=params)
            if response is not None and response.status in (200, 201):
                body = response.json()
                return True, _Doc(source, int(body["_seq_no"]), int(body["_primary_term"]))
            if response is not None and response.status not in _UNKNOWN_OUTCOME | {409}:
                raise response.error(f"cannot update the head of {key}")
            current = await self._get_doc(HEADS, key_id(key))
            if current is not None and current.write_id == write_id:
                return True, current
            if (response is not None and response.status == 409) or not _same(current, head):
                return False, current
            await asyncio.sleep(self._retry.delay(attempt))
        raise BackendUnavailableError(f"could not update the head of {key}")

    async def _committed_by_others(
        self, key: ConfigKey, version: int, write_id: str, current: _Doc | None
    ) -> bool:
        """After a lost head CAS: did another writer's repair carry our version into the head?"""
        if current is None or current.purging or current.version < version:
            return False
        ours = await self._get_doc(VERSIONS, version_id(key, version))
        return ours is not None and ours.write_id == write_id

    async def _catch_up(self, key: ConfigKey, head: _Doc | None) -> _Doc | None:
        """Another writer holds version head+1: return the head once it points there.

        Usually that writer has advanced the head already. If not (it may have died between its
        steps), point the head at its version document ourselves (a compare-and-set, so racing
        repairers are harmless) and return the head as it is then.
        """
        current = await self._get_doc(HEADS, key_id(key))
        if not _same(current, head):
            return current
        latest = head.version if head is not None else 0
        found = await self._get_doc(VERSIONS, version_id(key, latest + 1))
        if found is None:
            return current
        if head is not None and found.lineage != head.lineage:
            # Left by a writer of the key's previous life (before a purge) that died before it
            # could withdraw it: it belongs to no head, so remove it rather than adopt it.
            await self._withdraw(VERSIONS, version_id(key, latest + 1), found)
            return current
        _, after = await self._advance_head(key, head, head_document(found.source), found.write_id)
        return after

    async def _withdraw(self, kind: str, doc_id: str, doc: _Doc) -> None:
        """Delete our own uncommitted document, only if it is still exactly what we wrote."""
        params = {"if_seq_no": str(doc.seq_no), "if_primary_term": str(doc.primary_term)}
        path = f"{self.index_name(kind)}/_doc/{path_id(doc_id)}"
        response = await self._http.request("DELETE", path, params=params, idempotent=True)
        if response.status not in (200, 404, 409):
            raise response.error(f"cannot withdraw {doc_id}")

    async def _send_write(
        self,
        method: str,
        path: str,
        source: dict[str, Any],
        *,
        params: dict[str, str] | None = None,
    ) -> HttpResponse | None:
        """Send a write once; None when the outcome is unknown (timeout, dropped connection)."""
        try:
            return await self._http.request(method, path, json_body=source, params=params)
        except BackendTimeoutError:
            return None

    async def _get_doc(self, kind: str, doc_id: str) -> _Doc | None:
        """A real-time GET: the document, or None when it does not exist."""
        response = await self._http.request(
            "GET", f"{self.index_name(kind)}/_doc/{path_id(doc_id)}"
        )
        body = _json_or_none(response)
        if response.status == 404 and isinstance(body, dict) and body.get("found") is False:
            return None
        if response.status != 200 or not isinstance(body, dict):
            raise response.error(f"cannot read {doc_id}")
        return _Doc(body["_source"], int(body["_seq_no"]), int(body["_primary_term"]))

    async def _mget(self, kind: str, doc_ids: list[str]) -> list[_Doc | None]:
        """Real-time multi-get of ``doc_ids`` in order (None for missing ones)."""
        found: list[_Doc | None] = []
        for start in range(0, len(doc_ids), _MGET_CHUNK):
            chunk = doc_ids[start : start + _MGET_CHUNK]
            response = await self._http.request(
                "POST", f"{self.index_name(kind)}/_mget", json_body={"ids": chunk}, idempotent=True
            )
            if response.status != 200:
                raise response.error("multi-get failed")
            for item in response.json()["docs"]:
                if "error" in item:
                    raise BackendError(f"multi-get failed for {item.get('_id')}: {item['error']}")
                found.append(
                    _Doc(item["_source"], int(item["_seq_no"]), int(item["_primary_term"]))
                    if item.get("found")
                    else None
                )
        return found

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is not None:
            stored = await self._get_doc(VERSIONS, version_id(key, version))
            return entry_from(stored.source) if stored is not None else None
        head = await self._get_doc(HEADS, key_id(key))
        if head is None or not head.live:
            return None
        return entry_from(head.source)

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        head = await self._get_doc(HEADS, key_id(key))
        if head is None or head.purging:
            return []
        versions = list(range(head.version, max(0, head.version - limit), -1))
        found = await self._mget(VERSIONS, [version_id(key, version) for version in versions])
        if all(doc is not None for doc in found):
            return [entry_from(doc.source) for doc in found if doc is not None]
        # Gaps (a restore that wrote only some versions): fall back to a search.
        query = _filters(
            _term("key_id", key_id(key)),
            _term("kind", "version"),
            {"range": {"version": {"lte": head.version}}},
        )
        await self._refresh(VERSIONS)
        body = {"query": query, "sort": [{"version": "desc"}], "size": limit}
        response = await self._search(VERSIONS, body)
        return [entry_from(hit["_source"]) for hit in response["hits"]["hits"]]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        await self._refresh(HEADS)
        query = _live_heads(tenant_id, scope, service)
        return [entry_from(hit["_source"]) async for hit in self._scan(HEADS, query, _KEY_ORDER)]

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        if purge:
            return await self._purge(key)
        entry = await self._write_version(
            key,
            {},
            expected_version=None,
            updated_by=updated_by,
            comment=comment,
            deleted=True,
            only_if_live=True,
        )
        return entry is not None

    async def _purge(self, key: ConfigKey) -> bool:
        while True:
            head = await self._get_doc(HEADS, key_id(key))
            if head is None:
                # Nothing committed. Versions without a head (a writer died before its first
                # head) are left for the next writer to adopt: deleting them here could race
                # with a first write in progress.
                return False
            if head.purging:
                await self._finish_purge(key, head)
                return False
            write_id = uuid.uuid4().hex
            marked = head_document(head.source, purging=True)
            marked["write_id"] = write_id
            committed, current = await self._advance_head(key, head, marked, write_id)
            if committed and current is not None:
                await self._finish_purge(key, current)
                return True

    async def _finish_purge(self, key: ConfigKey, head: _Doc) -> None:
        """Complete a purge whose head is marked: versions, then the marker, then the head.

        Idempotent, so a writer meeting a marked head may run it too, even late: it deletes only
        the marked head's lineage and removes the head only if it is still that marked head.
        """
        await self._delete_versions(key, head.lineage)
        marker = replace(entry_from(head.source), config_value={}, deleted=True)
        source = document(
            marker,
            write_id=head.write_id,
            written_micros=max(epoch_micros(utc_now()), _written_micros(head) + 1),
            lineage=head.lineage,
            kind="purge",
        )
        await self._create_version(source["doc_id"], source)
        await self._withdraw(HEADS, key_id(key), head)

    async def _delete_versions(self, key: ConfigKey, lineage: str) -> int:
        """Delete the version documents of one lineage of ``key`` (after a refresh); how many."""
        await self._refresh(VERSIONS)
        query = _filters(
            _term("key_id", key_id(key)), _term("lineage", lineage), _term("kind", "version")
        )
        response = await self._http.request(
            "POST",
            f"{self.index_name(VERSIONS)}/_delete_by_query",
            params={"conflicts": "proceed", "refresh": "true"},
            json_body={"query": query},
            idempotent=True,
        )
        if response.status != 200:
            raise response.error(f"cannot delete the versions of {key}")
        return int(response.json()["deleted"])

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        await self._refresh(HEADS)
        query = _filters() if include_deleted else _live_heads()
        return [name async for name, _ in self._composite(HEADS, query, "tenant_id")]

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        if include_history:
            await self._refresh(VERSIONS)
            query = _filters(_term("tenant_id", tenant_id), _term("kind", "version"))
            sort = [*_KEY_ORDER[:-1], {"version": "asc"}, {"doc_id": "asc"}]
            async for hit in self._scan(VERSIONS, query, sort):
                yield entry_from(hit["_source"])
            return
        await self._refresh(HEADS)
        async for hit in self._scan(HEADS, _live_heads(tenant_id), _KEY_ORDER):
            yield entry_from(hit["_source"])

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: str) -> int:
        if mode == "append":
            return await self._import_append(entries)
        return await self._import_restore(entries)

    async def _import_append(self, entries: list[ConfigEntry]) -> int:
        semaphore = asyncio.Semaphore(8)

        async def append_key(group: list[ConfigEntry]) -> int:
            async with semaphore:
                for entry in group:
                    await self._write_version(
                        entry.key,
                        entry.config_value,
                        expected_version=None,
                        updated_by=entry.updated_by,
                        comment=entry.comment,
                        deleted=entry.deleted,
                    )
                return len(group)

        groups = [list(group) for _, group in itertools.groupby(entries, key=lambda e: e.key)]
        return sum(await asyncio.gather(*(append_key(group) for group in groups)))

    async def _import_restore(self, entries: list[ConfigEntry]) -> int:
        """Create the missing versions (create-only, so a re-run never duplicates), then raise heads."""
        stored_docs = await self._mget(VERSIONS, [version_id(e.key, e.version) for e in entries])
        stored = {
            (doc.source["key_id"], doc.version): entry_from(doc.source)
            for doc in stored_docs
            if doc is not None
        }
        planned: list[ConfigEntry] = []
        for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
            existing = {
                version: entry for (owner, version), entry in stored.items() if owner == key_id(key)
            }
            planned.extend(plan_restore(group, existing))
        if not planned:
            return 0
        keys = sorted({entry.key for entry in planned})
        heads = dict(zip(keys, await self._mget(HEADS, [key_id(key) for key in keys]), strict=True))
        sources: dict[ConfigKey, list[dict[str, Any]]] = {}
        base = epoch_micros(utc_now())
        for key, group in itertools.groupby(planned, key=lambda entry: entry.key):
            head = heads[key]
            start = max(base, _written_micros(head) + 1)
            lineage = head.lineage if head is not None and not head.purging else uuid.uuid4().hex
            sources[key] = [
                document(
                    entry,
                    write_id=uuid.uuid4().hex,
                    written_micros=start + offset,
                    lineage=lineage,
                )
                for offset, entry in enumerate(group)
            ]
        written = await self._bulk_create(
            [source for group in sources.values() for source in group]
        )
        for key, group_sources in sources.items():
            await self._raise_head(key, group_sources[-1])
        return written

    async def _bulk_create(self, sources: list[dict[str, Any]]) -> int:
        """Create version documents in bulk; returns how many were created (409s already stood)."""
        created = 0
        name = self.index_name(VERSIONS)
        for start in range(0, len(sources), _PAGE_SIZE):
            chunk = sources[start : start + _PAGE_SIZE]
            lines = []
            for source in chunk:
                lines.append(_ndjson({"create": {"_index": name, "_id": source["doc_id"]}}))
                lines.append(_ndjson(source))
            created += await self._send_bulk("".join(lines), chunk)
        return created

    async def _send_bulk(self, payload: str, chunk: list[dict[str, Any]]) -> int:
        for attempt in range(1, self._retry.attempts + 1):
            try:
                response = await self._http.request(
                    "POST", "_bulk", data=payload, content_type="application/x-ndjson"
                )
            except BackendTimeoutError:
                response = None
            if response is not None and response.status == 200:
                created, standing, refused = _bulk_created(response, chunk)
                if refused:
                    # Items refused for overload (429): send the chunk again; what was created
                    # meanwhile comes back as 409 and is recognised by its write_id below.
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                # A 409 may be our own earlier attempt whose answer was lost: compare write_ids.
                found = await self._mget(VERSIONS, [source["doc_id"] for source in standing])
                ours = sum(
                    1
                    for source, doc in zip(standing, found, strict=True)
                    if doc is not None and doc.write_id == source["write_id"]
                )
                return created + ours
            if response is not None and response.status not in _UNKNOWN_OUTCOME:
                raise response.error("bulk create failed")
            # Unknown outcome: creating again is safe (create-only); count what is ours.
            await asyncio.sleep(self._retry.delay(attempt))
        raise BackendUnavailableError("bulk create failed after retries")

    async def _raise_head(self, key: ConfigKey, source: dict[str, Any]) -> None:
        """Point the head at ``source`` unless it already points at that version or a later one."""
        while True:
            head = await self._get_doc(HEADS, key_id(key))
            if head is not None and head.purging:
                await self._finish_purge(key, head)
                continue
            if head is not None and head.version >= int(source["version"]):
                return
            committed, _ = await self._advance_head(
                key, head, head_document(source), source["write_id"]
            )
            if committed:
                return

    async def get_stats(self) -> dict[str, Any]:
        await self._refresh(HEADS, VERSIONS)
        live = _live_heads()
        heads_body = {
            "query": live,
            "size": 0,
            "track_total_hits": True,
            "aggs": {
                "scopes": {"terms": {"field": "scope", "size": len(ConfigScope)}},
                "values": {"composite": _composite_page("tenant_id", None)},
            },
        }
        heads, versions = await asyncio.gather(
            self._search(HEADS, heads_body), self._count(VERSIONS, _term("kind", "version"))
        )
        per_scope = {scope.value: 0 for scope in ConfigScope}
        for bucket in heads["aggregations"]["scopes"]["buckets"]:
            per_scope[bucket["key"]] = int(bucket["doc_count"])
        first_page = heads["aggregations"]["values"]
        tenants = len(first_page["buckets"])
        if tenants == _PAGE_SIZE:
            after = first_page["after_key"]
            tenants += sum([1 async for _ in self._composite(HEADS, live, "tenant_id", after)])
        configs = int(heads["hits"]["total"]["value"])
        return {
            "backend": self.backend_name,
            "flavor": self.flavor,
            "total_configs": configs,
            "total_versions": versions,
            "total_tenants": tenants,
            "configs_per_scope": per_scope,
        }

    async def health_check(self) -> bool:
        """GET /_cluster/health: True for green or yellow. Never raises; a few tries, all of
        them within ``timeout`` seconds in total (each try gets what is left of it)."""
        deadline = time.monotonic() + self.timeout
        for attempt in range(1, _HEALTH_ATTEMPTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                response = await self._http.request(
                    "GET", "_cluster/health", timeout=left, retry=_SINGLE_TRY
                )
            except Exception:
                response = None
            body = _json_or_none(response) if response is not None else None
            if response is not None and response.status == 200 and isinstance(body, dict):
                return body.get("status") in ("green", "yellow")
            await asyncio.sleep(
                min(max(0.0, deadline - time.monotonic()), self._retry.delay(attempt))
            )
        return False

    async def current_cursor(self) -> str:
        await self._refresh(VERSIONS)
        newest = await self._search(
            VERSIONS, {"query": {"match_all": {}}, "sort": [{"written_micros": "desc"}], "size": 1}
        )
        hits = newest["hits"]["hits"]
        if not hits:
            return FeedCursor(None, frozenset()).encode()
        high = int(hits[0]["_source"]["written_micros"])
        query = {"range": {"written_micros": {"gte": high - self.change_window_micros}}}
        seen = [
            feed_token(hit["_source"]) async for hit in self._scan(VERSIONS, query, _FEED_ORDER)
        ]
        return FeedCursor(high, frozenset()).advanced(seen, self.change_window_micros).encode()

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        position = FeedCursor.decode(cursor)
        await self._refresh(VERSIONS)
        query: dict[str, Any] = {"match_all": {}}
        if position.high is not None:
            query = {
                "range": {"written_micros": {"gte": position.high - self.change_window_micros}}
            }
        delivered: list[tuple[int, str]] = []
        changes: list[ConfigChange] = []
        has_more = False
        async for hit in self._scan(VERSIONS, query, _FEED_ORDER):
            token = feed_token(hit["_source"])
            if token in position.seen:
                continue
            if len(changes) == limit:
                has_more = True
                break
            delivered.append(token)
            changes.append(change_from(hit["_source"]))
        cursor_after = position.advanced(delivered, self.change_window_micros)
        return ChangeBatch(tuple(changes), cursor_after.encode(), has_more=has_more)

    async def _refresh(self, *kinds: str) -> None:
        names = ",".join(self.index_name(kind) for kind in kinds)
        response = await self._http.request("POST", f"{names}/_refresh", idempotent=True)
        if response.status != 200:
            raise response.error("refresh failed")

    async def _search(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.request(
            "POST", f"{self.index_name(kind)}/_search", json_body=body, idempotent=True
        )
        if response.status != 200:
            raise response.error("search failed")
        result: dict[str, Any] = response.json()
        return result

    async def _count(self, kind: str, query: dict[str, Any]) -> int:
        response = await self._http.request(
            "POST", f"{self.index_name(kind)}/_count", json_body={"query": query}, idempotent=True
        )
        if response.status != 200:
            raise response.error("count failed")
        return int(response.json()["count"])

    async def _scan(
        self, kind: str, query: dict[str, Any], sort: list[dict[str, str]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every hit of ``query`` in ``sort`` order, paged with search_after (sort ends unique)."""
        search_after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": query,
                "sort": sort,
                "size": _PAGE_SIZE,
                "track_total_hits": False,
            }
            if search_after is not None:
                body["search_after"] = search_after
            hits = (await self._search(kind, body))["hits"]["hits"]
            for hit in hits:
                yield hit
            if len(hits) < _PAGE_SIZE:
                return
            search_after = hits[-1]["sort"]

    async def _composite(
        self, kind: str, query: dict[str, Any], field: str, after: dict[str, Any] | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Every distinct value of ``field`` among matching documents (after ``after``), exactly."""
        while True:
            body = {
                "query": query,
                "size": 0,
                "aggs": {"values": {"composite": _composite_page(field, after)}},
            }
            result = (await self._search(kind, body))["aggregations"]["values"]
            for bucket in result["buckets"]:
                yield bucket["key"][field], int(bucket["doc_count"])
            after = result.get("after_key")
            if after is None or len(result["buckets"]) < _PAGE_SIZE:
                return


def _composite_page(field: str, after: dict[str, Any] | None) -> dict[str, Any]:
    composite: dict[str, Any] = {
        "size": _PAGE_SIZE,
        "sources": [{field: {"terms": {"field": field}}}],
    }
    if after is not None:
        composite["after"] = after
    return composite


_KEY_ORDER = [{"scope": "asc"}, {"service": "asc"}, {"config_key": "asc"}, {"key_id": "asc"}]
_FEED_ORDER = [{"written_micros": "asc"}, {"doc_id": "asc"}]


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: value}}


def _filters(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(clauses)}}


def _live_heads(
    tenant_id: str | None = None, scope: ConfigScope | None = None, service: str | None = None
) -> dict[str, Any]:
    clauses = [_term("deleted", False)]
    if tenant_id is not None:
        clauses.append(_term("tenant_id", tenant_id))
    if scope is not None:
        clauses.append(_term("scope", scope.value))
    if service is not None:
        clauses.append(_term("service", service))
    return _filters(*clauses)


def _written_micros(doc: _Doc | None) -> int:
    return int(doc.source.get("written_micros", 0)) if doc is not None else 0


def _same(current: _Doc | None, expected: _Doc | None) -> bool:
    if current is None or expected is None:
        return current is expected
    return (current.seq_no, current.primary_term) == (expected.seq_no, expected.primary_term)


def _json_or_none(response: HttpResponse) -> Any:
    try:
        return response.json()
    except BackendError:
        return None


def _error_type(response: HttpResponse) -> str | None:
    body = _json_or_none(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error_type = body["error"].get("type")
        return str(error_type) if error_type is not None else None
    return None


def _ndjson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"


def _bulk_created(
    response: HttpResponse, chunk: Iterable[dict[str, Any]]
) -> tuple[int, list[dict[str, Any]], bool]:
    """(items created, sources whose id already stood (409), whether any item was refused)."""
    by_id = {source["doc_id"]: source for source in chunk}
    created = 0
    standing = []
    refused = False
    for item in response.json()["items"]:
        result = item["create"]
        status = int(result["status"])
        if status == 201:
            created += 1
        elif status == 409 and result.get("_id") in by_id:
            standing.append(by_id[result["_id"]])
        elif status == 429 or status >= 500:
            refused = True
        else:
            raise BackendError(f"bulk create of {result.get('_id')} failed: {result.get('error')}")
    return created, standing, refused


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
