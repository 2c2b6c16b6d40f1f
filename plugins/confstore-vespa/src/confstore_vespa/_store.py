"""VespaConfigStore: confstore's document protocol (confstore.docstore) on Vespa 8's ``/document/v1``.

This module keeps only the mapping onto Vespa; the protocol (writes, repair, purge, the change
feed) is ``DocumentConfigStore``'s, document shapes and ids are in ``_documents`` and requests in
``_client``. Create-only is a put with ``create=true`` and the condition ``false`` (Vespa 8.178
or later: older versions cannot create with a condition, which ``initialize`` checks); the head's
compare-and-set is a put conditioned on the ``write_id`` the head was read with; a generation is
deleted by selection. Every write is a POST, which aiohttp never re-sends by itself. Identifiers
reach Vespa only percent-encoded in paths or as escaped literals in selections.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from confstore import (
    BackendError,
    ConfigKey,
    InvalidConfigError,
    IsolatedArea,
    StoreOptions,
    StoreURL,
)
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
    gather_bounded,
)
from confstore.http import HttpClient, RetryPolicy, auth_headers, make_ssl_context

from ._client import DocumentClient
from ._documents import (
    fields_of,
    head_id,
    head_of,
    record_id,
    record_of,
    version_id,
)

DEFAULT_NAMESPACE = "confstore"
DEFAULT_DOCUMENT_TYPE = "config_metadata"
DEFAULT_CLUSTER = "confstore"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
MINIMUM_VERSION = (8, 178)

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_PROBE = ("confstore-probe",)
# Versions named in one document selection of a retention delete.
_VERSIONS_PER_SELECTION = 100


class VespaDocuments(DocumentStore):
    """The DocumentStore primitives on one document type in one Vespa namespace."""

    requirement = (
        "confstore-vespa needs Vespa 8.178 or later (puts with create=true and a condition)."
    )

    def __init__(self, client: DocumentClient, *, timeout: float) -> None:
        self.client = client
        self.select = client.selections
        self.timeout = timeout

    async def initialize(self) -> None:
        """Check that Vespa answers, knows the document type and is recent enough."""
        await self.client.get(_PROBE)
        version = await self.client.version()
        if version is not None and version[:2] < MINIMUM_VERSION:
            found = ".".join(map(str, version))
            raise BackendError(f"Vespa {found} is too old: {self.requirement}")

    async def close(self) -> None:
        await self.client.http.close()

    async def health_check(self) -> bool:
        """GET /state/v1/health within the timeout; True only for status "up"."""
        async with asyncio.timeout(self.timeout):
            return await self.client.health(self.timeout)

    async def get_head(self, key: ConfigKey) -> Head | None:
        fields = await self.client.get(head_id(key))
        return None if fields is None else head_of(fields)

    async def put_head(self, head: Head, expected: Head | None) -> WriteOutcome:
        fields = fields_of(head)
        if expected is None:
            return await self.client.put(head_id(head.key), fields, condition="false", create=True)
        condition = self.select.equals("write_id", expected.write_id)
        return await self.client.put(head_id(head.key), fields, condition=condition)

    async def create_record(self, record: Record) -> WriteOutcome:
        fields = fields_of(record)
        return await self.client.put(record_id(record), fields, condition="false", create=True)

    async def get_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> list[Record | None]:
        found = await gather_bounded(
            self.client.get(version_id(key, generation, version)) for version in versions
        )
        return [None if fields is None else record_of(fields) for fields in found]

    async def scan_versions(self, key: ConfigKey, generation: int) -> AsyncIterator[Record]:
        selection = self.select.all_of(
            self._key_selection("version", key), self.select.equals("generation", generation)
        )
        async for fields in self.client.visit(selection):
            yield record_of(fields)

    async def scan_heads(self, query: HeadQuery) -> AsyncIterator[Head]:
        parts = [self.select.equals("kind", "head")]
        parts.extend(self.select.equals(name, value) for name, value in query.filters())
        field_set = None if query.values else self._summary_field_set()
        async for fields in self.client.visit(self.select.all_of(*parts), field_set=field_set):
            yield head_of(fields)

    async def scan_feed(self, since_micros: int | None) -> AsyncIterator[Record]:
        parts = [
            self.select.any_of(
                self.select.equals("kind", "version"), self.select.equals("kind", "purge")
            )
        ]
        if since_micros is not None:
            parts.append(self.select.compare("written_micros", ">=", since_micros))
        selection = self.select.all_of(*parts)
        async for fields in self.client.visit(selection, field_set=self._summary_field_set()):
            yield record_of(fields)

    async def delete_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> None:
        for start in range(0, len(versions), _VERSIONS_PER_SELECTION):
            chosen = versions[start : start + _VERSIONS_PER_SELECTION]
            await self.client.delete_where(
                self.select.all_of(
                    self._key_selection("version", key),
                    self.select.equals("generation", generation),
                    self.select.any_of(*(self.select.equals("version", v) for v in chosen)),
                )
            )

    async def delete_generations(self, key: ConfigKey, up_to: int) -> None:
        older = self.select.compare("generation", "<=", up_to)
        await self.client.delete_where(
            self.select.all_of(self._key_selection("version", key), older)
        )

    def _key_selection(self, kind: str, key: ConfigKey) -> str:
        return self.select.all_of(
            self.select.equals("kind", kind),
            self.select.equals("tenant_id", key.tenant_id),
            self.select.equals("scope", key.scope.value),
            self.select.equals("service", key.service),
            self.select.equals("config_key", key.config_key),
        )

    def _summary_field_set(self) -> str:
        return f"{self.client.document_type}:{','.join(SUMMARY_FIELDS)}"


class VespaConfigStore(DocumentConfigStore):
    """Configs in Vespa 8 documents; safe for concurrent writers on any number of hosts.

    ``url`` is the container's base URL (``http://host:8080``); ``vespa_app`` may be given instead
    (any object with ``url`` and optionally ``port``, ``cert`` and ``key`` attributes, as pyvespa's
    ``Vespa``). ``cluster`` is the content cluster's id (purges delete by selection, which needs
    it). The constructor does no I/O.
    """

    backend_name: ClassVar[str] = "vespa"

    def __init__(
        self,
        url: str | None = None,
        *,
        vespa_app: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        document_type: str = DEFAULT_DOCUMENT_TYPE,
        cluster: str = DEFAULT_CLUSTER,
        timeout: float = DEFAULT_TIMEOUT,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        change_window: float = DEFAULT_CHANGE_WINDOW,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        poll: PollBounds | None = None,
    ) -> None:
        if vespa_app is not None:
            url = url or _app_url(vespa_app)
            cert = cert or getattr(vespa_app, "cert", None)
            key = key or getattr(vespa_app, "key", None)
        if not url:
            raise InvalidConfigError("VespaConfigStore needs a url or a vespa_app", field="url")
        for name, value in (("namespace", namespace), ("cluster", cluster)):
            if not isinstance(value, str) or _NAME.fullmatch(value) is None:
                raise InvalidConfigError(f"invalid Vespa {name}: {value!r}", field=name)
        if not document_type.isidentifier():
            raise InvalidConfigError(
                f"invalid Vespa document type: {document_type!r}", field="document_type"
            )
        if not timeout > 0:
            raise InvalidConfigError("timeout must be positive", field="timeout")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.document_type = document_type
        self.cluster = cluster
        self.timeout = timeout
        retry = retry or RetryPolicy()
        ssl_context = None
        if cert or key or ca:
            ssl_context = make_ssl_context(ca_file=ca, cert_file=cert, key_file=key)
        http = HttpClient(
            self.url,
            timeout=timeout,
            retry=retry,
            headers=auth_headers(bearer_token=token),
            ssl_context=ssl_context,
        )
        client = DocumentClient(
            http,
            namespace=namespace,
            document_type=document_type,
            cluster=cluster,
            server_timeout=timeout * 0.8,
        )
        super().__init__(
            VespaDocuments(client, timeout=timeout),
            change_window=change_window,
            retry=retry,
            max_value_bytes=max_value_bytes,
            poll=poll,
        )
        self._client = client

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> VespaConfigStore:
        """``vespa+http://host:8080?namespace=..&cluster=..&document_type=..&timeout=..``
        (TLS: ``vespa+https://`` with ``cert``, ``key``, ``ca``; Vespa Cloud tokens: ``token``)."""
        if url.path:
            raise InvalidConfigError(f"a Vespa store URL has no path: {url}", field="url")
        if url.username is not None:
            raise InvalidConfigError(
                "a Vespa store URL carries no user or password; use token= or cert=/key=",
                field="url",
            )
        reader = StoreOptions("vespa", options)
        settings: dict[str, Any] = {
            "namespace": reader.take_str("namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
            "document_type": reader.take_str("document_type", DEFAULT_DOCUMENT_TYPE)
            or DEFAULT_DOCUMENT_TYPE,
            "cluster": reader.take_str("cluster", DEFAULT_CLUSTER),
            "timeout": reader.take_float("timeout", DEFAULT_TIMEOUT, minimum=0.001),
            "cert": reader.take_str("cert"),
            "key": reader.take_str("key"),
            "ca": reader.take_str("ca"),
            "token": reader.take_str("token"),
            "change_window": reader.take_float("change_window", DEFAULT_CHANGE_WINDOW),
            "poll": PollBounds.from_options(reader),
            "max_value_bytes": reader.take_int(
                "max_value_bytes", DEFAULT_MAX_VALUE_BYTES, minimum=1
            ),
        }
        reader.finish()
        return cls(url.base_url, **settings)

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """A new namespace: the URL's (default ``confstore``) followed by ``-`` and ``name``."""
        return IsolatedArea.with_suffix(
            url,
            "namespace",
            DEFAULT_NAMESPACE,
            name,
            lambda namespace: f"namespace {namespace} of Vespa at {url.base_url}",
            cls,
            cls.purge_namespace,
        )

    async def backend_version(self) -> str | None:
        version = await self._client.version()
        return None if version is None else f"Vespa {'.'.join(map(str, version))}"

    async def purge_namespace(self) -> int:
        """Delete every document of this store's type in its namespace (all tenants, all
        versions, no change-feed record); returns how many. For tests and decommissioning."""
        return await self._client.delete_where(self.document_type)

    async def get_stats(self) -> dict[str, Any]:
        stats = await super().get_stats()
        return {**stats, "namespace": self.namespace, "document_type": self.document_type}


def _app_url(app: Any) -> str:
    end_point = getattr(app, "end_point", None)
    if isinstance(end_point, str) and end_point:
        return end_point
    url = str(getattr(app, "url", "") or "")
    port = getattr(app, "port", None)
    if port and url.count(":") < 2:
        url = f"{url.rstrip('/')}:{port}"
    return url
