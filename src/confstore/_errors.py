"""Every exception confstore raises.

Driver exceptions (sqlite3, aiosqlite, aiohttp) never escape a store: backends translate them
at their boundary and chain the original with ``raise ... from exc``.

Hierarchy::

    ConfigStoreError
    ├── InvalidIdentifierError      (also ValueError)
    ├── InvalidConfigError          (also ValueError)
    │   └── InheritanceError        .tenants
    ├── VersionConflictError        .expected, .actual
    ├── ImportFormatError
    ├── ImportConflictError         .key, .version
    ├── CursorExpiredError
    ├── UnsupportedOperationError   (also NotImplementedError)
    ├── NoSuchBackendError          (also LookupError)  .scheme, .package
    │   └── AmbiguousBackendError   .packages
    └── BackendError
        ├── BackendUnavailableError
        ├── BackendTimeoutError
        └── PermissionDeniedError
"""

from __future__ import annotations

from typing import Any


class ConfigStoreError(Exception):
    """Root of every confstore exception."""


class InvalidIdentifierError(ConfigStoreError, ValueError):
    """A tenant_id, scope, service or config_key is not a valid identifier.

    Raised before any I/O, so nothing was read or written.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field} {short_repr(value)}: {reason}")


class InvalidConfigError(ConfigStoreError, ValueError):
    """A config value (or a typed config) is not acceptable; nothing was written.

    ``field`` names the offending field when there is one (dotted path for nested fields).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class InheritanceError(InvalidConfigError):
    """A write to the base tenant would make inheriting tenants' effective configs invalid;
    nothing was written.

    ``tenants`` maps each affected tenant to the fields that would fail (dotted paths).
    """

    def __init__(self, message: str, *, tenants: dict[str, list[str]]) -> None:
        self.tenants = tenants
        first = next(iter(tenants.values()), [])
        super().__init__(message, field=first[0] if first else None)


class VersionConflictError(ConfigStoreError):
    """A compare-and-set write found another latest version; nothing was written.

    ``expected`` is the version the caller asked for (0 = the key must not exist),
    ``actual`` the latest version found (0 when the key does not exist).
    """

    def __init__(self, expected: int, actual: int, *, key: Any = None) -> None:
        self.expected = expected
        self.actual = actual
        self.key = key
        where = f" for {key}" if key is not None else ""
        super().__init__(f"version conflict{where}: expected {expected}, found {actual}")


class ImportFormatError(ConfigStoreError):
    """An import document is malformed; nothing was written."""


class ImportConflictError(ConfigStoreError):
    """A restore import found a stored version with a different value; nothing was written."""

    def __init__(self, message: str, *, key: Any = None, version: int | None = None) -> None:
        self.key = key
        self.version = version
        super().__init__(message)


class CursorExpiredError(ConfigStoreError):
    """A change-feed cursor is older than what the store still keeps (retention, compaction).

    Changes after it may be gone: start again from ``current_cursor()`` and re-read what matters.
    """


class UnsupportedOperationError(ConfigStoreError, NotImplementedError):
    """The store does not offer an optional operation (for example ``prune`` on a third-party
    store that declares no retention); nothing was read or written."""


class NoSuchBackendError(ConfigStoreError, LookupError):
    """No backend can serve a store URL's scheme.

    ``package`` names the distribution to install when the scheme's plugin is registered but its
    store cannot be imported (``reason`` says why); otherwise the message lists the registered
    schemes, those of the same family (``similar``: ``vespa+http`` for ``vespa``) first, and
    ``reason`` (plugins that could not be loaded, say) follows.
    """

    def __init__(
        self,
        scheme: str,
        *,
        package: str | None = None,
        known: list[str] | None = None,
        similar: list[str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.package = package
        if package is not None:
            cause = f"cannot be loaded ({reason})" if reason else "is not installed"
            message = (
                f"the confstore backend for scheme {scheme!r} {cause}; "
                f"install it with: pip install {package}"
            )
        else:
            guess = f"did you mean {' or '.join(similar)}? " if similar else ""
            listed = ", ".join(sorted(known or [])) or "none"
            message = (
                f"no confstore backend for scheme {scheme!r}; {guess}registered schemes: {listed}"
            )
            if reason:
                message += f" ({reason})"
        super().__init__(message)


class AmbiguousBackendError(NoSuchBackendError):
    """Two installed plugins register the same URL scheme, so neither serves it.

    ``packages`` names the distributions; uninstall one. Other schemes keep working.
    """

    def __init__(self, scheme: str, packages: list[str]) -> None:
        super().__init__(scheme)
        self.packages = tuple(packages)
        self.args = (
            f"confstore backend scheme {scheme!r} is registered by {' and '.join(packages)}; "
            "uninstall all but one of them",
        )


class BackendError(ConfigStoreError):
    """The storage backend failed to carry out an operation."""


class BackendUnavailableError(BackendError):
    """The backend cannot be reached or refuses service; the outcome is not "absent"."""


class BackendTimeoutError(BackendError):
    """The backend did not answer: it timed out, or the connection dropped after the request was sent.

    The outcome is unknown: a write may or may not have been applied.
    """


class PermissionDeniedError(BackendError):
    """The backend answered and refused the operation: the credentials lack a privilege, or the
    store is read-only (a read-only file, a replica, a read-only role or token). Nothing was
    written, and trying again does not help until the permissions change."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about bad input."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (over sys.get_int_max_str_digits())
        text = (
            f"<{type(value).__name__} of {value.bit_length()} bits>"
            if isinstance(value, int)
            else "<?>"
        )
    return text if len(text) <= limit else text[: limit - 3] + "..."
