"""A small Vespa ``/document/v1`` client on top of ``confstore.http.HttpClient``.

Paths and selections are built here and only here: every path segment is percent-encoded, every
string that reaches a selection goes through ``selection_string`` (a double-quoted literal with
the escapes of Vespa's selection lexer), and numbers are formatted from ints. Nothing a caller
passes is concatenated raw into a path or a selection.

Status codes are interpreted here too: GET 200, or 404 with the document-not-found body
(``{"pathId", "id"}``) for a missing document - any other 404 (a wrong port or path, a container
without ``<document-api/>``) is a BackendError that says so; writes 200 (applied) / 412 (condition
failed, final); 400 a client or schema error. Reads are retried by HttpClient on 429/502/503/504
and dropped connections, writes only on 429 (not applied); what is still failing after that is
BackendUnavailableError. A 5xx (but 507), timeout or dropped connection on a write is an
*unknown outcome* (WriteOutcome.UNKNOWN) that the caller resolves by reading back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from confstore import BackendError, BackendTimeoutError
from confstore.docstore import WriteOutcome
from confstore.http import HttpClient, HttpResponse, RetryPolicy

_SELECTION_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
VISIT_PAGE_SIZE = 512


def selection_string(value: str) -> str:
    """``value`` as a double-quoted selection-language string literal.

    Backslash and double quote are escaped, control characters and everything outside printable
    ASCII become ``\\xHH`` per UTF-8 byte (the lexer's documented escapes), so the literal is
    plain ASCII whatever ``value`` holds.
    """
    out = []
    for char in value:
        if char in _SELECTION_ESCAPES:
            out.append(_SELECTION_ESCAPES[char])
        elif 32 <= ord(char) <= 126:
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return '"' + "".join(out) + '"'


def selection_number(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a selection number must be an int, got {value!r}")
    return str(value)


class SelectionBuilder:
    """Builds selections on one document type's fields from typed values."""

    def __init__(self, document_type: str) -> None:
        self.document_type = document_type

    def field(self, name: str) -> str:
        if not name.isidentifier():
            raise ValueError(f"not a field name: {name!r}")
        return f"{self.document_type}.{name}"

    def equals(self, name: str, value: str | int) -> str:
        literal = selection_string(value) if isinstance(value, str) else selection_number(value)
        return f"{self.field(name)}=={literal}"

    def compare(self, name: str, operator: str, value: int) -> str:
        if operator not in ("<", "<=", ">", ">="):
            raise ValueError(f"not a comparison operator: {operator!r}")
        return f"{self.field(name)}{operator}{selection_number(value)}"

    @staticmethod
    def all_of(*parts: str) -> str:
        return " and ".join(f"({part})" for part in parts)

    @staticmethod
    def any_of(*parts: str) -> str:
        return " or ".join(f"({part})" for part in parts)


class DocumentClient:
    """Get, put, visit and delete documents of one type in one namespace."""

    def __init__(
        self,
        http: HttpClient,
        *,
        namespace: str,
        document_type: str,
        cluster: str,
        server_timeout: float,
    ) -> None:
        self.http = http
        self.namespace = namespace
        self.document_type = document_type
        self.cluster = cluster
        self.server_timeout = server_timeout
        self.selections = SelectionBuilder(document_type)

    def document_path(self, segments: tuple[str, ...]) -> str:
        """``/document/v1/<ns>/<type>/docid/<seg>/<seg>...`` with every segment percent-encoded."""
        if not segments or any(segment == "" for segment in segments):
            raise ValueError(f"document id segments must be non-empty: {segments!r}")
        encoded = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self._type_path()}/{encoded}"

    def _type_path(self) -> str:
        namespace = quote(self.namespace, safe="")
        document_type = quote(self.document_type, safe="")
        return f"/document/v1/{namespace}/{document_type}/docid"

    def _timeout_param(self) -> str:
        return f"{max(1, int(self.server_timeout * 1000))}ms"

    async def get(self, segments: tuple[str, ...]) -> dict[str, Any] | None:
        """The document's fields, or None when it does not exist."""
        response = await self.http.request(
            "GET", self.document_path(segments), params={"timeout": self._timeout_param()}
        )
        if response.status == 404 and _is_missing_document(response):
            return None
        _raise_for_read(response)
        body = response.json()
        fields = body.get("fields", {}) if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise BackendError(f"GET {response.url}: no 'fields' object in the answer")
        return fields

    async def put(
        self,
        segments: tuple[str, ...],
        fields: Mapping[str, Any],
        *,
        condition: str | None = None,
        create: bool = False,
    ) -> WriteOutcome:
        """A whole-document put (POST, which aiohttp never re-sends by itself)."""
        params = {"timeout": self._timeout_param()}
        if condition is not None:
            params["condition"] = condition
        if create:
            params["create"] = "true"
        try:
            response = await self.http.request(
                "POST",
                self.document_path(segments),
                params=params,
                json_body={"fields": dict(fields)},
                idempotent=False,
            )
        except BackendTimeoutError:
            return WriteOutcome.UNKNOWN
        return _write_outcome(response)

    async def visit(
        self, selection: str, *, page_size: int = VISIT_PAGE_SIZE, field_set: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every document matching ``selection`` (the fields of each), page by page.

        Pages may be empty and still carry a continuation; the loop ends only when the answer
        has no continuation.
        """
        params = {"selection": selection, "wantedDocumentCount": str(page_size)}
        if field_set is not None:
            params["fieldSet"] = field_set
        params.update(self._common_visit_params())
        while True:
            response = await self.http.request("GET", self._type_path(), params=params)
            _raise_for_read(response)
            body = _json_object(response)
            documents = body.get("documents", [])
            if not isinstance(documents, list):
                raise BackendError(f"GET {response.url}: 'documents' is not a list")
            for document in documents:
                fields = document.get("fields") if isinstance(document, dict) else None
                if isinstance(fields, dict):
                    yield fields
            continuation = body.get("continuation")
            if not continuation:
                return
            params["continuation"] = continuation

    async def delete_where(self, selection: str) -> int:
        """Remove every document matching ``selection``; returns how many were removed."""
        params = {"selection": selection, **self._common_visit_params()}
        removed = 0
        while True:
            # Deleting by selection is idempotent: repeating a chunk removes nothing twice.
            response = await self.http.request(
                "DELETE", self._type_path(), params=params, idempotent=True
            )
            _raise_for_read(response)
            body = _json_object(response)
            count = body.get("documentCount", 0)
            removed += count if isinstance(count, int) else 0
            continuation = body.get("continuation")
            if not continuation:
                return removed
            params["continuation"] = continuation

    async def version(self) -> tuple[int, ...] | None:
        """The server's version from ``/state/v1/version`` (e.g. ``(8, 178, 3)``); None when
        the container does not say (no such endpoint, or an answer without a version)."""
        response = await self.http.request("GET", "/state/v1/version")
        if response.status != 200:
            return None
        body = response.json_or_none()
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not re.fullmatch(r"\d+(\.\d+)*", version):
            return None
        return tuple(int(part) for part in version.split("."))

    async def health(self, timeout: float) -> bool:
        response = await self.http.request(
            "GET", "/state/v1/health", timeout=timeout, retry=RetryPolicy(attempts=1)
        )
        if response.status != 200:
            return False
        body = response.json()
        status = body.get("status") if isinstance(body, dict) else None
        return isinstance(status, dict) and status.get("code") == "up"

    def _common_visit_params(self) -> dict[str, str]:
        return {"timeout": self._timeout_param(), "cluster": self.cluster}


def _json_object(response: HttpResponse) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise BackendError(f"{response.method} {response.url}: the answer is not a JSON object")
    return body


def _is_missing_document(response: HttpResponse) -> bool:
    """Vespa's document-not-found answer: a JSON object naming the document (``id``)."""
    body = response.json_or_none()
    return isinstance(body, dict) and isinstance(body.get("id"), str) and "fields" not in body


def _write_outcome(response: HttpResponse) -> WriteOutcome:
    if response.status == 200:
        return WriteOutcome.APPLIED
    if response.status == 412:
        return WriteOutcome.CONFLICT
    if response.status >= 500 and response.status != 507:
        # 503 "could not produce a response" and 504 timeouts: the write may have been applied.
        return WriteOutcome.UNKNOWN
    raise response.error("write rejected")


def _raise_for_read(response: HttpResponse) -> None:
    if response.status == 200:
        return
    if response.status == 504:
        raise BackendTimeoutError(f"{response.method} {response.url}: Vespa timed out (504)")
    if response.status == 400:
        raise BackendError(
            f"{response.method} {response.url}: Vespa rejected the request (is the "
            f"application package from schemas/vespa deployed?): {response.text[:300]}"
        )
    if response.status == 404:
        raise BackendError(
            f"{response.method} {response.url}: HTTP 404 that is not Vespa's document-not-found "
            "answer: is this the port of a Vespa container with <document-api/> in services.xml, "
            f"and the URL without a path? {response.text[:300]}"
        )
    raise response.error()
