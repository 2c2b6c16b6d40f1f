"""The commands that read, write and watch single configs: one async function per subcommand.

Each takes the parsed arguments and a Console and returns an exit code; failures raise
ConfigStoreError or CliError and ``_app`` turns them into one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigStoreError
from .._manager import ConfigManager
from .._models import ConfigEntry
from .._store import ConfigStore
from ._common import (
    CliError,
    ExitCode,
    not_found,
    open_cli_store,
    read_json_source,
    read_json_text,
)
from ._output import Console, config_path, printable, printable_json
from ._schemas import (
    field_changes,
    json_schema_of,
    typed_config_rows,
    validated_value,
)


def key_label(args: argparse.Namespace) -> str:
    return f"{args.tenant}/{args.scope}/{args.service}/{args.config_key}"


def key_arguments(args: argparse.Namespace) -> tuple[str, str, str, str]:
    return args.tenant, args.scope, args.service, args.config_key


def show_entry(console: Console, entry: ConfigEntry) -> None:
    data = console.entry_dict(entry)
    if console.json_mode:
        console.json(data)
        return
    console.table(
        ("field", "value"),
        [
            ("config", f"{entry.tenant_id}/{config_path(entry)}"),
            ("version", entry.version),
            ("created_at", entry.created_at),
            ("updated_at", entry.updated_at),
            ("updated_by", entry.updated_by),
            ("comment", entry.comment),
            ("deleted", entry.deleted),
        ],
    )
    console.line("value:")
    console.line(printable_json(data["config_value"], indent=2))


def show_history(
    console: Console, entries: Sequence[ConfigEntry], *, complete: bool = False
) -> None:
    """The versions as a table; ``complete`` says they are every version stored, so a first one
    above 1 means older versions were pruned (retention), which is said below the table."""
    if console.json_mode:
        console.json([console.entry_dict(entry) for entry in entries])
        return
    console.table(
        ("version", "updated_at", "updated_by", "deleted", "comment"),
        [(e.version, e.updated_at, e.updated_by, e.deleted, e.comment) for e in entries],
    )
    if complete and entries and entries[-1].version > 1:
        console.line(f"(versions 1-{entries[-1].version - 1} were pruned)")


def show_diff(console: Console, label: str, old: ConfigEntry, new: ConfigEntry) -> None:
    changes = field_changes(old, new, show_secrets=console.show_secrets)
    if console.json_mode:
        console.json({"from_version": old.version, "to_version": new.version, "changes": changes})
        return
    console.line(console.paint(f"--- {label} version {old.version}", "bold"))
    console.line(console.paint(f"+++ {label} version {new.version}", "bold"))
    if not changes:
        console.line("(no changes)")
    for change in changes:
        console.line(_diff_line(console, change))


def _diff_line(console: Console, change: dict[str, Any]) -> str:
    path, kind = printable(change["path"]), change["kind"]
    if kind == "added":
        return console.paint(f"+ {path}: {printable_json(change['new'])}", "green")
    if kind == "removed":
        return console.paint(f"- {path}: {printable_json(change['old'])}", "red")
    old, new = printable_json(change["old"]), printable_json(change["new"])
    return console.paint(f"~ {path}: {old} -> {new}", "yellow")


async def get(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        entry = await store.get_config(*key_arguments(args), version=args.version)
    if entry is None:
        at_version = f" version {args.version}" if args.version is not None else ""
        raise not_found(f"{key_label(args)}{at_version}")
    show_entry(console, entry)
    return ExitCode.OK


def value_from_arguments(args: argparse.Namespace) -> Any:
    """The value to write; a key twice in one object is refused, not resolved by a guess."""
    if args.file is not None:
        return read_json_source(args.file, small=True)
    if args.value is None:
        raise CliError("give the value inline, as '-' for stdin, or with --file", ExitCode.USAGE)
    if args.value == "-":
        return read_json_source("-", small=True)
    return read_json_text(args.value, "the value", unique=True)


async def set_(args: argparse.Namespace, console: Console) -> int:
    value = validated_value(
        args.type, args.tenant, args.scope, args.config_key, value_from_arguments(args)
    )
    async with open_cli_store(args) as store:
        entry = await store.set_config(
            *key_arguments(args),
            value,
            expected_version=args.expected_version,
            updated_by=args.by,
            comment=args.comment,
        )
    report_write(console, entry, "wrote")
    return ExitCode.OK


def report_write(console: Console, entry: ConfigEntry, verb: str) -> None:
    if console.json_mode:
        console.json(console.entry_dict(entry))
    else:
        console.line(f"{verb} {entry.tenant_id}/{config_path(entry)} version {entry.version}")


async def delete(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args) as store:
        deleted = await store.delete_config(
            *key_arguments(args), purge=args.purge, updated_by=args.by, comment=args.comment
        )
    return report_delete(console, args, deleted)


def report_delete(console: Console, args: argparse.Namespace, deleted: bool) -> int:
    if not deleted:
        raise not_found(f"{key_label(args)} (no live config to delete)")
    action = "purged every version of" if args.purge else "deleted"
    if console.json_mode:
        console.json({"deleted": True, "purged": args.purge})
    else:
        console.line(f"{action} {key_label(args)}")
    return ExitCode.OK


async def list_(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        entries = await store.list_configs(args.tenant, args.scope, args.service)
    if console.json_mode:
        console.json([console.entry_dict(entry) for entry in entries])
        return ExitCode.OK
    console.table(
        ("scope", "service", "config_key", "version", "updated_at", "updated_by"),
        [
            (e.scope.value, e.service, e.config_key, e.version, e.updated_at, e.updated_by)
            for e in entries
        ],
    )
    return ExitCode.OK


async def tenants(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        names = await store.list_tenants(include_deleted=args.all)
    if console.json_mode:
        console.json(names)
    else:
        console.table(("tenant_id",), [(name,) for name in names])
    return ExitCode.OK


async def history(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        entries = await store.get_config_history(*key_arguments(args), limit=args.limit)
    if not entries:
        raise not_found(key_label(args))
    show_history(console, entries, complete=len(entries) < args.limit)
    return ExitCode.OK


async def _version_or_latest(
    store: ConfigStore, args: argparse.Namespace, version: int | None
) -> ConfigEntry:
    if version is None:
        latest = await store.get_config_history(*key_arguments(args), limit=1)
        if not latest:
            raise not_found(key_label(args))
        return latest[0]
    entry = await store.get_config(*key_arguments(args), version=version)
    if entry is None:
        raise not_found(f"{key_label(args)} version {version}")
    return entry


async def diff(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        new = await _version_or_latest(store, args, args.to_version)
        from_version = args.from_version if args.from_version is not None else new.version - 1
        if from_version < 1:
            raise not_found(f"{key_label(args)} has no version before {new.version}")
        old = await _version_or_latest(store, args, from_version)
    show_diff(console, key_label(args), old, new)
    return ExitCode.OK


async def rollback(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args) as store:
        target = await _version_or_latest(store, args, args.version)
        async with ConfigManager(store) as manager:
            entry = await manager.rollback(
                *key_arguments(args), target.version, updated_by=args.by, comment=args.comment
            )
    report_write(console, entry, f"rolled back to version {target.version}: wrote")
    return ExitCode.OK


async def stats(args: argparse.Namespace, console: Console) -> int:
    async with open_cli_store(args, only_reads=True) as store:
        counts = await store.get_stats()
    if console.json_mode:
        console.json(counts)
        return ExitCode.OK
    rows = [(name, value) for name, value in counts.items() if name != "configs_per_scope"]
    rows += [
        (f"configs in scope {scope}", value)
        for scope, value in counts.get("configs_per_scope", {}).items()
    ]
    console.table(("statistic", "value"), rows)
    return ExitCode.OK


async def health(args: argparse.Namespace, console: Console) -> int:
    store = open_cli_store(args)
    started = time.perf_counter()
    problem = None
    try:
        await store.initialize()
        healthy = await store.health_check()
    except ConfigStoreError as exc:
        healthy, problem = False, str(exc)
    finally:
        await _close_quietly(store)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if console.json_mode:
        report = {"healthy": healthy, "backend": store.backend_name, "elapsed_ms": elapsed_ms}
        console.json({**report, "error": problem})
    else:
        state = "healthy" if healthy else "unhealthy"
        detail = f": {printable(problem)}" if problem else ""
        console.line(f"{state} ({store.backend_name}, {elapsed_ms} ms){detail}")
    return ExitCode.OK if healthy else ExitCode.FAILURE


async def _close_quietly(store: ConfigStore) -> None:
    with contextlib.suppress(ConfigStoreError):
        await store.close()


async def schema(args: argparse.Namespace, console: Console) -> int:
    if args.name is None:
        rows = typed_config_rows()
        if console.json_mode:
            console.json(
                [
                    dict(zip(("name", "scope", "service", "config_key"), row, strict=True))
                    for row in rows
                ]
            )
        else:
            console.table(("name", "scope", "service", "config_key"), rows)
        return ExitCode.OK
    console.json(json_schema_of(args.name))
    return ExitCode.OK
