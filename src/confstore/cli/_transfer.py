"""Moving configs in bulk: export, import (with a dry run) and migrate between stores."""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TextIO

from .._errors import ImportFormatError
from .._export import ImportMode, parse_import_document, plan_restore
from .._models import ConfigEntry
from .._registry import open_store
from .._store import ConfigStore
from .._url import StoreURL
from ._common import CliError, ExitCode, open_cli_store, read_json_source
from ._output import Console, ProgressBar, printable


async def export(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args) as store:
        with _export_stream(args.output, console.out) as stream:
            count = await store.write_export(args.tenant, stream, include_history=args.history)
    if not args.output:
        return ExitCode.OK  # the document itself is the output
    if console.json_mode:
        console.json(
            {
                "tenant_id": args.tenant,
                "include_history": args.history,
                "versions_exported": count,
                "output": args.output,
            }
        )
    else:
        console.note(f"exported {count} versions of tenant {args.tenant} to {args.output}")
    return ExitCode.OK


@contextmanager
def _export_stream(path: str | None, stdout: TextIO) -> Iterator[TextIO]:
    """``stdout``, or ``path`` written in full or not at all, readable by its owner only."""
    if path is None:
        yield stdout
        return
    partial = f"{path}.partial"
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


async def import_(args: argparse.Namespace, console: Console) -> int:
    document = read_json_source(args.file)
    tenant_id = args.tenant or _document_tenant(document) or "default"
    async with open_cli_store(args) as store:
        if args.dry_run:
            planned, skipped = await plan_import(store, tenant_id, document, args.mode)
            _show_plan(console, tenant_id, planned, skipped)
            return ExitCode.OK
        written = await store.import_configs(tenant_id, document, mode=args.mode)
    if console.json_mode:
        console.json({"tenant_id": tenant_id, "mode": args.mode, "versions_written": written})
    else:
        console.line(f"imported into tenant {tenant_id} ({args.mode}): {written} versions written")
    return ExitCode.OK


def _document_tenant(document: Any) -> str | None:
    tenant_id = document.get("tenant_id") if isinstance(document, Mapping) else None
    return tenant_id if isinstance(tenant_id, str) else None


async def plan_import(
    store: ConfigStore, tenant_id: str, document: Any, mode: ImportMode
) -> tuple[list[ConfigEntry], int]:
    """The versions an import would write (as they would be stored) and how many it would skip.

    Validates the document exactly as the import does; a restore conflict raises
    ImportConflictError as the import would.
    """
    entries = parse_import_document(tenant_id, document, max_value_bytes=store.max_value_bytes)
    planned: list[ConfigEntry] = []
    for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
        incoming = list(group)
        args = (key.tenant_id, key.scope, key.service, key.config_key)
        if mode == "restore":
            stored = {}
            for entry in incoming:
                found = await store.get_config(*args, version=entry.version)
                if found is not None:
                    stored[entry.version] = found
            planned += plan_restore(incoming, stored)
        else:
            latest = await store.get_config_history(*args, limit=1)
            first = latest[0].version + 1 if latest else 1
            planned += [
                replace(entry, version=version)
                for version, entry in enumerate(incoming, start=first)
            ]
    return planned, len(entries) - len(planned)


def _show_plan(console: Console, tenant_id: str, planned: list[ConfigEntry], skipped: int) -> None:
    if console.json_mode:
        console.json(
            {
                "dry_run": True,
                "tenant_id": tenant_id,
                "would_write": [console.entry_dict(entry) for entry in planned],
                "already_stored": skipped,
            }
        )
        return
    console.table(
        ("scope", "service", "config_key", "version", "change"),
        [
            (e.scope.value, e.service, e.config_key, e.version, "delete" if e.deleted else "set")
            for e in planned
        ],
    )
    console.line(
        f"dry run: would write {len(planned)} versions into tenant {tenant_id} "
        f"({skipped} already stored); nothing was written"
    )


async def migrate(args: argparse.Namespace, console: Console) -> int:
    async with open_store(args.source) as source, open_store(args.target) as target:
        tenants = await source.list_tenants(include_deleted=True)
        total = int((await source.get_stats()).get("total_versions", 0))
        progress = ProgressBar(console.err, total, "versions") if console.err.isatty() else None
        read = written = 0
        for tenant_id in tenants:
            async for batch in _batches(source, tenant_id, args.batch_size):
                try:
                    written += await target.import_configs(tenant_id, batch, mode="restore")
                except ImportFormatError as exc:  # it names the key and version
                    raise ImportFormatError(f"cannot migrate tenant {tenant_id}: {exc}") from exc
                read += len(batch)
                if progress:
                    progress.update(read, tenant_id)
        if progress:
            progress.finish(read, "done")
    summary = {
        "tenants": len(tenants),
        "versions_read": read,
        "versions_written": written,
        "versions_skipped": read - written,
    }
    if console.json_mode:
        console.json(summary)
    else:
        from_url, to_url = StoreURL.parse(args.source), StoreURL.parse(args.target)
        console.line(
            printable(f"migrated {len(tenants)} tenants from {from_url} to {to_url}: ")
            + f"{read} versions read, {written} written, {read - written} already there"
        )
    return ExitCode.OK


async def _batches(
    store: ConfigStore, tenant_id: str, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """A tenant's every version, in export order, as lists of at most ``size`` entry dicts.

    Each batch is a restore import on its own: idempotent, so an interrupted migration is
    continued by running it again, and memory stays bounded by the batch size.
    """
    batch: list[dict[str, Any]] = []
    async for entry in store.iter_configs(tenant_id, include_history=True):
        batch.append(entry.to_dict())
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
