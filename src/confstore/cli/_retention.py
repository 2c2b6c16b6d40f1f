"""``confstore prune``: apply a retention policy and report what went (or would go)."""

from __future__ import annotations

import argparse

from .._retention import RetentionPolicy
from ._common import ExitCode, open_cli_store, read_json_source
from ._output import Console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-last",
        type=int,
        metavar="N",
        help="keep each key's N newest versions (the latest is always kept)",
    )
    parser.add_argument(
        "--older-than",
        metavar="AGE",
        help="remove only versions older than AGE, e.g. 90d, 12h, 30m (with --keep-last: a "
        "version either keeps stays)",
    )
    parser.add_argument(
        "--deleted-older-than",
        metavar="AGE",
        help="remove every version of a deleted key whose tombstone is older than AGE "
        "(its version numbers are not reused)",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="a JSON retention policy with per-tenant and per-scope overrides "
        "(see README: Retention); '-' reads standard input",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would be removed; remove nothing"
    )


async def prune(args: argparse.Namespace, console: Console) -> int:
    policy = None
    if args.policy is not None:
        policy = RetentionPolicy.from_dict(read_json_source(args.policy, small=True))
    async with open_cli_store(args, only_reads=args.dry_run) as store:
        result = await store.prune(
            keep_last=args.keep_last,
            older_than=args.older_than,
            deleted_older_than=args.deleted_older_than,
            tenant_id=args.tenant,
            dry_run=args.dry_run,
            policy=policy,
        )
    if console.json_mode:
        console.json(result.to_dict())
        return ExitCode.OK
    console.table(
        ("tenant", "scope", "service", "config_key", "versions", "through", "purged"),
        [
            (
                key.key.tenant_id,
                key.key.scope.value,
                key.key.service,
                key.key.config_key,
                key.versions,
                key.through_version,
                key.purged,
            )
            for key in result.keys
        ],
    )
    verb = "would remove" if result.dry_run else "removed"
    console.line(
        f"{verb} {result.versions_removed} version(s) of {len(result.keys)} config(s), "
        f"{result.keys_purged} deleted config(s) entirely"
        + ("" if result.dry_run else f"; {result.changes_removed} old change-feed record(s)")
    )
    return ExitCode.OK
