"""``confstore serve`` and ``confstore token create|list|revoke``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ._common import CliError, ExitCode, not_found, open_cli_store
from ._layered import add_base_tenant
from ._output import Console

AddCommand = Callable[[str, Any, str], argparse.ArgumentParser]
AddOptions = Callable[[argparse.ArgumentParser], None]


def add_commands(command: AddCommand, global_options: AddOptions) -> None:
    """Register ``serve`` and ``token`` with the CLI's ``command(name, run, summary)`` helper;
    ``global_options`` adds --url, --json and --show-secrets to a parser of a nested action."""
    sub = command(
        "serve",
        serve,
        "Serve the store over HTTP (the /v1 API, see /openapi.json) until SIGTERM or Ctrl-C.",
    )
    sub.add_argument(
        "--bind",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where to listen (default: 127.0.0.1:8080; port 0 picks a free one)",
    )
    _add_tokens_option(sub)
    sub.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    sub.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    sub.add_argument(
        "--client-timeout",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="time a client has to send a request's headers, or its body (default: 30)",
    )
    sub.add_argument(
        "--max-body-bytes",
        type=_positive(int),
        metavar="N",
        help="largest PUT body (default: twice the store's value limit + 64 KiB)",
    )
    sub.add_argument(
        "--max-import-bytes",
        type=_positive(int),
        default=64 * 1024 * 1024,
        metavar="N",
        help="largest import document (default: 64 MiB)",
    )
    sub.add_argument(
        "--idempotency-ttl",
        type=_positive(float),
        default=3600.0,
        metavar="SECONDS",
        help="how long the answer of a write sent with an Idempotency-Key is kept for its "
        "retries (default: 3600)",
    )
    add_base_tenant(sub)

    tokens = command(
        "token",
        _token_usage,
        "Create, list and revoke the API tokens of `confstore serve`. Each has a name "
        "(recorded as updated_by), a role (read, write or admin) and the tenants it may use; "
        "the tokens file keeps only their hashes.",
    )
    actions = tokens.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, run: Any, summary: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=summary, description=summary)
        global_options(sub)
        _add_tokens_option(sub)
        sub.set_defaults(run=run, command=f"token {name}")
        return sub

    sub = action("create", token_create, "Create a token and print it (only this once).")
    sub.add_argument("name", metavar="NAME", help="the token's name, recorded as updated_by")
    sub.add_argument(
        "--role",
        required=True,
        choices=["read", "write", "admin"],
        help="read: read (secrets masked); write: also write, delete, roll back, export and "
        "see secrets; admin: also import and set updated_by",
    )
    sub.add_argument(
        "--tenant",
        dest="tenants",
        action="append",
        required=True,
        metavar="TENANT",
        help="a tenant the token may use (repeat for several; '*' for every tenant)",
    )
    action("list", token_list, "List the tokens (never their secrets).")
    sub = action("revoke", token_revoke, "Revoke a token (the server notices within a second).")
    sub.add_argument("name", metavar="NAME")


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` above 0 (finite)."""

    def parse(text: str) -> Any:
        try:
            number = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return number

    return parse


async def _token_usage(args: argparse.Namespace, console: Console) -> int:
    raise CliError("name an action: confstore token create|list|revoke", ExitCode.USAGE)


def _add_tokens_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens",
        metavar="FILE",
        help="the tokens file (default: $CONFSTORE_TOKENS, else data/config/tokens.json)",
    )


def _token_file(args: argparse.Namespace) -> Any:
    from ..server import TokenFile, default_tokens_path

    return TokenFile(args.tokens or default_tokens_path())


async def serve(args: argparse.Namespace, console: Console) -> int:
    from ..server import ServerSettings
    from ..server import serve as run_server
    from ..server._run import server_tls
    from ..server._tokens import TokenError

    settings = ServerSettings(
        max_body_bytes=args.max_body_bytes,
        max_import_bytes=args.max_import_bytes,
        client_timeout=args.client_timeout,
        idempotency_ttl=args.idempotency_ttl,
        base_tenant=args.base_tenant,
    )
    token_file = _token_file(args)
    try:
        await run_server(
            open_cli_store(args),
            token_file.path,
            args.bind,
            settings,
            ssl_context=server_tls(args.tls_cert, args.tls_key),
            announce=console.out,
        )
    except TokenError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot serve on {args.bind}: {exc.strerror or exc}") from exc
    return ExitCode.OK


async def token_create(args: argparse.Namespace, console: Console) -> int:
    from ..server._tokens import DuplicateTokenError

    try:
        secret, token = _token_file(args).create(args.name, args.role, args.tenants)
    except DuplicateTokenError as exc:
        raise CliError(str(exc), ExitCode.CONFLICT) from exc
    if console.json_mode:
        console.json({"token": secret, **token.describe()})
    else:
        console.line(secret)
        console.note(
            f"created token {token.name!r} (role {token.role.value}, tenants "
            f"{', '.join(token.tenants)}); it is shown only now: store it safely"
        )
    return ExitCode.OK


async def token_list(args: argparse.Namespace, console: Console) -> int:
    tokens = [token.describe() for token in _token_file(args).stored()]
    if console.json_mode:
        console.json(tokens)
    else:
        console.table(
            ("name", "role", "tenants", "created_at"),
            [(t["name"], t["role"], ",".join(t["tenants"]), t["created_at"]) for t in tokens],
        )
    return ExitCode.OK


async def token_revoke(args: argparse.Namespace, console: Console) -> int:
    from ..server._tokens import UnknownTokenError

    try:
        token = _token_file(args).revoke(args.name)
    except UnknownTokenError as exc:
        raise not_found(f"token {args.name!r}") from exc
    if console.json_mode:
        console.json({"revoked": token.name})
    else:
        console.line(f"revoked token {token.name!r}")
    return ExitCode.OK
