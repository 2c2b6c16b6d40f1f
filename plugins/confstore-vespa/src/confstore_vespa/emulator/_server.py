"""An in-process Vespa 8 emulator for tests: ``/document/v1`` and ``/state/v1/health`` over aiohttp.web.

It follows the documented Vespa behaviour strictly rather than conveniently, so a client that
passes against it has met these rules:

- POST is a put (whole document), PUT a partial update (``assign``, ``increment``, ``decrement``,
  ``multiply``, ``divide``), DELETE a remove; the id comes from the path, whose segments are
  percent-decoded and re-joined with ``/``.
- GET of a missing document is 404 ``{pathId, id}``; update or remove of a missing document
  without a condition is a 200 no-op; a failed condition is 412, also when the document is missing;
  with ``create=true`` a missing document is written and the condition ignored.
- Fields are checked against the deployed schema (``DEFAULT_SCHEMA``, the same fields as
  ``schemas/vespa/schemas/config_metadata.sd``): an unknown field or a wrong type is 400;
  an empty string is the same as an unset field.
- Selections and conditions go through a real parser (``_selection_parser``); anything it does not
  understand is 400, never a silent match. Unknown query parameters are 400 too.
- Visiting walks documents in 16 hash buckets; a page holds whole buckets until it has
  ``wantedDocumentCount`` documents (default 1) or has scanned 8 buckets, so pages can be empty
  and still carry a continuation; the continuation is opaque and absent when the visit is done.
  Delete-by-selection works the same way, a few buckets per request.
- ``/state/v1/version`` reports ``version``; an emulator of a Vespa older than 8.178 ignores
  ``create=true`` on a put that has a condition (conditional puts could not create before then).
- Faults (``FaultRule``): a status (429/503/504 with ``{pathId, message}``), added latency, or a
  dropped connection before or after the write is applied, by probability or for N requests.
- Every request is recorded in ``request_log`` (method, raw path, query, body, status, timing).

Usage::

    async with VespaEmulator() as vespa:
        store = VespaConfigStore(vespa.url)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from confstore.emulation import LoopbackServer

from ._selection_parser import (
    DocumentView,
    Predicate,
    SelectionError,
    Truth,
    matches,
    parse_selection,
)

DEFAULT_SCHEMA: dict[str, dict[str, str]] = {
    "config_metadata": {
        "kind": "string",
        "tenant_id": "string",
        "scope": "string",
        "service": "string",
        "config_key": "string",
        "generation": "long",
        "version": "long",
        "deleted": "bool",
        "purging": "bool",
        "created_at": "long",
        "updated_at": "long",
        "written_micros": "long",
        "payload": "string",
        "audit": "string",
        "write_id": "string",
    }
}
DEFAULT_VERSION = "8.600.12"
# Puts honour create=true together with a condition since this version.
CONDITIONAL_CREATE_SINCE = (8, 178)

BUCKETS = 16
BUCKETS_PER_PAGE = 8
BUCKETS_PER_DELETE = 4
MAX_WANTED_DOCUMENTS = 1024

Operation = Literal[
    "get", "put", "update", "remove", "visit", "delete_where", "health", "version", "other"
]
FaultAction = Literal["status", "drop_before", "drop_after", "status_after", "latency"]
WRITE_OPERATIONS = frozenset({"put", "update", "remove", "delete_where"})

_COMMON_PARAMETERS = {"timeout", "tracelevel", "route"}
_PARAMETERS: dict[str, set[str]] = {
    "get": {"cluster", "fieldSet", "timeout", "tracelevel"},
    "put": {"condition", "create"} | _COMMON_PARAMETERS,
    "update": {"condition", "create"} | _COMMON_PARAMETERS,
    "remove": {"condition"} | _COMMON_PARAMETERS,
    "visit": {"selection", "continuation", "wantedDocumentCount", "cluster", "fieldSet"}
    | {"concurrency", "stream"}
    | _COMMON_PARAMETERS,
    "delete_where": {"selection", "continuation", "cluster", "timeChunk"} | _COMMON_PARAMETERS,
    "health": set(),
    "version": set(),
}
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1), "byte": (-128, 127)}
_TIMEOUT = re.compile(r"\d+(\.\d+)?(ms|s|ks|µs|us)?")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FaultRule:
    """A fault the emulator injects into matching requests.

    action: ``status`` (answer ``status`` without applying), ``status_after`` (apply, then answer
    ``status``, like a 504 whose write went through), ``drop_before`` / ``drop_after`` (close the
    connection without answering, before or after applying), ``latency`` (wait ``delay`` seconds,
    then carry on). Matching: ``operations`` (None = any), ``methods``, ``path_contains``;
    ``skip`` lets that many matching requests through first (a scripted "the third write fails");
    ``probability`` per matching request; ``times`` limits how often it fires (None = always).
    """

    action: FaultAction
    status: int = 503
    delay: float = 0.0
    operations: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    path_contains: str | None = None
    probability: float = 1.0
    times: int | None = None
    skip: int = 0
    fired: int = 0
    seen: int = 0

    def applies(self, operation: str, method: str, path: str, rng: random.Random) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.operations is not None and operation not in self.operations:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.path_contains is not None and self.path_contains not in path:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


@dataclass
class LoggedRequest:
    """One request as the emulator saw it. ``path`` is the raw (still percent-encoded) path."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    operation: str
    started: float
    finished: float = 0.0
    status: int | None = None
    fault: str | None = None
    dropped: bool = False


@dataclass
class _Document:
    namespace: str
    document_type: str
    specific: str
    fields: dict[str, Any]

    @property
    def full_id(self) -> str:
        return f"id:{self.namespace}:{self.document_type}::{self.specific}"

    def view(self) -> DocumentView:
        return DocumentView(self.namespace, self.document_type, self.specific, self.fields)


@dataclass
class _Target:
    operation: Operation
    namespace: str = ""
    document_type: str = ""
    specific: str = ""

    @property
    def full_id(self) -> str:
        return f"id:{self.namespace}:{self.document_type}::{self.specific}"


@dataclass
class _Reply:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class VespaEmulator(LoopbackServer):
    """A Vespa container + content cluster in this process, on 127.0.0.1 and a free port.

    ``version`` is the Vespa version it plays (``/state/v1/version``); below 8.178 a put ignores
    ``create=true`` when it has a condition, as Vespa did before conditional puts could create.
    """

    def __init__(
        self,
        *,
        schema: Mapping[str, Mapping[str, str]] | None = None,
        cluster: str = "confstore",
        seed: int | None = None,
        latency: float = 0.0,
        version: str = DEFAULT_VERSION,
    ) -> None:
        super().__init__()
        self.version = version
        self.schema = {name: dict(fields) for name, fields in (schema or DEFAULT_SCHEMA).items()}
        self.cluster = cluster
        self.latency = latency
        self.health_status = "up"
        self.faults: list[FaultRule] = []
        self.request_log: list[LoggedRequest] = []
        self._documents: dict[tuple[str, str, str], _Document] = {}
        self._random = random.Random(seed)

    def add_fault(self, action: FaultAction, **options: Any) -> FaultRule:
        """Add a FaultRule (see its docstring for the options) and return it."""
        for name in ("operations", "methods"):
            if options.get(name) is not None:
                options[name] = frozenset(options[name])
        rule = FaultRule(action, **options)
        self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every stored document: full id -> a copy of its fields."""
        return {doc.full_id: dict(doc.fields) for doc in self._documents.values()}

    def put_document(self, full_id: str, fields: Mapping[str, Any]) -> None:
        """Store a document directly (no request, no log), e.g. to stage a crashed writer's state."""
        match = re.fullmatch(r"id:([^:]*):([^:]*)::(.*)", full_id, re.DOTALL)
        if match is None:
            raise ValueError(f"not a document id: {full_id!r}")
        namespace, document_type, specific = match.groups()
        try:
            checked = self._checked_fields(document_type, fields)
        except _HTTPError as error:
            raise ValueError(error.message) from None
        self._documents[(namespace, document_type, specific)] = _Document(
            namespace, document_type, specific, checked
        )

    def remove_document(self, full_id: str) -> bool:
        """Remove a document directly (no request, no log); True if it existed."""
        for key, document in list(self._documents.items()):
            if document.full_id == full_id:
                del self._documents[key]
                return True
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        body_bytes = await request.read()
        entry = LoggedRequest(
            method=request.method,
            path=raw_path,
            query=dict(request.query),
            body=_json_or_text(body_bytes),
            operation="other",
            started=time.perf_counter(),
        )
        self.request_log.append(entry)
        try:
            target = _route(request.method, raw_path)
            entry.operation = target.operation
            reply = await self._serve(request, target, raw_path, body_bytes, entry)
        except _HTTPError as error:
            reply = _Reply(error.status, {"pathId": raw_path, "message": error.message})
            if error.status == 405:
                reply.headers["Allow"] = "GET, POST, PUT, DELETE, OPTIONS"
        entry.finished = time.perf_counter()
        if reply.status < 0:
            entry.dropped = True
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        entry.status = reply.status
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def _serve(
        self,
        request: web.Request,
        target: _Target,
        raw_path: str,
        body: bytes,
        entry: LoggedRequest,
    ) -> _Reply:
        if request.method == "OPTIONS":
            return _Reply(204, None, {"Allow": "GET, POST, PUT, DELETE, OPTIONS"})
        faults = [
            rule
            for rule in self.faults
            if rule.applies(target.operation, request.method, raw_path, self._random)
        ]
        delay = self.latency + sum(rule.delay for rule in faults if rule.action == "latency")
        if delay:
            await asyncio.sleep(delay)
        for rule in faults:
            if rule.action in ("status", "drop_before"):
                return _inject(rule, entry, raw_path, target)
        reply = self._apply(request.method, target, raw_path, dict(request.query), body)
        for rule in faults:
            if rule.action in ("status_after", "drop_after"):
                return _inject(rule, entry, raw_path, target)
        return reply

    def _apply(
        self, method: str, target: _Target, raw_path: str, query: dict[str, str], body: bytes
    ) -> _Reply:
        operation = target.operation
        if operation == "health":
            status = {"code": self.health_status}
            return _Reply(200, {"time": int(time.time() * 1000), "status": status, "metrics": {}})
        if operation == "version":
            return _Reply(200, {"version": self.version})
        _check_parameters(operation, query)
        if target.document_type and target.document_type not in self.schema:
            raise _HTTPError(400, f"Document type {target.document_type} does not exist")
        if "cluster" in query and query["cluster"] != self.cluster:
            raise _HTTPError(
                400, f"Your Vespa deployment has no content cluster '{query['cluster']}'"
            )
        if operation == "get":
            return self._get(target, raw_path, query)
        if operation in ("put", "update", "remove"):
            return self._write(operation, target, raw_path, query, body)
        if operation == "visit":
            return self._visit(target, raw_path, query)
        return self._delete_where(target, raw_path, query)

    def _get(self, target: _Target, raw_path: str, query: dict[str, str]) -> _Reply:
        document = self._documents.get((target.namespace, target.document_type, target.specific))
        reply: dict[str, Any] = {"pathId": raw_path, "id": target.full_id}
        if document is None:
            return _Reply(404, reply)
        wanted = self._field_set(target.document_type, query.get("fieldSet"))
        reply["fields"] = _project(document.fields, wanted)
        return _Reply(200, reply)

    def _write(
        self,
        operation: str,
        target: _Target,
        raw_path: str,
        query: dict[str, str],
        body: bytes,
    ) -> _Reply:
        payload = _parse_body(body) if operation != "remove" or body else {}
        condition_text = query.get("condition", payload.get("condition"))
        create = _parse_bool("create", query.get("create", payload.get("create", False)))
        if operation == "put" and not self._creates_on_conditional_put():
            create = False
        key = (target.namespace, target.document_type, target.specific)
        existing = self._documents.get(key)
        reply: dict[str, Any] = {"pathId": raw_path, "id": target.full_id}
        if condition_text is not None:
            if not isinstance(condition_text, str):
                raise _HTTPError(400, "condition must be a string")
            predicate = self._parse(condition_text)
            condition_holds = existing is not None and matches(predicate, existing.view())
            if (existing is not None or not create) and not condition_holds:
                reply["message"] = (
                    "[UNKNOWN(251013) @ emulator]: ReturnCode(TEST_AND_SET_CONDITION_FAILED, "
                    f"Condition did not match document {target.full_id})"
                )
                return _Reply(412, reply)
        if operation == "put":
            fields = self._checked_fields(target.document_type, _fields_of(payload))
            self._documents[key] = _Document(*key, fields)
        elif operation == "update":
            updated = self._updated_fields(
                target.document_type, existing, _fields_of(payload), create
            )
            if updated is not None:
                self._documents[key] = _Document(*key, updated)
        else:
            self._documents.pop(key, None)
        return _Reply(200, reply)

    def _updated_fields(
        self,
        document_type: str,
        existing: _Document | None,
        operations: Mapping[str, Any],
        create: bool,
    ) -> dict[str, Any] | None:
        if existing is None and not create:
            self._check_update_operations(document_type, operations)
            return None
        fields = dict(existing.fields) if existing is not None else {}
        for name, operation in operations.items():
            kind = self._field_type(document_type, name)
            if not isinstance(operation, dict) or len(operation) != 1:
                raise _HTTPError(400, f"field {name!r}: an update needs one operation object")
            ((op, argument),) = operation.items()
            if op == "assign":
                fields.pop(name, None)
                fields.update(self._checked_fields(document_type, {name: argument}))
                continue
            if op not in ("increment", "decrement", "multiply", "divide"):
                raise _HTTPError(400, f"field {name!r}: update operation {op!r} is not supported")
            if kind not in _INT_RANGES and kind not in ("double", "float"):
                raise _HTTPError(400, f"field {name!r}: arithmetic on a {kind} field")
            current = fields.get(name, 0)
            result = _arithmetic(op, current, argument, name)
            fields.update(self._checked_fields(document_type, {name: result}))
        return fields

    def _creates_on_conditional_put(self) -> bool:
        numbers = re.findall(r"\d+", self.version)[:2]
        return tuple(int(number) for number in numbers) >= CONDITIONAL_CREATE_SINCE

    def _check_update_operations(self, document_type: str, operations: Mapping[str, Any]) -> None:
        for name in operations:
            self._field_type(document_type, name)

    def _visit(self, target: _Target, raw_path: str, query: dict[str, str]) -> _Reply:
        if target.document_type == "" and "cluster" not in query:
            raise _HTTPError(400, "Must set 'cluster' parameter to a valid content cluster id")
        if query.get("stream", "false") not in ("false", "true"):
            raise _HTTPError(400, "stream must be true or false")
        streaming = query.get("stream") == "true"
        wanted = _parse_wanted(query.get("wantedDocumentCount"), streaming)
        predicate = self._visit_predicate(target, query.get("selection"))
        fields_wanted = self._field_set(target.document_type, query.get("fieldSet"))
        bucket = _parse_continuation(query.get("continuation"))
        found: list[dict[str, Any]] = []
        scanned = 0
        while bucket < BUCKETS and (
            streaming or (len(found) < wanted and scanned < BUCKETS_PER_PAGE)
        ):
            for document in self._bucket(bucket):
                if matches(predicate, document.view()):
                    found.append(
                        {"id": document.full_id, "fields": _project(document.fields, fields_wanted)}
                    )
            bucket += 1
            scanned += 1
        reply: dict[str, Any] = {
            "pathId": raw_path,
            "documents": found,
            "documentCount": len(found),
        }
        if bucket < BUCKETS:
            reply["continuation"] = _continuation(bucket)
        return _Reply(200, reply)

    def _delete_where(self, target: _Target, raw_path: str, query: dict[str, str]) -> _Reply:
        if "selection" not in query or "cluster" not in query:
            raise _HTTPError(
                400, "Both 'selection' and 'cluster' must be set to delete by selection"
            )
        predicate = self._visit_predicate(target, query["selection"])
        bucket = _parse_continuation(query.get("continuation"))
        deleted = 0
        for _ in range(BUCKETS_PER_DELETE):
            if bucket >= BUCKETS:
                break
            for document in self._bucket(bucket):
                if matches(predicate, document.view()):
                    key = (document.namespace, document.document_type, document.specific)
                    self._documents.pop(key, None)
                    deleted += 1
            bucket += 1
        reply: dict[str, Any] = {"pathId": raw_path, "documentCount": deleted}
        if bucket < BUCKETS:
            reply["continuation"] = _continuation(bucket)
        return _Reply(200, reply)

    def _visit_predicate(self, target: _Target, selection: str | None) -> Predicate:
        user = self._parse(selection) if selection is not None else None
        namespace, document_type = target.namespace, target.document_type

        def predicate(document: DocumentView) -> Truth:
            if document_type and document.document_type != document_type:
                return Truth.FALSE
            if namespace and document.namespace != namespace:
                return Truth.FALSE
            return Truth.TRUE if user is None else user(document)

        return predicate

    def _bucket(self, bucket: int) -> list[_Document]:
        chosen = [
            document
            for document in self._documents.values()
            if bucket_of(document.full_id) == bucket
        ]
        return sorted(chosen, key=lambda document: _hash(document.full_id))

    def _parse(self, selection: str) -> Predicate:
        try:
            return parse_selection(selection, self.schema)
        except SelectionError as exc:
            raise _HTTPError(400, f"Failed to parse expression '{selection}': {exc}") from None

    def _field_type(self, document_type: str, name: str) -> str:
        fields = self.schema.get(document_type)
        if fields is None:
            raise _HTTPError(400, f"Document type {document_type} does not exist")
        if name not in fields:
            raise _HTTPError(400, f"No field '{name}' in the structure of type '{document_type}'")
        return fields[name]

    def _checked_fields(self, document_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for name, value in fields.items():
            kind = self._field_type(document_type, name)
            if value is None:
                continue
            _check_type(name, kind, value)
            if kind == "string" and value == "":
                continue  # Vespa: feeding "" is the same as leaving the field unset.
            checked[name] = value
        return checked

    def _field_set(self, document_type: str, field_set: str | None) -> set[str] | None:
        """The fields a GET or visit returns: None = all."""
        if field_set in (None, "[all]", "[document]", f"{document_type}:[document]"):
            return None
        assert field_set is not None
        if field_set in ("[id]", "[none]"):
            return set()
        prefix, colon, names = field_set.partition(":")
        if not colon or prefix != document_type:
            raise _HTTPError(400, f"unsupported fieldSet {field_set!r}")
        chosen = set(names.split(","))
        for name in chosen:
            self._field_type(document_type, name)
        return chosen


def _route(method: str, raw_path: str) -> _Target:
    state_operations: dict[str, Operation] = {
        "/state/v1/health": "health",
        "/state/v1/version": "version",
    }
    if raw_path in state_operations:
        if method != "GET":
            raise _HTTPError(405, f"method {method} not allowed on {raw_path}")
        return _Target(state_operations[raw_path])
    segments = raw_path.split("/")
    if segments[:3] != ["", "document", "v1"] or len(segments) < 6 or segments[5] != "docid":
        raise _HTTPError(
            404,
            f"Nothing at '{raw_path}'. Available paths are:\n/document/v1/\n"
            "/document/v1/{namespace}/{documentType}/docid/\n"
            "/document/v1/{namespace}/{documentType}/docid/{*}",
        )
    namespace, document_type = unquote(segments[3]), unquote(segments[4])
    specific = "/".join(unquote(segment) for segment in segments[6:])
    if specific:
        operations: dict[str, Operation] = {
            "GET": "get",
            "POST": "put",
            "PUT": "update",
            "DELETE": "remove",
        }
    else:
        operations = {"GET": "visit", "DELETE": "delete_where"}
    if method == "OPTIONS":
        return _Target("other", namespace, document_type, specific)
    if method not in operations:
        raise _HTTPError(405, f"'{method}' not allowed at '{raw_path}'")
    return _Target(operations[method], namespace, document_type, specific)


def _check_parameters(operation: str, query: Mapping[str, str]) -> None:
    allowed = _PARAMETERS.get(operation, set())
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise _HTTPError(400, f"unknown or unsupported parameter(s) for {operation}: {unknown}")
    if "timeout" in query and _TIMEOUT.fullmatch(query["timeout"]) is None:
        raise _HTTPError(400, f"bad timeout {query['timeout']!r}")


def _parse_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _HTTPError(400, f"Could not read document, bad JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _HTTPError(400, "the request body must be a JSON object")
    unknown = set(payload) - {"fields", "condition", "create", "id", "put", "update", "remove"}
    if unknown:
        raise _HTTPError(400, f"unknown keys in the request body: {sorted(unknown)}")
    return payload


def _fields_of(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = payload.get("fields", {})
    if not isinstance(fields, dict):
        raise _HTTPError(400, "'fields' must be a JSON object")
    return fields


def _parse_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _HTTPError(400, f"{name} must be true or false, got {value!r}")


def _check_type(name: str, kind: str, value: Any) -> None:
    if kind == "string":
        ok = isinstance(value, str)
    elif kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise _HTTPError(400, f"field {name!r} of type {kind} cannot hold {value!r:.60}")


def _arithmetic(op: str, current: Any, argument: Any, name: str) -> Any:
    if not isinstance(argument, int | float) or isinstance(argument, bool):
        raise _HTTPError(400, f"field {name!r}: {op} needs a number")
    if op == "increment":
        return current + argument
    if op == "decrement":
        return current - argument
    if op == "multiply":
        return current * argument
    if argument == 0:
        raise _HTTPError(400, f"field {name!r}: division by zero")
    return current // argument if isinstance(current, int) else current / argument


def _parse_wanted(text: str | None, streaming: bool) -> int:
    if text is None:
        return MAX_WANTED_DOCUMENTS if streaming else 1
    try:
        wanted = int(text)
    except ValueError:
        raise _HTTPError(400, f"wantedDocumentCount must be an integer, got {text!r}") from None
    if wanted <= 0:
        raise _HTTPError(400, "wantedDocumentCount must be positive")
    return min(wanted, MAX_WANTED_DOCUMENTS)


def _continuation(bucket: int) -> str:
    token = json.dumps({"emulator-progress": bucket}).encode()
    return base64.urlsafe_b64encode(token).decode("ascii")


def _parse_continuation(token: str | None) -> int:
    if token is None:
        return 0
    try:
        bucket = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))["emulator-progress"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise _HTTPError(400, f"bad continuation token {token!r}") from None
    if not isinstance(bucket, int) or not 0 <= bucket <= BUCKETS:
        raise _HTTPError(400, f"bad continuation token {token!r}")
    return bucket


def _hash(full_id: str) -> bytes:
    return hashlib.sha256(full_id.encode("utf-8")).digest()


def bucket_of(full_id: str) -> int:
    return _hash(full_id)[0] % BUCKETS


def _project(fields: Mapping[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    if wanted is None:
        return dict(fields)
    return {name: value for name, value in fields.items() if name in wanted}


def _inject(rule: FaultRule, entry: LoggedRequest, raw_path: str, target: _Target) -> _Reply:
    """The reply for a status or dropped-connection fault (status -1: drop the connection)."""
    if rule.action.startswith("drop"):
        entry.fault = rule.action
        return _Reply(-1, None)
    entry.fault = f"{rule.action} {rule.status}"
    body: dict[str, Any] = {"pathId": raw_path, "message": f"emulated fault: HTTP {rule.status}"}
    if target.specific:
        body["id"] = target.full_id
    return _Reply(rule.status, body)


def _json_or_text(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
