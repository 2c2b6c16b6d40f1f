"""The ``confstore`` command: argument parsing, dispatch, and errors turned into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

from .. import __version__
from .._errors import (
    BackendError,
    ConfigStoreError,
    ImportConflictError,
    ImportFormatError,
    InvalidConfigError,
    InvalidIdentifierError,
    NoSuchBackendError,
    VersionConflictError,
)
from .._models import ConfigScope
from . import _commands, _conformance, _demo, _layered, _retention, _server, _transfer, _watch
from ._common import CliError, ExitCode
from ._output import Console

Command = Callable[[argparse.Namespace, Console], Awaitable[int]]

DESCRIPTION = """\
confstore keeps application configuration for many tenants, with every change kept as a
numbered version. A config is named by a tenant, a scope (system, agent, routing or
telemetry), a service and a config key; its value is a JSON object. This command reads,
writes, compares, rolls back, exports, imports and migrates configs in any confstore
backend, chosen by URL (--url, else $CONFSTORE_URL, else sqlite:///data/config/config.db).
Start with `confstore demo`.
"""

EPILOG = """\
examples:
  confstore demo                                      a guided tour on the default store
  confstore set system system system_config '{"llm_model": "gpt-4o"}' --by alice
  confstore get system system system_config           the latest version (secrets masked)
  confstore list --tenant acme                        every live config of a tenant
  confstore history system system system_config       all versions, newest first
  confstore diff system system system_config 1 2      what changed between two versions
  confstore rollback system system system_config 1    write version 1 again as a new version
  confstore set system system system_config '{"llm_model": null}' --patch --tenant acme
  confstore explain system system system_config --tenant acme   where each value comes from
  confstore export --history -o backup.json           a tenant's configs, every version
  confstore import backup.json --dry-run              what an import would write
  confstore migrate --from sqlite:///old.db --to vespa+http://vespa:8080
  confstore prune --keep-last 10 --older-than 90d --dry-run   what retention would remove
  confstore --url sqlite:///tmp/c.db watch            print changes as they happen
  confstore conformance postgresql://db/app           the conformance suite, safe on a live store

Add --json to any command for machine-readable output; --show-secrets to reveal secrets.

exit status:
  0  success
  1  failure, or an unhealthy backend (health)
  2  usage error (bad command line)
  3  conflict: the version changed underneath (--expected-version) or an import disagrees
  4  not found: no such config, version or typed config name
  5  backend unavailable, timed out, or not installed
  6  invalid input: bad identifier, config value, JSON or import document
  130  interrupted (Ctrl-C): an interrupted import writes nothing
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are reported like every other error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", prog=self.prog)


class UsageError(CliError):
    """A bad command line; ``prog`` is the (sub)command whose arguments are wrong.

    ``explained`` says the help was printed instead, so a line of text would add nothing.
    """

    def __init__(self, message: str, *, prog: str, explained: bool = False) -> None:
        super().__init__(message, ExitCode.USAGE)
        self.prog = prog
        self.explained = explained


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # Subcommands accept the global options too; SUPPRESS keeps them from resetting a value
    # given before the subcommand.
    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(None),
        help="store URL (default: $CONFSTORE_URL, else sqlite:///data/config/config.db)",
    )
    if top_level:  # each subcommand that takes a tenant adds its own, with its own default
        parser.add_argument(
            "-t",
            "--tenant",
            default=argparse.SUPPRESS,
            help="tenant id, for the commands that take one",
        )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "--show-secrets",
        action="store_true",
        default=default(False),
        help="show secret values (API keys, passwords, tokens) instead of ***",
    )


def _add_key(parser: argparse.ArgumentParser) -> None:
    _add_tenant(parser)
    scopes = [scope.value for scope in ConfigScope]
    parser.add_argument("scope", choices=scopes, metavar="SCOPE", help=", ".join(scopes))
    parser.add_argument(
        "service", metavar="SERVICE", help="e.g. system, routing_agent, or an agent's name"
    )
    parser.add_argument("config_key", metavar="CONFIG_KEY", help="e.g. system_config, agent_config")


def _add_tenant(
    parser: argparse.ArgumentParser, default: str | None = "default", meaning: str | None = None
) -> None:
    # The tenant is a global option too (``confstore --tenant acme list``): it is left unset
    # here, and ``_parse`` fills in the command's default after parsing.
    parser.add_argument(
        "-t",
        "--tenant",
        default=argparse.SUPPRESS,
        help=meaning or f"tenant id (default: {default})",
    )
    parser.set_defaults(tenant_default=default)


def _add_audit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", metavar="NAME", help="who makes the change (kept in the history)")
    parser.add_argument("--comment", metavar="TEXT", help="why (kept in the history)")


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _positive_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="confstore",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"confstore {__version__}")
    _add_global_options(parser, top_level=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Command, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        _add_global_options(sub, top_level=False)
        sub.set_defaults(run=run, command=name)
        return sub

    sub = command("get", _commands.get, "Show a config: the latest version, or --version N.")
    _add_key(sub)
    sub.add_argument("--version", type=_positive_int, metavar="N", help="a specific version")

    sub = command("set", _layered.set_, "Write a new version of a config.")
    _add_key(sub)
    sub.add_argument(
        "--patch",
        action="store_true",
        help="VALUE is an RFC 7396 merge patch of the stored value (null removes a key)",
    )
    _layered.add_base_tenant(sub)
    source = sub.add_mutually_exclusive_group()
    source.add_argument(
        "value", nargs="?", metavar="VALUE", help="the value as inline JSON, or - to read stdin"
    )
    source.add_argument("-f", "--file", metavar="PATH", help="read the value from a JSON file")
    sub.add_argument(
        "--expected-version",
        type=_non_negative_int,
        metavar="N",
        help="write only if the latest version is this one (0: only if the key is new)",
    )
    sub.add_argument(
        "--type",
        metavar="NAME",
        help="validate the value as this typed config (see `confstore schema`); configs "
        "stored where a typed config lives are validated anyway",
    )
    _add_audit(sub)

    sub = command("delete", _layered.delete, "Delete a config (a tombstone version).")
    _add_key(sub)
    _layered.add_base_tenant(sub)
    sub.add_argument("--purge", action="store_true", help="remove every version instead")
    _add_audit(sub)

    sub = command("list", _commands.list_, "List a tenant's live configs.")
    _add_tenant(sub)
    sub.add_argument("--scope", choices=[scope.value for scope in ConfigScope])
    sub.add_argument("--service")

    sub = command("tenants", _commands.tenants, "List the tenants that have configs.")
    sub.add_argument(
        "--all",
        action="store_true",
        help="also tenants whose configs are all deleted (their history is kept)",
    )

    sub = command("history", _commands.history, "Show the versions of a config, newest first.")
    _add_key(sub)
    sub.add_argument(
        "--limit",
        type=_positive_int,
        default=10,
        metavar="N",
        help="at most N versions (default: 10)",
    )

    sub = command("diff", _commands.diff, "Show what changed between two versions of a config.")
    _add_key(sub)
    sub.add_argument(
        "from_version", nargs="?", type=_positive_int, metavar="FROM", help="default: TO - 1"
    )
    sub.add_argument(
        "to_version", nargs="?", type=_positive_int, metavar="TO", help="default: the latest"
    )

    sub = command(
        "rollback", _commands.rollback, "Write an old version of a config as its newest version."
    )
    _add_key(sub)
    sub.add_argument(
        "version", type=_positive_int, metavar="VERSION", help="the version to bring back"
    )
    _add_audit(sub)

    sub = command("export", _transfer.export, "Write a tenant's configs as an export document.")
    _add_tenant(sub)
    sub.add_argument("--history", action="store_true", help="every version, not only the latest")
    sub.add_argument("-o", "--output", metavar="PATH", help="write to this file (default: stdout)")

    sub = command("import", _transfer.import_, "Load an export document into a tenant.")
    sub.add_argument("file", metavar="FILE", help="the export document, or - for stdin")
    _add_tenant(
        sub, None, "tenant to import into (default: the document's tenant_id, else default)"
    )
    sub.add_argument(
        "--mode",
        choices=["restore", "append"],
        default="restore",
        help="restore (default): keep versions and timestamps, skip what is already stored; "
        "append: add every entry as a new version",
    )
    sub.add_argument(
        "--dry-run", action="store_true", help="show what would be written; write nothing"
    )

    sub = command(
        "migrate",
        _transfer.migrate,
        "Copy every tenant, version and timestamp from one store to another. Safe to re-run: "
        "an interrupted migration continues where it stopped.",
    )
    sub.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="the store to copy from (read only), e.g. sqlite:///data/config/config.db",
    )
    sub.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="the store to copy into; versions it already has are skipped",
    )
    sub.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="versions per write (default: 500)",
    )

    sub = command(
        "explain", _layered.explain, "Show where each field of a tenant's typed config comes from."
    )
    _add_key(sub)
    _layered.add_base_tenant(sub)

    sub = command(
        "check", _layered.check, "Validate every tenant's effective typed configs (exit 1 if not)."
    )
    _add_tenant(sub, None, "only this tenant (with what it inherits)")
    _layered.add_base_tenant(sub)

    sub = command(
        "prune", _retention.prune, "Remove old versions by count and age (the latest stays)."
    )
    _add_tenant(sub, None, "only this tenant (default: every tenant)")
    _retention.add_arguments(sub)

    command("stats", _commands.stats, "Show counts of tenants, configs and versions.")
    command("health", _commands.health, "Check that the backend answers (exit status 0 or 1).")

    sub = command("watch", _watch.watch, "Print changes as they happen, until Ctrl-C.")
    _add_tenant(sub, None, "only this tenant's changes")
    sub.add_argument("--scope", choices=[scope.value for scope in ConfigScope])
    sub.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_positive_float,
        default=1.0,
        help="most seconds between polls (default: 1); a store told of commits wakes sooner",
    )

    sub = command("schema", _commands.schema, "List the typed configs, or show one's JSON Schema.")
    sub.add_argument(
        "name", nargs="?", metavar="NAME", help="e.g. system, agent, routing, telemetry"
    )

    command(
        "demo",
        functools.partial(_demo.demo, run=run_command),
        "A short walk-through: set, get, history, diff and export, each command printed and run.",
    )
    _server.add_commands(command, lambda sub: _add_global_options(sub, top_level=False))
    _conformance.add_command(command)
    return parser


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, CliError):
        return error.exit_code
    if isinstance(error, VersionConflictError | ImportConflictError):
        return ExitCode.CONFLICT
    if isinstance(error, BackendError | NoSuchBackendError):
        return ExitCode.UNAVAILABLE
    if isinstance(error, InvalidIdentifierError | InvalidConfigError | ImportFormatError):
        return ExitCode.INVALID_INPUT
    return ExitCode.FAILURE


# How a CliError is named in a --json error report (a confstore error goes by its class name).
_CLI_ERROR_TYPES = {
    ExitCode.FAILURE: "Error",
    ExitCode.USAGE: "UsageError",
    ExitCode.CONFLICT: "ConflictError",
    ExitCode.NOT_FOUND: "NotFoundError",
    ExitCode.UNAVAILABLE: "UnavailableError",
    ExitCode.INVALID_INPUT: "InvalidInputError",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``confstore`` with ``argv`` (default: the process's arguments); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Before parsing, so that a bad command line is reported as JSON too when --json is given.
    console = Console(json_mode="--json" in argv[: _end_of_options(argv)])
    parser = build_parser()
    try:
        args = _parse(parser, argv, console)
    except SystemExit as stop:  # --help and --version, when called in-process
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    except UsageError as error:
        if error.explained and not console.json_mode:
            return error.exit_code
        return _report(console, error, f"{error.prog}: error: {error}")
    console.json_mode, console.show_secrets = args.json, args.show_secrets
    try:
        exit_code: int = asyncio.run(args.run(args, console))
        return exit_code
    except (CliError, ConfigStoreError) as error:
        return _report(console, error)
    except BrokenPipeError:
        # The reader went away (e.g. `confstore export | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILURE
    except OSError as error:  # a file that cannot be read or written, a closed terminal
        return _report(console, error)
    except KeyboardInterrupt as interrupt:
        return _report(console, interrupt, "confstore: interrupted", exit_code=130)
    except Exception as error:  # a bug: still one report, unless asked for the traceback
        if os.environ.get("CONFSTORE_DEBUG"):
            raise
        return _report(
            console,
            error,
            f"confstore: error: unexpected {type(error).__name__}: {error} "
            "(set CONFSTORE_DEBUG=1 to see the traceback)",
        )


async def run_command(argv: list[str], console: Console) -> int:
    """Parse ``argv`` and run its command, printing on ``console`` (the demo's steps run so)."""
    args = _parse(build_parser(), argv, console)
    exit_code: int = await args.run(args, console)
    return exit_code


def _parse(
    parser: argparse.ArgumentParser, argv: list[str], console: Console
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        if not console.json_mode:
            parser.print_help(sys.stderr)
        raise UsageError("a command is required", prog=parser.prog, explained=True)
    if not hasattr(args, "tenant_default"):
        if getattr(args, "tenant", None) is not None:
            raise UsageError(f"{args.command} takes no --tenant", prog=parser.prog)
        args.tenant = None
    elif not hasattr(args, "tenant"):
        args.tenant = args.tenant_default
    return args


def _end_of_options(argv: list[str]) -> int:
    return argv.index("--") if "--" in argv else len(argv)


def _report(
    console: Console, error: BaseException, text: str | None = None, *, exit_code: int | None = None
) -> int:
    """Report a failure on stderr (one line, or one JSON object with --json); its exit status."""
    code = exit_code_for(error) if exit_code is None else exit_code
    if not console.json_mode:
        console.note(text or f"confstore: error: {error}")
        return code
    if isinstance(error, CliError):
        kind = _CLI_ERROR_TYPES.get(error.exit_code, "Error")
    else:
        kind = type(error).__name__
    message = str(error) or (text or "").removeprefix("confstore: ")
    report: dict[str, object] = {"type": kind, "message": message, "exit_code": code}
    field = getattr(error, "field", None)
    if isinstance(field, str):
        report["field"] = field
    print(json.dumps({"error": report}, ensure_ascii=False), file=console.err, flush=True)
    return code
