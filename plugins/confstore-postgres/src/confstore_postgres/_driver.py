"""asyncpg failures, translated once into confstore errors, and sorted by what they say about a write.

The one place that knows asyncpg's exceptions. A failure either says nothing was applied (the
server reported an error for the statement, or nothing was sent), or leaves the outcome unknown
(the connection dropped or timed out after the statement was sent: the server may have committed).
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from confstore import (
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigStoreError,
    InvalidConfigError,
    PermissionDeniedError,
)

# SQLSTATE classes of errors about the data a statement carried: cardinality (21), data (22),
# integrity constraint (23).
_DATA_CLASSES = frozenset({"21", "22", "23"})
_SCHEMA_MISSING = (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError)


# The server ended the session (shutdown, crash of another backend) while a statement ran.
_SESSION_ENDED = (asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def outcome_unknown(exc: BaseException) -> bool:
    """True when a statement was sent and its fate is unknown: the connection was lost (or timed
    out) before the server's answer arrived. Such a write must be read back, never repeated blindly."""
    if isinstance(exc, asyncpg.PostgresConnectionError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, _SESSION_ENDED):
        return True
    # A socket error in the middle of a query; refused connections never get that far.
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def not_sent(exc: BaseException) -> bool:
    """True for a connection found closed or broken before anything was sent (safe to send again)."""
    if isinstance(exc, asyncpg_base.InternalClientError):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def connection_broken(exc: BaseException) -> bool:
    """True unless the server answered with an ordinary error, after which the connection is fine."""
    return not isinstance(exc, asyncpg.PostgresError) or outcome_unknown(exc)


def refused_for_data(exc: BaseException) -> bool:
    """True when a statement failed over the data it carried: a value the client could not
    encode, or a server error of the data, integrity or cardinality classes (nothing applied)."""
    if isinstance(exc, asyncpg_base.DataError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and str(exc.sqlstate or "")[:2] in _DATA_CLASSES


def stale_statement(exc: BaseException) -> bool:
    """A cached prepared statement outlived a schema change; the statement did nothing."""
    return isinstance(exc, asyncpg.InvalidCachedStatementError | asyncpg.OutdatedSchemaCacheError)


def translate(exc: BaseException, where: str) -> BaseException:
    """The confstore error for an asyncpg, socket or timeout failure at ``where``; others as they are."""
    if isinstance(exc, ConfigStoreError):
        return exc
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return BackendTimeoutError(f"{where} did not answer in time: {_text(exc)}")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return PermissionDeniedError(
            f"{where} refused: {_text(exc)} (the README lists the privileges confstore needs)"
        )
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return PermissionDeniedError(f"{where} is read-only (a standby?): {_text(exc)}")
    if isinstance(exc, _SCHEMA_MISSING):
        return BackendUnavailableError(
            f"{where}: confstore's tables are missing ({_text(exc)}); was the schema dropped "
            "after initialize()?"
        )
    if isinstance(exc, asyncpg_base.ClientConfigurationError):
        return InvalidConfigError(f"bad connection settings for {where}: {exc}", field="url")
    if isinstance(exc, asyncpg_base.DataError):
        return InvalidConfigError(f"a value cannot be sent to {where}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return BackendUnavailableError(f"{where} failed: {_text(exc)}")
    if isinstance(exc, asyncpg.InterfaceError | OSError):
        return BackendUnavailableError(f"cannot reach {where}: {_text(exc)}")
    return exc


def _text(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    message = str(exc) or type(exc).__name__
    return f"{message} (SQLSTATE {sqlstate})" if sqlstate else message
