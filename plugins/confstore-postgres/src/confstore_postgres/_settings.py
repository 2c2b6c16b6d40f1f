"""``PostgresSettings``: a PostgreSQL store URL and its options, checked without I/O.

Accepted URL forms are libpq's: ``postgresql://user:password@host:port/database?...`` (the
``postgres://`` scheme too), an empty password (``user:@host``), and a unix-socket directory given
as ``?host=/path`` (with ``?port=`` choosing the socket file) or percent-encoded in place of the
host (``postgresql://user@%2Fvar%2Frun%2Fpostgresql/db``). Parts left out fall back to libpq's
environment (``PGHOST``, ``PGUSER``, ``PGPASSWORD``, ``~/.pgpass`` ...) through asyncpg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote, urlencode

from confstore import InvalidConfigError, StoreOptions, StoreURL

DEFAULT_SCHEMA: Final = "confstore"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_POOL_SIZE: Final = 10
DEFAULT_FEED_MAX_CHANGES: Final = 100_000
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq's TLS file options, handed to asyncpg as they are.
_SSL_FILES: Final = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
# A schema confstore creates and names in NOTIFY channels: lower case, so it needs no quoting
# rules of its own, not pg_* (reserved), and short enough for "confstore." + name in 63 bytes.
_SCHEMA_NAME: Final = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,52}", re.ASCII)


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where the store connects and how: everything ``asyncpg`` needs, plus confstore's options."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    schema: str = DEFAULT_SCHEMA
    timeout: float = DEFAULT_TIMEOUT
    pool_size: int = DEFAULT_POOL_SIZE
    sslmode: str | None = None
    ssl_files: Mapping[str, str] = field(default_factory=dict)
    application_name: str = "confstore"
    #: The change feed keeps at least this many of the newest changes; prune() trims the rest.
    feed_max_changes: int = DEFAULT_FEED_MAX_CHANGES

    def __post_init__(self) -> None:
        if _SCHEMA_NAME.fullmatch(self.schema) is None:
            raise InvalidConfigError(
                f"schema must be 1-53 lower-case letters, digits or '_', not starting with a "
                f"digit or 'pg_', got {self.schema!r}",
                field="schema",
            )
        if self.sslmode is not None and self.sslmode not in SSL_MODES:
            raise InvalidConfigError(
                f"sslmode must be one of {', '.join(SSL_MODES)}, got {self.sslmode!r}",
                field="sslmode",
            )
        if not self.timeout > 0:
            raise InvalidConfigError(
                "timeout must be a positive number of seconds", field="timeout"
            )
        if self.port is not None and not 0 < self.port < 65536:
            raise InvalidConfigError(f"port must be 1-65535, got {self.port}", field="port")
        for name, value in (("host", self.host), ("user", self.user), ("database", self.database)):
            if value is not None and ("\x00" in value or not value):
                raise InvalidConfigError(f"{name} must be non-empty text without NUL", field=name)

    @classmethod
    def from_url(cls, url: StoreURL, options: Mapping[str, Any]) -> PostgresSettings:
        """Read a ``postgresql://`` or ``postgres://`` URL and its options (query or keywords).

        Options: ``schema``, ``timeout`` (seconds; ``connect_timeout`` is accepted too),
        ``pool_size``, ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``sslcrl``,
        ``application_name``, ``feed_max_changes``, and libpq's ``host``, ``port``, ``user``, ``password``, ``dbname``,
        which win over the URL's own parts. Anything else raises InvalidConfigError.
        """
        reader = StoreOptions("postgresql", options)
        connect_timeout = reader.take_float("connect_timeout", DEFAULT_TIMEOUT, minimum=0.001)
        settings = cls(
            host=reader.take_str("host") or _url_host(url),
            port=_port(reader.take_any("port"), url.port),
            user=reader.take_str("user") or url.username,
            password=_password(reader.take_str("password"), url.password),
            database=reader.take_str("dbname") or (url.path or None),
            schema=reader.take_str("schema", DEFAULT_SCHEMA) or DEFAULT_SCHEMA,
            timeout=reader.take_float("timeout", connect_timeout, minimum=0.001),
            pool_size=reader.take_int("pool_size", DEFAULT_POOL_SIZE, minimum=1),
            sslmode=reader.take_str("sslmode"),
            ssl_files={
                name: value for name in _SSL_FILES if (value := reader.take_str(name)) is not None
            },
            application_name=reader.take_str("application_name", "confstore") or "confstore",
            feed_max_changes=reader.take_int(
                "feed_max_changes", DEFAULT_FEED_MAX_CHANGES, minimum=1
            ),
        )
        reader.finish()
        return settings

    @property
    def unix_socket(self) -> bool:
        return self.host is not None and self.host.startswith("/")

    @property
    def channel(self) -> str:
        """The NOTIFY channel that wakes this schema's feed followers."""
        return f"confstore.{self.schema}"

    def dsn(self) -> str:
        """A libpq URL for asyncpg, with the password left out (it is passed apart)."""
        user = quote(self.user, safe="") + "@" if self.user else ""
        host = ""
        query: dict[str, str] = {}
        if self.unix_socket:
            query["host"] = self.host or ""
        elif self.host:
            host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            if self.unix_socket:
                query["port"] = str(self.port)
            else:
                host += f":{self.port}"
        database = "/" + quote(self.database, safe="") if self.database else "/"
        if self.sslmode is not None:
            query["sslmode"] = self.sslmode
        query.update(self.ssl_files)
        return f"postgresql://{user}{host}{database}" + ("?" + urlencode(query) if query else "")

    def describe(self) -> str:
        """Where the store is, for messages: never the password."""
        where = self.host or "the default host"
        if self.port is not None:
            where += f" port {self.port}"
        return (
            f"PostgreSQL at {where}, database {self.database or '(default)'}, schema {self.schema}"
        )


def _url_host(url: StoreURL) -> str | None:
    """The URL's host; a percent-encoded socket directory in its place becomes a path."""
    if url.host is None:
        return None
    decoded = unquote(url.host)
    return decoded if decoded.startswith("/") else url.host


def _port(option: object, from_url: int | None) -> int | None:
    if option is None or option == "":
        return from_url
    try:
        return int(str(option))
    except ValueError:
        raise InvalidConfigError(f"port must be an integer, got {option!r}", field="port") from None


def _password(option: str | None, from_url: str | None) -> str | None:
    chosen = option if option is not None else from_url
    return chosen or None  # an empty password is no password, as in libpq
