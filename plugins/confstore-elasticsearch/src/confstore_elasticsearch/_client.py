"""A small Elasticsearch / OpenSearch REST client on top of ``confstore.http.HttpClient``.

Status codes are interpreted here: a conditional write (``_create``, ``_doc`` with
``if_seq_no``/``if_primary_term``) is 200/201 applied, 409 refused (final), and 502/503/504, a
timeout or a dropped connection an *unknown outcome* the caller resolves by reading back; every
write is a POST, which aiohttp never re-sends by itself. Reads are real-time GET and ``_mget``;
searches see only refreshed data, so scans refresh first (``POST /{index}/_refresh``, never a
sleep) and page with ``search_after`` on a sort that ends with a unique field.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from confstore import BackendError, BackendTimeoutError
from confstore.docstore import WriteOutcome
from confstore.http import HttpClient, RetryPolicy

PAGE_SIZE = 500
_UNKNOWN_OUTCOME = frozenset({502, 503, 504})
_ITEM_OUTCOMES = {200: WriteOutcome.APPLIED, 201: WriteOutcome.APPLIED, 409: WriteOutcome.CONFLICT}
_SINGLE_TRY = RetryPolicy(attempts=1)
_HEALTH_ATTEMPTS = 3


class IndexClient:
    """The requests the store makes, with their answers interpreted."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def create_index(self, name: str, body: dict[str, Any]) -> None:
        """Create an index; one that exists already is fine."""
        response = await self.http.request("PUT", name, json_body=body, idempotent=True)
        answer = response.json_or_none()
        error = answer.get("error") if isinstance(answer, dict) else None
        exists = (
            isinstance(error, dict) and error.get("type") == "resource_already_exists_exception"
        )
        if response.status != 200 and not (response.status == 400 and exists):
            raise response.error(f"cannot create index {name}")

    async def delete_index(self, name: str) -> None:
        """Delete an index; one that does not exist is fine."""
        response = await self.http.request("DELETE", name, idempotent=True)
        if response.status not in (200, 404):
            raise response.error(f"cannot delete index {name}")

    async def server_version(self) -> str | None:
        """``GET /``: "Elasticsearch 9.1.0" or "OpenSearch 2.19.0", None if it does not say."""
        response = await self.http.request("GET", "")
        if response.status != 200:
            raise response.error("cannot read the server's version")
        body = response.json_or_none()
        version = body.get("version") if isinstance(body, dict) else None
        number = version.get("number") if isinstance(version, dict) else None
        if not isinstance(number, str):
            return None
        distribution = version.get("distribution") if isinstance(version, dict) else None
        return f"{'OpenSearch' if distribution == 'opensearch' else 'Elasticsearch'} {number}"

    async def get(self, index: str, path_id: str) -> dict[str, Any] | None:
        """A real-time GET: the answer (``_source``, ``_seq_no``...), or None if not found."""
        response = await self.http.request("GET", f"{index}/_doc/{path_id}")
        body = response.json_or_none()
        if response.status == 404 and isinstance(body, dict) and body.get("found") is False:
            return None
        if response.status != 200 or not isinstance(body, dict):
            raise response.error(f"cannot read {index}/{path_id}")
        return body

    async def mget(self, index: str, doc_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Real-time multi-get of ``doc_ids`` in order (None for missing ones)."""
        found: list[dict[str, Any] | None] = []
        for start in range(0, len(doc_ids), PAGE_SIZE):
            response = await self.http.request(
                "POST",
                f"{index}/_mget",
                json_body={"ids": list(doc_ids[start : start + PAGE_SIZE])},
                idempotent=True,
            )
            if response.status != 200:
                raise response.error("multi-get failed")
            for item in response.json()["docs"]:
                if "error" in item:
                    raise BackendError(f"multi-get failed for {item.get('_id')}: {item['error']}")
                found.append(item if item.get("found") else None)
        return found

    async def write(
        self, path: str, source: dict[str, Any], params: dict[str, str] | None = None
    ) -> WriteOutcome:
        """Send a conditional write once (a POST, never re-sent by the transport)."""
        try:
            response = await self.http.request("POST", path, json_body=source, params=params)
        except BackendTimeoutError:
            return WriteOutcome.UNKNOWN
        if response.status in (200, 201):
            return WriteOutcome.APPLIED
        if response.status == 409:
            return WriteOutcome.CONFLICT
        if response.status in _UNKNOWN_OUTCOME:
            return WriteOutcome.UNKNOWN
        raise response.error(f"write to {path} refused")

    async def bulk_create(
        self, index: str, documents: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[WriteOutcome]:
        """Create (id, source) documents with ``_bulk``, outcomes in order; items refused for
        overload (429, not applied) are sent again with backoff."""
        outcomes = [WriteOutcome.UNKNOWN] * len(documents)
        pending = list(range(len(documents)))
        for attempt in range(1, self.http.retry.attempts + 1):
            lines = []
            for position in pending:
                doc_id, source = documents[position]
                lines.append(_ndjson({"create": {"_index": index, "_id": doc_id}}))
                lines.append(_ndjson(source))
            try:
                response = await self.http.request(
                    "POST", "_bulk", data="".join(lines), content_type="application/x-ndjson"
                )
            except BackendTimeoutError:
                return outcomes  # what was pending has an unknown outcome
            if response.status in _UNKNOWN_OUTCOME:
                return outcomes
            if response.status != 200:
                raise response.error("bulk create refused")
            refused = []
            for position, item in zip(pending, response.json()["items"], strict=True):
                status = int(item["create"]["status"])
                if status == 429:
                    refused.append(position)
                elif status in _ITEM_OUTCOMES or status >= 500:
                    outcomes[position] = _ITEM_OUTCOMES.get(status, WriteOutcome.UNKNOWN)
                else:
                    raise BackendError(f"bulk create refused: {item['create'].get('error')}")
            pending = refused
            if not pending:
                break
            await asyncio.sleep(self.http.retry.delay(attempt))
        return outcomes

    async def refresh(self, index: str) -> None:
        response = await self.http.request("POST", f"{index}/_refresh", idempotent=True)
        if response.status != 200:
            raise response.error("refresh failed")

    async def scan(
        self, index: str, query: dict[str, Any], sort: list[dict[str, str]], source: Any = True
    ) -> AsyncIterator[dict[str, Any]]:
        """Every hit of ``query`` in ``sort`` order (refreshed first), paged with search_after."""
        await self.refresh(index)
        search_after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": query,
                "sort": sort,
                "size": PAGE_SIZE,
                "track_total_hits": False,
                "_source": source,
            }
            if search_after is not None:
                body["search_after"] = search_after
            response = await self.http.request(
                "POST", f"{index}/_search", json_body=body, idempotent=True
            )
            if response.status != 200:
                raise response.error("search failed")
            hits = response.json()["hits"]["hits"]
            for hit in hits:
                yield hit
            if len(hits) < PAGE_SIZE:
                return
            search_after = hits[-1]["sort"]

    async def delete_by_query(self, index: str, query: dict[str, Any]) -> None:
        """Delete what ``query`` matches (refreshed first, so no acknowledged write is missed)."""
        await self.refresh(index)
        response = await self.http.request(
            "POST",
            f"{index}/_delete_by_query",
            params={"conflicts": "proceed", "refresh": "true"},
            json_body={"query": query},
            idempotent=True,
        )
        if response.status != 200:
            raise response.error("delete by query failed")

    async def healthy(self, timeout: float) -> bool:
        """GET /_cluster/health: True for green or yellow; a few tries, all of them within
        ``timeout`` seconds in total (each try gets what is left of it). Never raises."""
        deadline = time.monotonic() + timeout
        for attempt in range(1, _HEALTH_ATTEMPTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                response = await self.http.request(
                    "GET", "_cluster/health", timeout=left, retry=_SINGLE_TRY
                )
            except Exception:
                response = None
            body = response.json_or_none() if response is not None else None
            if response is not None and response.status == 200 and isinstance(body, dict):
                return body.get("status") in ("green", "yellow")
            pause = self.http.retry.delay(attempt)
            await asyncio.sleep(min(max(0.0, deadline - time.monotonic()), pause))
        return False


def token(document: dict[str, Any]) -> tuple[int, int]:
    """The compare-and-set token of a document as read: (seq_no, primary_term)."""
    return int(document["_seq_no"]), int(document["_primary_term"])


def _ndjson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
