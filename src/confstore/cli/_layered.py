"""Layered typed configs on the command line: ``explain``, ``check``, ``set --patch``, and the
writes to where a typed config lives, which go through ConfigManager so that the effective
config is validated and a base tenant's write cannot break the tenants that inherit it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._layering import DEFAULT_BASE_TENANT
from .._layers import ExplainedField, merge_patch
from .._manager import ConfigManager
from .._secrets import refuse_masked_secrets
from .._typed import TypedConfigSpec, spec_at
from . import _commands
from ._common import CliError, ExitCode, not_found, open_cli_store
from ._output import Console
from ._schemas import spec_named, validated_value


def add_base_tenant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-tenant",
        default=DEFAULT_BASE_TENANT,
        metavar="NAME",
        help=f"the tenant every other tenant inherits typed configs from "
        f"(default: {DEFAULT_BASE_TENANT})",
    )


@asynccontextmanager
async def _manager(
    args: argparse.Namespace, *, only_reads: bool = False
) -> AsyncIterator[ConfigManager]:
    async with (
        open_cli_store(args, only_reads=only_reads) as store,
        ConfigManager(store, base_tenant=args.base_tenant) as manager,
    ):
        yield manager


def _layered_spec(args: argparse.Namespace) -> TypedConfigSpec | None:
    """The typed config stored where ``args`` point, unless ``--type`` names another one."""
    spec = spec_at(args.scope, args.config_key)
    if spec is None or (getattr(args, "type", None) and spec_named(args.type) is not spec):
        return None
    return spec


async def explain(args: argparse.Namespace, console: Console) -> int:
    spec = spec_at(args.scope, args.config_key)
    if spec is None:
        raise not_found(f"a typed config at {args.scope}/.../{args.config_key}")
    async with _manager(args, only_reads=True) as manager:
        records = await manager.explain(
            spec.model, args.tenant, args.service, show_secrets=console.show_secrets
        )
    if not records:
        raise not_found(f"{_commands.key_label(args)} (nothing stored or inherited)")
    if console.json_mode:
        console.json([record.to_dict() for record in records])
        return ExitCode.OK
    console.table(
        ("path", "value", "source", "from"),
        [
            (record.path, console.json_inline(record.value), record.source, _origin(record))
            for record in records
        ],
    )
    return ExitCode.OK


def _origin(record: ExplainedField) -> str | None:
    if record.variable is not None:
        return record.variable
    if record.tenant_id is not None:
        return f"{record.tenant_id} v{record.version}"
    return None


async def check(args: argparse.Namespace, console: Console) -> int:
    async with _manager(args, only_reads=True) as manager:
        problems = await manager.check(args.tenant)
    rows = [
        {
            "tenant_id": key.tenant_id,
            "scope": key.scope.value,
            "service": key.service,
            "config_key": key.config_key,
            "field": error.field,
            "error": str(error),
        }
        for key, error in problems
    ]
    if console.json_mode:
        console.json({"valid": not rows, "problems": rows})
    elif rows:
        console.table(
            ("tenant", "config", "problem"),
            [
                (
                    row["tenant_id"],
                    f"{row['scope']}/{row['service']}/{row['config_key']}",
                    row["error"],
                )
                for row in rows
            ],
        )
    else:
        console.line("every effective typed config is valid")
    return ExitCode.FAILURE if rows else ExitCode.OK


async def set_(args: argparse.Namespace, console: Console) -> int:
    """Where a typed config lives, the value is the tenant's stored overrides (with ``--patch``,
    a merge patch of them); elsewhere, a plain write or a patch of the stored value."""
    spec = _layered_spec(args)
    if spec is None and not args.patch:
        return await _commands.set_(args, console)
    value = _commands.value_from_arguments(args)
    if not isinstance(value, dict):
        raise CliError("a config value or merge patch is a JSON object", ExitCode.INVALID_INPUT)
    refuse_masked_secrets(value)
    if spec is None:
        return await _patch_untyped(args, console, value)
    options: dict[str, Any] = {
        "expected_version": args.expected_version,
        "updated_by": args.by,
        "comment": args.comment,
    }
    async with _manager(args) as manager:
        if args.patch:
            entry = await manager.patch(spec.model, args.tenant, value, args.service, **options)
        else:
            entry = await manager._write_layered(
                spec, args.tenant, args.service, lambda stored: value, **options
            )
    _commands.report_write(console, entry, "patched" if args.patch else "wrote")
    return ExitCode.OK


async def _patch_untyped(args: argparse.Namespace, console: Console, patch: dict[str, Any]) -> int:
    """Patch a config no typed config lives at: compare-and-set against the version read, so a
    write in between is a conflict (exit status 3) rather than lost."""
    async with open_cli_store(args) as store:
        history = await store.get_config_history(*_commands.key_arguments(args), limit=1)
        latest = history[0] if history else None
        current = latest.config_value if latest is not None and not latest.deleted else {}
        value = validated_value(
            args.type, args.tenant, args.scope, args.config_key, merge_patch(current, patch)
        )
        expected = args.expected_version
        if expected is None:
            expected = 0 if latest is None else latest.version
        entry = await store.set_config(
            *_commands.key_arguments(args),
            value,
            expected_version=expected,
            updated_by=args.by,
            comment=args.comment,
        )
    _commands.report_write(console, entry, "patched")
    return ExitCode.OK


async def delete(args: argparse.Namespace, console: Console) -> int:
    """Deleting the base tenant's typed config is refused when a tenant's overrides need it."""
    spec = spec_at(args.scope, args.config_key)
    if spec is None or args.tenant != args.base_tenant:
        return await _commands.delete(args, console)
    async with _manager(args) as manager:
        deleted = await manager.delete(
            spec.model,
            args.tenant,
            args.service,
            purge=args.purge,
            updated_by=args.by,
            comment=args.comment,
        )
    return _commands.report_delete(console, args, deleted)
