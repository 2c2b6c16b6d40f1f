"""The server's limits and timeouts, and the keys its parts are found under in the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .._layering import DEFAULT_BASE_TENANT, Layering
from .._store import ConfigStore


@dataclass(frozen=True)
class ServerSettings:
    """Limits that keep one client from hurting the others.

    max_body_bytes: a PUT body (default: twice the store's value limit plus 64 KiB, room for
        a value of the full size however its JSON is escaped); larger bodies get 413.
    max_small_body_bytes: bodies of DELETE and rollback requests.
    max_import_bytes: an import document.
    client_timeout: seconds a client has to send a request's headers (from connecting, or from
        the previous answer on a kept-alive connection; also the idle time after which such a
        connection is closed), to send its body, and to take each chunk of an answer.
    max_header_line / max_header_bytes / max_headers: the request line, one header, how many.
    auth_burst / auth_refill_seconds: failed authentications an address may make at once, and
        how fast that allowance comes back (see FailureThrottle).
    sse_keepalive: seconds between comments on an idle event stream (proxies keep it open).
    sse_queue_limit: events queued for one slow watcher before its stream is closed (it
        reconnects with Last-Event-ID and catches up from the store).
    feed_poll_interval: how often the change feed is polled for writes made around this server
        (its own writes are announced at once).
    shutdown_timeout: seconds in-flight requests get to finish after SIGTERM.
    idempotency_ttl / idempotency_keys_per_token / idempotency_bytes_per_token: how long the
        answer of a write sent with an Idempotency-Key is remembered, and how many keys and
        bytes of answers each token keeps at most (its oldest are forgotten first).
    base_tenant: the tenant every other tenant inherits typed configs from, for ``/explain``
        (as ``ConfigManager(base_tenant=...)``).
    """

    max_body_bytes: int | None = None
    max_small_body_bytes: int = 64 * 1024
    max_import_bytes: int = 64 * 1024 * 1024
    client_timeout: float = 30.0
    max_header_line: int = 8190
    max_header_bytes: int = 8190
    max_headers: int = 100
    auth_burst: int = 10
    auth_refill_seconds: float = 6.0
    sse_keepalive: float = 15.0
    sse_queue_limit: int = 1000
    feed_poll_interval: float = 1.0
    shutdown_timeout: float = 10.0
    idempotency_ttl: float = 3600.0
    idempotency_keys_per_token: int = 10_000
    idempotency_bytes_per_token: int = 16 * 1024 * 1024
    base_tenant: str = DEFAULT_BASE_TENANT

    def body_limit(self, store: ConfigStore) -> int:
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return 2 * store.max_value_bytes + 64 * 1024


STORE = web.AppKey("confstore_store", ConfigStore)
SETTINGS = web.AppKey("confstore_settings", ServerSettings)
# How typed configs are layered for /explain: the server's own environment is no layer of a
# service's config, so none is read.
LAYERING = web.AppKey("confstore_layering", Layering)
