"""``confstore watch``: follow the store's change feed and print each change until a signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from .._errors import BackendError, CursorExpiredError
from .._models import ConfigChange, utc_now
from .._store import ConfigStore
from .._url import StoreURL
from ._common import ExitCode, open_cli_store, store_url
from ._output import Console, format_time, printable


async def watch(args: argparse.Namespace, console: Console) -> int:
    """Poll the change feed from its present end; an outage is reported once and waited out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_cli_store(args, only_reads=True) as store:
        cursor = await store.current_cursor()
        console.note(f"watching {StoreURL.parse(store_url(args))} for changes (Ctrl-C to stop)")
        outage = False
        while not stop.is_set():
            try:
                batch = await store.changes_since(cursor)
            except CursorExpiredError:
                # The store trimmed changes this watch had not read yet (it fell far behind).
                console.note(
                    "confstore: warning: changes were trimmed from the store's feed before they "
                    "could be shown; watching on from the present"
                )
                cursor = await store.current_cursor()
                continue
            except BackendError as exc:
                if not outage:
                    console.note(f"confstore: warning: {exc}; retrying")
                outage = True
                await _pause(stop, args.interval)
                continue
            if outage:
                console.note("confstore: the backend answers again")
                outage = False
            for change in batch.changes:
                if _wanted(change, args):
                    _show_change(console, change)
            cursor = batch.cursor
            if not batch.has_more:
                await _wait_for_changes(store, cursor, stop, args.interval)
    return ExitCode.OK


async def _wait_for_changes(
    store: ConfigStore, cursor: str, stop: asyncio.Event, seconds: float
) -> None:
    """Until the store reports a commit after ``cursor`` (at once on SQLite and on stores told
    of commits), ``seconds`` pass, or a signal asks to stop."""
    waits = [
        asyncio.ensure_future(store.wait_for_changes(cursor, seconds)),
        asyncio.ensure_future(stop.wait()),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
    if isinstance(outcomes[0], Exception):
        # The store could not wait (the next poll reports an outage if there is one): poll.
        await _pause(stop, seconds)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if a signal asks to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _wanted(change: ConfigChange, args: argparse.Namespace) -> bool:
    if args.tenant is not None and change.tenant_id != args.tenant:
        return False
    return args.scope is None or change.scope.value == args.scope


def _show_change(console: Console, change: ConfigChange) -> None:
    key = change.key
    if console.json_mode:
        console.line(console.json_inline(change.to_dict()))
        return
    seen_at = format_time(utc_now())
    shown = printable(f"{change.kind.value:<6}  {key}  version {change.version}")
    console.line(f"{seen_at}  {shown}")
