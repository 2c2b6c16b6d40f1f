"""What every CLI command shares: exit codes, the CLI's own errors, opening the store, reading input.

The CLI runs one command per event loop, so reading a local input file there holds up no other task.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from typing import Any, TextIO

from .._errors import BackendUnavailableError
from .._json_text import unique_keys
from .._registry import open_store
from .._store import ConfigStore
from .._url import default_store_url
from .._validation import MAX_NESTING_DEPTH


class ExitCode(enum.IntEnum):
    """The documented exit statuses of ``confstore`` (see ``confstore --help``)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFLICT = 3
    NOT_FOUND = 4
    UNAVAILABLE = 5
    INVALID_INPUT = 6
    # Only `confstore conformance` tells these apart from UNAVAILABLE (see its --help).
    PERMISSION_DENIED = 7
    NO_BACKEND = 8
    REFUSED = 9


class CliError(Exception):
    """A failure the CLI reports as one line on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILURE) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def not_found(what: str) -> CliError:
    return CliError(f"not found: {what}", ExitCode.NOT_FOUND)


def store_url(args: argparse.Namespace) -> str:
    """--url, else $CONFSTORE_URL, else the default SQLite file."""
    return default_store_url() if args.url is None else str(args.url)


def open_cli_store(args: argparse.Namespace, *, only_reads: bool = False) -> ConfigStore:
    """The store named by --url (no I/O yet: use ``async with``). ``only_reads``: the command
    writes nothing, so a SQLite file that does not exist is an error, not created empty."""
    url = store_url(args)
    return open_existing_store(url) if only_reads else open_store(url)


def open_existing_store(url: str) -> ConfigStore:
    """The store at ``url`` for a command that only reads it. A SQLite file that does not
    exist (a mistyped path) raises BackendUnavailableError naming it: opening it would create
    an empty database and report nothing found, or copy nothing."""
    from ..backends.sqlite import SQLiteConfigStore  # loaded by open_store already

    store = open_store(url)
    if not isinstance(store, SQLiteConfigStore) or store.in_memory:
        return store
    if not os.path.exists(store.path):
        raise BackendUnavailableError(
            f"no SQLite database at {os.path.abspath(store.path)} (this command only reads, "
            "so it creates none: check --url, --from or $CONFSTORE_URL)"
        )
    return store


def read_json_text(text: str, source: str, *, unique: bool = False) -> Any:
    """Parse JSON given by the user; CliError (invalid input) for anything Python's parser refuses,
    including nesting too deep for it and integers too long to convert, and with ``unique`` an
    object naming a key twice (else the last one counts, as in an import document)."""
    try:
        return json.loads(text, object_pairs_hook=unique_keys if unique else None)
    except RecursionError:
        raise CliError(
            f"{source} nests too deep (values may nest {MAX_NESTING_DEPTH} levels)",
            ExitCode.INVALID_INPUT,
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer over sys.get_int_max_str_digits()
        raise CliError(f"{source} is not valid JSON: {exc}", ExitCode.INVALID_INPUT) from exc


def read_json_source(path: str, *, small: bool = False) -> Any:
    """Parse JSON from a file, or from stdin when ``path`` is ``-``.

    ``small``: a config value or a retention policy, so a key twice in one object is refused
    and at most MAX_JSON_INPUT characters are read (an endless input, ``/dev/zero`` or
    ``yes |``, is refused instead of filling memory). Otherwise an import document: any size,
    and the last of two equal keys counts, as the import itself reads it.
    """
    limit = MAX_JSON_INPUT if small else -1
    if path == "-":
        text = _read_at_most(sys.stdin, limit, "stdin").removeprefix("\ufeff")
        return read_json_text(text, "stdin", unique=small)
    try:
        # utf-8-sig: a byte order mark (Windows editors write one) is skipped, as RFC 8259 allows.
        with open(path, encoding="utf-8-sig") as file:
            text = _read_at_most(file, limit, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", ExitCode.INVALID_INPUT) from exc
    return read_json_text(text, path, unique=small)


# Far more than any config value (1 MiB serialised by default) or retention policy, even indented.
MAX_JSON_INPUT = 64 * 1024 * 1024


def _read_at_most(file: TextIO, limit: int, source: str) -> str:
    """All of ``file``, or (``limit`` >= 0) CliError if it holds more than ``limit`` characters."""
    if limit < 0:
        return file.read()
    text = file.read(limit + 1)
    if len(text) > limit:
        raise CliError(
            f"{source} is longer than {limit} characters: more than any config value or "
            "retention policy",
            ExitCode.INVALID_INPUT,
        )
    return text
