"""An in-process Elasticsearch / OpenSearch emulator for tests and benchmarks (aiohttp.web, 127.0.0.1).

It follows the documented Elasticsearch and OpenSearch rules below strictly, so that a client
that passes against it has kept the server's rules rather than the emulator's convenience:

- ``X-Elastic-Product: Elasticsearch`` on every answer (not in OpenSearch mode, which reports
  ``distribution: opensearch``, knows ``flat_object`` instead of ``flattened`` and names queue-full
  rejections ``rejected_execution_exception``); per-document ``_version``, a ``_seq_no`` counter
  per index (one shard), ``_primary_term`` 1.
- 201 created / 200 updated / 409 ``version_conflict_engine_exception``; GET of a missing document
  is 404 ``{"found": false}``, DELETE of one 404 ``result: not_found``; 400 when an index exists,
  404 ``index_not_found_exception``; 406 for a bad or missing Content-Type; error envelopes with
  ``root_cause``; strict mappings (unknown field: 400 ``strict_dynamic_mapping_exception``);
  ``op_type=create`` with ``if_seq_no``: 400.
- GET and _mget are real-time; search, _count, aggregations and _delete_by_query see only the
  state of the last refresh (``refresh=true|wait_for``, ``POST /{index}/_refresh``, or the
  periodic refresh when ``refresh_interval`` is set; it is off by default, so tests prove that a
  client refreshes when it must).
- Bulk NDJSON: the body must end with a newline; HTTP 200 with a status per item.
- Fault injection (statuses, latency, connections dropped before or after the request is
  applied, optionally at random) and a request log (``requests``) for counting round trips.

Usage::

    async with ElasticsearchEmulator(flavor="opensearch") as emulator:
        store = ElasticsearchConfigStore(emulator.url)
        emulator.inject("drop_after", method="POST", path_contains="_create")  # next matching one
        emulator.inject(status=429, times=2)
        emulator.random_fault_rate = 0.1   # each request: 10 % one of random_fault_kinds
        emulator.latency = 0.005           # seconds added to every request
        emulator.clear_log(); ...; sequential_rounds(emulator.requests)

``path_contains`` matches the raw (percent-encoded) path; ``requests`` logs method, raw path,
query, headers, status, injected fault and timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from confstore.emulation import LoopbackServer

from ._engine import (
    EsError,
    Index,
    StoredDoc,
    count,
    illegal_argument,
    index_not_found,
    iter_matches,
    run_search,
)

Flavor = Literal["elasticsearch", "opensearch"]
FaultKind = Literal["status", "drop_before", "drop_after"]
_JSON_TYPES = ("application/json", "application/x-ndjson", "application/vnd.elasticsearch+json")
_FORBIDDEN_INDEX_CHARS = set('\\/*?"<>| ,#:')


@dataclass
class LoggedRequest:
    """One request as the emulator received it (``path`` exactly as sent, still percent-encoded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    fault: str | None = None
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None


@dataclass
class FaultRule:
    """Apply ``kind`` to the next ``times`` requests matching ``method`` and ``path_contains``."""

    kind: FaultKind
    status: int = 503
    times: int = 1
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class _Request:
    method: str
    segments: list[str]
    params: dict[str, str]
    body: bytes
    content_type: str | None


Handler = Callable[["ElasticsearchEmulator", _Request], Awaitable[tuple[int, Any]]]


class ElasticsearchEmulator(LoopbackServer):
    """An Elasticsearch (or OpenSearch) node in this process, listening on 127.0.0.1, port 0
    (HTTPS when given a server ``ssl_context``)."""

    def __init__(
        self,
        *,
        flavor: Flavor = "elasticsearch",
        refresh_interval: float | None = None,
        seed: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if flavor not in ("elasticsearch", "opensearch"):
            raise ValueError(f"flavor must be elasticsearch or opensearch, not {flavor!r}")
        super().__init__(ssl_context=ssl_context)
        self.flavor: Flavor = flavor
        self.refresh_interval = refresh_interval
        self.indices: dict[str, Index] = {}
        self.requests: list[LoggedRequest] = []
        self.faults: list[FaultRule] = []
        self.latency = 0.0
        self.random_fault_rate = 0.0
        self.random_fault_kinds: tuple[tuple[FaultKind, int], ...] = (
            ("status", 503),
            ("status", 429),
            ("drop_before", 0),
            ("drop_after", 0),
        )
        self._random = random.Random(seed)
        self._refresher: asyncio.Task[None] | None = None
        self._refreshed = asyncio.Condition()

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port); returns the base URL."""
        url = await super().start()
        if self.refresh_interval is not None:
            self._refresher = asyncio.create_task(self._refresh_periodically(self.refresh_interval))
        return url

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await super().stop()

    def inject(
        self,
        kind: FaultKind = "status",
        *,
        status: int = 503,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Fail the next ``times`` matching requests: answer ``status``, or drop the connection
        before (``drop_before``) or after (``drop_after``) the request was applied."""
        self.faults.append(FaultRule(kind, status, times, method, path_contains))

    def refresh_all(self) -> None:
        for index in self.indices.values():
            index.refresh()

    def clear_log(self) -> None:
        self.requests.clear()

    def requests_matching(
        self, method: str | None = None, contains: str = ""
    ) -> list[LoggedRequest]:
        return [
            logged
            for logged in self.requests
            if (method is None or logged.method == method) and contains in logged.path
        ]

    async def next_periodic_refresh(self) -> None:
        """Wait until the periodic refresh has run once more (tests await this, never a sleep)."""
        if self._refresher is None:
            raise RuntimeError("the periodic refresh is off (refresh_interval=None)")
        async with self._refreshed:
            await self._refreshed.wait()

    async def _refresh_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.refresh_all()
            async with self._refreshed:
                self._refreshed.notify_all()

    def _next_fault(self, method: str, path: str) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(method, path):
                rule.times -= 1
                if rule.times <= 0:
                    self.faults.remove(rule)
                return rule
        if self.random_fault_rate and self._random.random() < self.random_fault_rate:
            kind, status = self._random.choice(self.random_fault_kinds)
            return FaultRule(kind, status)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        logged = LoggedRequest(
            request.method,
            request.raw_path.split("?", 1)[0],
            request.query_string,
            dict(request.headers),
        )
        self.requests.append(logged)
        try:
            return await self._serve(request, logged)
        finally:
            logged.finished = time.perf_counter()

    async def _serve(self, request: web.Request, logged: LoggedRequest) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        body = await request.read()
        fault = self._next_fault(request.method, logged.path)
        if fault is not None:
            logged.fault = fault.kind if fault.kind != "status" else str(fault.status)
        if fault is not None and fault.kind == "status":
            return self._respond(logged, fault.status, self._fault_body(fault.status))
        if fault is not None and fault.kind == "drop_before":
            return self._drop(request)
        status, payload = await self._dispatch(request, body)
        if fault is not None and fault.kind == "drop_after":
            return self._drop(request)
        return self._respond(logged, status, payload)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _fault_body(self, status: int) -> dict[str, Any]:
        if status == 429:
            rejected = (
                "es_rejected_execution_exception"
                if self.flavor == "elasticsearch"
                else ("rejected_execution_exception")
            )
            return EsError(429, rejected, "rejected execution (queue capacity 200)").body()
        return EsError(
            status, "unavailable_shards_exception", "injected: primary shard is not active"
        ).body()

    def _respond(self, logged: LoggedRequest, status: int, payload: Any) -> web.StreamResponse:
        logged.status = status
        headers = {}
        if self.flavor == "elasticsearch":
            headers["X-elastic-product"] = "Elasticsearch"
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            charset="UTF-8",
            headers=headers,
        )

    async def _dispatch(self, request: web.Request, body: bytes) -> tuple[int, Any]:
        content_type = request.headers.get("Content-Type")
        if body:
            if content_type is None:
                return 406, {"error": "Content-Type header is missing", "status": 406}
            if content_type.split(";", 1)[0].strip().lower() not in _JSON_TYPES:
                return 406, {
                    "error": f"Content-Type header [{content_type}] is not supported",
                    "status": 406,
                }
        raw_path = request.raw_path.split("?", 1)[0]
        segments = [unquote(part) for part in raw_path.strip("/").split("/") if part]
        parsed = _Request(request.method, segments, dict(request.query), body, content_type)
        try:
            return await self._route(parsed)
        except EsError as error:
            return error.status, error.body()

    async def _route(self, request: _Request) -> tuple[int, Any]:
        method, segments = request.method, request.segments
        if not segments:
            return 200, self._info() if method != "HEAD" else None
        head = segments[0]
        if head == "_cluster" and segments[1:] == ["health"]:
            return 200, self._health()
        if head == "_refresh":
            return self._refresh(list(self.indices))
        if head == "_bulk" and method in ("POST", "PUT"):
            return self._bulk(request, None)
        if head == "_mget" and method in ("GET", "POST"):
            return self._mget(request, None)
        if head.startswith("_"):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{head}], must not start with '_'.",
            )
        if len(segments) == 1:
            return self._index_level(request, head)
        action = segments[1]
        rest = segments[2:]
        return await self._document_level(request, head, action, rest)

    def _info(self) -> dict[str, Any]:
        if self.flavor == "opensearch":
            version: dict[str, Any] = {"distribution": "opensearch", "number": "2.19.0"}
            tagline = "The OpenSearch Project: https://opensearch.org/"
        else:
            version = {"number": "9.1.0", "build_flavor": "default", "build_type": "docker"}
            tagline = "You Know, for Search"
        return {
            "name": "emulator",
            "cluster_name": "confstore-emulator",
            "cluster_uuid": "emulator",
            "version": version,
            "tagline": tagline,
        }

    def _health(self) -> dict[str, Any]:
        health: dict[str, Any] = {
            "cluster_name": "confstore-emulator",
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": len(self.indices),
            "active_shards": len(self.indices),
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
        }
        if self.flavor == "opensearch":
            health["discovered_master"] = True
            health["discovered_cluster_manager"] = True
        return health

    def _index(self, name: str) -> Index:
        index = self.indices.get(name)
        if index is None:
            raise index_not_found(name)
        return index

    def _auto_create(self, name: str) -> Index:
        """Writing to a missing index creates it with dynamic mapping, as ES does by default."""
        if name not in self.indices:
            _check_index_name(name)
            self.indices[name] = Index(name, {}, self.flavor)
        return self.indices[name]

    def _index_level(self, request: _Request, name: str) -> tuple[int, Any]:
        if request.method == "HEAD":
            return (200 if name in self.indices else 404), None
        if request.method == "PUT":
            return self._create_index(request, name)
        if request.method == "DELETE":
            self._index(name)
            del self.indices[name]
            return 200, {"acknowledged": True}
        if request.method == "GET":
            index = self._index(name)
            return 200, {name: {"mappings": index.mappings, "settings": {"index": index.settings}}}
        raise _method_not_allowed(request, name)

    def _create_index(self, request: _Request, name: str) -> tuple[int, Any]:
        _check_index_name(name)
        body = _json_body(request) or {}
        if name in self.indices:
            existing = self.indices[name]
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{existing.uuid}] already exists",
                index_uuid=existing.uuid,
                index=name,
            )
        unknown = set(body) - {"settings", "mappings", "aliases"}
        if unknown:
            raise parsing_error_for(f"unknown key [{sorted(unknown)[0]}] for create index")
        self.indices[name] = Index(
            name, body.get("mappings", {}), self.flavor, settings=body.get("settings", {})
        )
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _refresh(self, names: list[str]) -> tuple[int, Any]:
        for name in names:
            self._index(name).refresh()
        shards = len(names)
        return 200, {"_shards": {"total": shards, "successful": shards, "failed": 0}}

    async def _document_level(
        self, request: _Request, name: str, action: str, rest: list[str]
    ) -> tuple[int, Any]:
        method = request.method
        if action == "_refresh" and not rest and method in ("GET", "POST"):
            return self._refresh(name.split(","))
        if action == "_search" and not rest and method in ("GET", "POST"):
            return 200, run_search(self._index(name), _json_body(request) or {})
        if action == "_count" and not rest and method in ("GET", "POST"):
            total = count(self._index(name), _json_body(request) or {})
            return 200, {
                "count": total,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            }
        if action == "_mget" and not rest and method in ("GET", "POST"):
            return self._mget(request, name)
        if action == "_bulk" and not rest and method in ("POST", "PUT"):
            return self._bulk(request, name)
        if action == "_delete_by_query" and not rest and method == "POST":
            return self._delete_by_query(request, name)
        if action == "_doc" and not rest and method == "POST":
            return self._write(request, name, uuid.uuid4().hex[:20], create=True)
        if action in ("_doc", "_create") and len(rest) == 1:
            doc_id = rest[0]
            if method in ("PUT", "POST"):
                create = action == "_create" or request.params.get("op_type") == "create"
                return self._write(request, name, doc_id, create=create)
            if action == "_doc" and method in ("GET", "HEAD"):
                return self._get(request, name, doc_id)
            if action == "_doc" and method == "DELETE":
                return self._delete(request, name, doc_id)
        raise _method_not_allowed(request, "/".join([name, action, *rest]))

    def _write(self, request: _Request, name: str, doc_id: str, *, create: bool) -> tuple[int, Any]:
        if_seq_no, if_primary_term = _cas_params(request.params)
        if create and (if_seq_no is not None or if_primary_term is not None):
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: create operations do not support compare and set. "
                "use index instead;",
            )
        _check_id(doc_id)
        source = _json_body(request)
        index = self._auto_create(name)
        stored, result = index.write(
            doc_id, source, create=create, if_seq_no=if_seq_no, if_primary_term=if_primary_term
        )
        answer = self._write_answer(index, stored.doc_id, stored.version, stored.seq_no, result)
        self._apply_refresh(request.params, index, answer)
        return (201 if result == "created" else 200), answer

    def _write_answer(
        self, index: Index, doc_id: str, version: int, seq_no: int, result: str
    ) -> dict[str, Any]:
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": version,
            "result": result,
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": seq_no,
            "_primary_term": 1,
        }

    def _apply_refresh(self, params: dict[str, str], index: Index, answer: dict[str, Any]) -> None:
        refresh = params.get("refresh")
        if refresh is None or refresh == "false":
            return
        if refresh not in ("", "true", "wait_for"):
            raise illegal_argument(f"Unknown value for refresh: [{refresh}].")
        index.refresh()
        answer["forced_refresh"] = True

    def _get(self, request: _Request, name: str, doc_id: str) -> tuple[int, Any]:
        index = self._index(name)
        realtime = request.params.get("realtime", "true") != "false"
        doc = index.search_view(realtime).get(doc_id)
        if request.method == "HEAD":
            return (200 if doc else 404), None
        if doc is None:
            return 404, {"_index": name, "_id": doc_id, "found": False}
        return 200, _get_answer(index, doc, request.params.get("_source") != "false")

    def _delete(self, request: _Request, name: str, doc_id: str) -> tuple[int, Any]:
        index = self._index(name)
        if_seq_no, if_primary_term = _cas_params(request.params)
        version, seq_no, found = index.delete(
            doc_id, if_seq_no=if_seq_no, if_primary_term=if_primary_term
        )
        answer = self._write_answer(
            index, doc_id, version, seq_no, "deleted" if found else "not_found"
        )
        self._apply_refresh(request.params, index, answer)
        return (200 if found else 404), answer

    def _mget(self, request: _Request, name: str | None) -> tuple[int, Any]:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise illegal_argument("request body is required")
        wanted: list[tuple[str | None, Any]]
        if "ids" in body:
            if name is None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing for doc 0;",
                )
            wanted = [(name, doc_id) for doc_id in body["ids"]]
        elif "docs" in body:
            wanted = [(item.get("_index", name), item.get("_id")) for item in body["docs"]]
        else:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no documents to get;",
            )
        realtime = request.params.get("realtime", "true") != "false"
        docs = []
        for position, (index_name, doc_id) in enumerate(wanted):
            if index_name is None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    f"Validation Failed: 1: index is missing for doc {position};",
                )
            docs.append(self._mget_item(index_name, str(doc_id), realtime))
        return 200, {"docs": docs}

    def _mget_item(self, index_name: str, doc_id: str, realtime: bool) -> dict[str, Any]:
        index = self.indices.get(index_name)
        if index is None:
            return {
                "_index": index_name,
                "_id": doc_id,
                "error": index_not_found(index_name).cause(),
            }
        doc = index.search_view(realtime).get(doc_id)
        if doc is None:
            return {"_index": index_name, "_id": doc_id, "found": False}
        return _get_answer(index, doc, True)

    def _delete_by_query(self, request: _Request, name: str) -> tuple[int, Any]:
        index = self._index(name)
        body = _json_body(request) or {}
        proceed = request.params.get("conflicts") == "proceed"
        deleted = conflicts = 0
        failures = []
        for doc in iter_matches(index, body.get("query")):
            current = index.docs.get(doc.doc_id)
            if current is None or current.seq_no != doc.seq_no:
                conflicts += 1
                if not proceed:
                    failures.append(
                        {
                            "index": name,
                            "id": doc.doc_id,
                            "status": 409,
                            "cause": index.conflict(doc.doc_id, "document changed").cause(),
                        }
                    )
                    break
                continue
            index.delete(doc.doc_id)
            deleted += 1
        if request.params.get("refresh") in ("", "true"):
            index.refresh()
        answer = {
            "took": 1,
            "timed_out": False,
            "total": deleted + conflicts,
            "deleted": deleted,
            "batches": 1,
            "version_conflicts": conflicts,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": failures,
        }
        return (409 if failures else 200), answer

    def _bulk(self, request: _Request, default_index: str | None) -> tuple[int, Any]:
        text = request.body.decode("utf-8")
        if not text.endswith("\n"):
            raise illegal_argument("The bulk request must be terminated by a newline [\\n]")
        lines = text.split("\n")[:-1]
        items = []
        touched: set[str] = set()
        position = 0
        while position < len(lines):
            line = lines[position]
            position += 1
            if not line.strip():
                continue
            action, meta = _bulk_action(line)
            source = None
            if action != "delete":
                if position >= len(lines):
                    raise illegal_argument("The bulk request must be terminated by a newline [\\n]")
                source = _parse_json(lines[position].encode())
                position += 1
            items.append({action: self._bulk_item(action, meta, source, default_index, touched)})
        for name in touched:
            if request.params.get("refresh") in ("", "true", "wait_for"):
                self.indices[name].refresh()
        errors = any("error" in next(iter(item.values())) for item in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(
        self,
        action: str,
        meta: dict[str, Any],
        source: Any,
        default_index: str | None,
        touched: set[str],
    ) -> dict[str, Any]:
        name = meta.get("_index", default_index)
        doc_id = meta.get("_id")
        if name is None:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            )
        if_seq_no, if_primary_term = _cas_params(meta)
        try:
            if action == "delete":
                index = self._index(name)
                version, seq_no, found = index.delete(
                    str(doc_id), if_seq_no=if_seq_no, if_primary_term=if_primary_term
                )
                touched.add(name)
                answer = self._write_answer(
                    index, str(doc_id), version, seq_no, "deleted" if found else "not_found"
                )
                answer["status"] = 200 if found else 404
                return answer
            index = self._auto_create(name)
            touched.add(name)
            if action == "update":
                return self._bulk_update(index, str(doc_id), source)
            if doc_id is None:
                doc_id = uuid.uuid4().hex[:20]
            if action == "create" and if_seq_no is not None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: create operations do not support compare and set. use index instead;",
                )
            stored, result = index.write(
                str(doc_id),
                source,
                create=action == "create",
                if_seq_no=if_seq_no,
                if_primary_term=if_primary_term,
            )
            answer = self._write_answer(index, stored.doc_id, stored.version, stored.seq_no, result)
            answer["status"] = 201 if result == "created" else 200
            return answer
        except EsError as error:
            return {"_index": name, "_id": doc_id, "status": error.status, "error": error.cause()}

    def _bulk_update(self, index: Index, doc_id: str, source: Any) -> dict[str, Any]:
        if not isinstance(source, dict) or "doc" not in source:
            raise illegal_argument("[update] requires a [doc]")
        current = index.docs.get(doc_id)
        if current is None and not source.get("doc_as_upsert"):
            raise EsError(
                404,
                "document_missing_exception",
                f"[{doc_id}]: document missing",
                index_uuid=index.uuid,
                shard="0",
                index=index.name,
            )
        merged = {**(current.source if current else {}), **source["doc"]}
        stored, result = index.write(doc_id, merged, create=False)
        answer = self._write_answer(index, doc_id, stored.version, stored.seq_no, result)
        answer["status"] = 201 if result == "created" else 200
        return answer


def parsing_error_for(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason)


def _method_not_allowed(request: _Request, path: str) -> EsError:
    return EsError(
        405,
        "method_not_allowed",
        f"Incorrect HTTP method for uri [/{path}] and method [{request.method}]",
    )


def _check_index_name(name: str) -> None:
    if (
        not name
        or name != name.lower()
        or name in (".", "..")
        or name[0] in "-_+"
        or any(char in _FORBIDDEN_INDEX_CHARS for char in name)
        or len(name.encode()) > 255
    ):
        raise EsError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}]",
            index_uuid="_na_",
            index=name,
        )


def _check_id(doc_id: str) -> None:
    if len(doc_id.encode()) > 512:
        raise EsError(
            400,
            "action_request_validation_exception",
            f"Validation Failed: 1: id [{doc_id[:60]}...] is too long, must be no longer than 512 bytes;",
        )


def _cas_params(params: dict[str, Any]) -> tuple[int | None, int | None]:
    def number(name: str) -> int | None:
        value = params.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise illegal_argument(f"Failed to parse [{name}] value [{value}]") from None

    return number("if_seq_no"), number("if_primary_term")


def _json_body(request: _Request) -> Any:
    if not request.body:
        return None
    return _parse_json(request.body)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"Failed to parse JSON: {exc}") from exc


def _bulk_action(line: str) -> tuple[str, dict[str, Any]]:
    parsed = _parse_json(line.encode())
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise illegal_argument("Malformed action/metadata line, expected a single action")
    ((action, meta),) = parsed.items()
    if action not in ("index", "create", "update", "delete") or not isinstance(meta, dict):
        raise illegal_argument(f"Malformed action/metadata line, unknown action [{action}]")
    return action, meta


def _get_answer(index: Index, doc: StoredDoc, with_source: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "_index": index.name,
        "_id": doc.doc_id,
        "_version": doc.version,
        "_seq_no": doc.seq_no,
        "_primary_term": doc.primary_term,
        "found": True,
    }
    if with_source:
        answer["_source"] = doc.source
    return answer
