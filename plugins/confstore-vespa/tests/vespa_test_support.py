"""Helpers shared by the confstore-vespa tests (imported by name; pytest puts this dir on sys.path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from confstore_vespa import VespaConfigStore
from confstore_vespa.emulator import LoggedRequest

from confstore.http import RetryPolicy

# Fast retries keep fault-injection tests quick; many attempts keep 20 % injected faults from
# ever exhausting them (0.2 ** 10 per request).
FAST_RETRY = RetryPolicy(attempts=10, base_delay=0.001, max_delay=0.02)

StoreFactory = Callable[..., Awaitable[VespaConfigStore]]


def sequential_rounds(requests: Sequence[LoggedRequest]) -> int:
    """How many waves of requests there were: a wave starts when a request starts after every
    request of the current wave has finished."""
    rounds = 0
    wave_end = float("-inf")
    for request in sorted(requests, key=lambda logged: logged.started):
        if request.started >= wave_end:
            rounds += 1
            wave_end = request.finished
        else:
            wave_end = max(wave_end, request.finished)
    return rounds


def describe(requests: Sequence[LoggedRequest]) -> list[tuple[str, str, Any]]:
    return [(request.method, request.path, request.status) for request in requests]
