"""Moving configs in bulk: export, import (with a dry run) and migrate between stores."""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Final, TextIO

from .._errors import ImportFormatError
from .._export import ImportMode, ParsedEntries, parse_import_document, plan_restore
from .._export_reader import ExportFileReader
from .._models import ConfigEntry
from .._registry import open_store
from .._store import ConfigStore
from .._url import StoreURL
from ._common import CliError, ExitCode, open_cli_store, open_existing_store, read_json_source
from ._output import Console, ProgressBar, printable


async def export(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
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
    if args.dry_run:
        document = read_json_source(args.file)
        tenant_id = args.tenant or _document_tenant(document) or "default"
        async with open_cli_store(args, only_reads=True) as store:
            planned, skipped = await plan_import(store, tenant_id, document, args.mode)
        _show_plan(console, tenant_id, planned, skipped)
        return ExitCode.OK
    with _import_source(args.file) as (source, size), _collector_paused(), _freed_memory_kept():
        progress = ImportProgress(console, size)
        reader = ExportFileReader(source, on_progress=progress.update)
        header = await reader.read_header()
        tenant_id = args.tenant or _document_tenant(header) or "default"
        entries = _entries_for(reader, tenant_id, header if args.tenant is None else None)
        async with open_cli_store(args) as store:
            written = await store.import_entries(tenant_id, entries, mode=args.mode)
        progress.finish()
    if console.json_mode:
        console.json({"tenant_id": tenant_id, "mode": args.mode, "versions_written": written})
    else:
        console.line(f"imported into tenant {tenant_id} ({args.mode}): {written} versions written")
    return ExitCode.OK


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a file is imported.

    An import makes millions of short-lived objects (the parsed entries, their rows) and no
    reference cycles, so the collector's passes over them find nothing; they cost about a tenth
    of a large import's time. Memory stays bounded: what the import drops is freed at once by
    reference counting. The command owns its process, so the pause affects nothing else.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# glibc's mallopt parameters, their defaults, and the values an import sets: blocks up to
# glibc's largest mmap threshold (32 MiB on 64-bit systems) come from the heap, which is not
# trimmed below 1 GiB of free memory.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_MALLOC_DEFAULT_THRESHOLD: Final = 128 * 1024
_IMPORT_MMAP_THRESHOLD: Final = 32 << 20
_IMPORT_TRIM_THRESHOLD: Final = 1 << 30


@contextmanager
def _freed_memory_kept() -> Iterator[None]:
    """glibc's malloc keeps the memory a file import frees, for the next piece to reuse.

    Each piece of an import allocates and frees a few blocks of a megabyte or more (the text
    read, the run of entries decoded, its rows). By default glibc gives such blocks back to the
    system when they are freed (munmap, or trimming the top of its heap) and asks for them again
    for the next piece, and each page it gets back costs a page fault: about 42,000 for a
    100,000-version import here, most of a tenth of a second of system time. With the trim and
    mmap thresholds raised, freed blocks stay in the heap and are reused (5,900 faults); peak
    memory is what the import holds at once, as before. The defaults come back afterwards (the
    command owns its process). Elsewhere than glibc on Linux this does nothing.
    """
    mallopt = _glibc_mallopt()
    # The trim threshold alone would make things worse: setting it fixes the mmap threshold at
    # its default, so every large block would be mapped and faulted in afresh.
    if mallopt is None or not mallopt(_M_MMAP_THRESHOLD, _IMPORT_MMAP_THRESHOLD):
        yield
        return
    mallopt(_M_TRIM_THRESHOLD, _IMPORT_TRIM_THRESHOLD)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _MALLOC_DEFAULT_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _MALLOC_DEFAULT_THRESHOLD)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt: Callable[[int, int], int] = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    return mallopt


@contextmanager
def _import_source(path: str) -> Iterator[tuple[TextIO, int | None]]:
    """The document to import as a text stream (stdin for ``-``) and its size, if known."""
    if path == "-":
        yield sys.stdin, None
        return
    try:
        # utf-8-sig skips a byte order mark, as read_json_source does.
        stream = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed below)
        size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", ExitCode.INVALID_INPUT) from exc
    with stream:
        yield stream, size


def _entries_for(
    reader: ExportFileReader, tenant_id: str, header: Mapping[str, Any] | None
) -> ParsedEntries:
    """The reader's entries; with the ``header`` the tenant came from, the document may not
    name another tenant after its configs (the import would have gone to the wrong one)."""
    if header is None:
        return reader.entries()

    def read_chunk() -> list[Any] | None:
        chunk = reader.read_chunk()
        if chunk is None and _document_tenant(reader.parser.header) not in (None, tenant_id):
            raise ImportFormatError(
                "the document's tenant_id comes after its configs; give the tenant with --tenant"
            )
        return chunk

    return ParsedEntries(read_chunk)


class ImportProgress:
    """A progress bar on stderr, in KiB of the file read, when stderr is a terminal."""

    def __init__(self, console: Console, size: int | None) -> None:
        self.bar = None
        if size and console.err.isatty():
            self.bar = ProgressBar(console.err, max(1, size // 1024), "KiB")

    def update(self, characters_read: int) -> None:
        if self.bar is not None:
            self.bar.update(min(characters_read // 1024, self.bar.total), "read")

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.finish(self.bar.total, "done")


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
    async with open_existing_store(args.source) as source, open_store(args.target) as target:
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
