"""Helpers shared by the confstore-vespa tests (imported by name; pytest puts this dir on sys.path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from confstore_vespa import VespaConfigStore

from confstore.http import RetryPolicy

# Fast retries keep fault-injection tests quick; many attempts keep 20 % injected faults from
# ever exhausting them (0.2 ** 10 per request).
FAST_RETRY = RetryPolicy(attempts=10, base_delay=0.001, max_delay=0.02)

StoreFactory = Callable[..., Awaitable[VespaConfigStore]]
