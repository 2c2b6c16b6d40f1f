"""The data model: scopes, keys, stored versions and change-feed records."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from ._errors import ImportFormatError, InvalidConfigError
from ._secrets import mask_secrets


class ConfigScope(enum.StrEnum):
    """The four kinds of configuration a tenant has."""

    SYSTEM = "system"
    AGENT = "agent"
    ROUTING = "routing"
    TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True, order=True)
class ConfigKey:
    """The identity of a config: (tenant_id, scope, service, config_key).

    Instances are built by the store after validation; ordering is by scope, service, config_key
    within a tenant, the order listings and exports use.
    """

    tenant_id: str
    scope: ConfigScope
    service: str
    config_key: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.scope.value}/{self.service}/{self.config_key}"

    def to_dict(self) -> dict[str, Any]:
        """The four identifiers as a JSON object (the scope as its value)."""
        return {
            "tenant_id": self.tenant_id,
            "scope": self.scope.value,
            "service": self.service,
            "config_key": self.config_key,
        }


@dataclass(frozen=True, slots=True, repr=False)
class ConfigEntry:
    """One stored version of a config. Immutable; timestamps are timezone-aware UTC.

    ``created_at`` is when the key was first created and is the same for every version;
    ``updated_at`` is when this version was written. A tombstone (``deleted=True``) has an empty value.
    """

    tenant_id: str
    scope: ConfigScope
    service: str
    config_key: str
    config_value: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    updated_by: str | None = None
    comment: str | None = None
    deleted: bool = False

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(self.tenant_id, self.scope, self.service, self.config_key)

    def __repr__(self) -> str:
        """The dataclass repr, with values of keys named like secrets (``*api_key*``...) masked."""
        shown = ", ".join(
            f"{item.name}={mask_secrets(getattr(self, item.name))!r}" for item in fields(self)
        )
        return f"{type(self).__name__}({shown})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in export documents."""
        return {
            "tenant_id": self.tenant_id,
            "scope": self.scope.value,
            "service": self.service,
            "config_key": self.config_key,
            "config_value": self.config_value,
            "version": self.version,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
            "updated_by": self.updated_by,
            "comment": self.comment,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build an entry from its JSON form; raises ImportFormatError when it is malformed.

        Identifiers are checked for type only here; stores validate them before writing.
        Entries of the original system's export (no updated_by, comment or deleted) are accepted.
        """
        if not isinstance(data, Mapping):
            raise ImportFormatError(f"an entry must be a JSON object, got {type(data).__name__}")
        try:
            return cls(
                tenant_id=_require(data, "tenant_id", str),
                scope=_parse_scope(data.get("scope")),
                service=_require(data, "service", str),
                config_key=_require(data, "config_key", str),
                config_value=_require(data, "config_value", dict),
                version=_parse_version(data.get("version")),
                created_at=parse_timestamp(data.get("created_at"), "created_at"),
                updated_at=parse_timestamp(data.get("updated_at"), "updated_at"),
                updated_by=_optional(data, "updated_by", str),
                comment=_optional(data, "comment", str),
                deleted=_optional(data, "deleted", bool) or False,
            )
        except ImportFormatError:
            raise
        except (TypeError, ValueError) as exc:
            raise ImportFormatError(f"malformed entry: {exc}") from exc


# The setters of ConfigEntry's slots, in field order (see new_entry).
(
    _set_tenant_id,
    _set_scope,
    _set_service,
    _set_config_key,
    _set_config_value,
    _set_version,
    _set_created_at,
    _set_updated_at,
    _set_updated_by,
    _set_comment,
    _set_deleted,
) = (getattr(ConfigEntry, item.name).__set__ for item in fields(ConfigEntry))
_new_object = object.__new__


def new_entry(
    tenant_id: str,
    scope: ConfigScope,
    service: str,
    config_key: str,
    config_value: dict[str, Any],
    version: int,
    created_at: datetime,
    updated_at: datetime,
    updated_by: str | None,
    comment: str | None,
    deleted: bool,
) -> ConfigEntry:
    """``ConfigEntry(...)`` of the same fields, in a third of the time: the frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, this sets each slot directly.
    The entry is the same (type, equality, hash, repr, pickling); for a store's hot path, whose
    fields are already checked."""
    entry = _new_object(ConfigEntry)
    _set_tenant_id(entry, tenant_id)
    _set_scope(entry, scope)
    _set_service(entry, service)
    _set_config_key(entry, config_key)
    _set_config_value(entry, config_value)
    _set_version(entry, version)
    _set_created_at(entry, created_at)
    _set_updated_at(entry, updated_at)
    _set_updated_by(entry, updated_by)
    _set_comment(entry, comment)
    _set_deleted(entry, deleted)
    return entry


class ChangeKind(enum.StrEnum):
    """What a change-feed record reports."""

    SET = "set"
    DELETE = "delete"
    PURGE = "purge"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One committed write, as the change feed reports it.

    ``version`` is the version written (SET, DELETE); for PURGE it is the last version the key had,
    or 0 when the backend cannot tell.
    """

    key: ConfigKey
    kind: ChangeKind
    version: int

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    @property
    def scope(self) -> ConfigScope:
        return self.key.scope

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``confstore watch --json``, the server's change feed)."""
        return {**self.key.to_dict(), "kind": self.kind.value, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse the JSON form; InvalidConfigError when it is malformed."""
        try:
            key = ConfigKey(
                _require(data, "tenant_id", str),
                ConfigScope(data["scope"]),
                _require(data, "service", str),
                _require(data, "config_key", str),
            )
            version = data["version"]
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise ValueError(f"version must be an integer >= 0, got {version!r}")
            return cls(key, ChangeKind(data["kind"]), version)
        except (ImportFormatError, KeyError, TypeError, ValueError) as exc:
            raise InvalidConfigError(f"malformed change record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """A page of the change feed: the changes after a cursor, and the cursor to ask from next."""

    changes: tuple[ConfigChange, ...]
    cursor: str
    has_more: bool = field(default=False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CursorState = TypeVar("_CursorState")


def encode_cursor(prefix: str, state: Any) -> str:
    """An opaque change-feed cursor: ``prefix`` and the JSON of ``state``, URL-safe base64."""
    payload = json.dumps(state, separators=(",", ":")).encode()
    return prefix + base64.urlsafe_b64encode(payload).decode("ascii")


def decode_cursor(
    cursor: object, *, prefix: str, backend: str, parse: Callable[[Any], _CursorState]
) -> _CursorState:
    """The state of a cursor made by ``encode_cursor(prefix, ...)``, checked by ``parse``.

    Raises InvalidConfigError for anything this backend did not issue: another prefix, broken
    base64 or JSON, or a state ``parse`` rejects (ValueError, KeyError or TypeError).
    """
    try:
        if not isinstance(cursor, str) or not cursor.startswith(prefix):
            raise ValueError("not issued by this backend")
        return parse(json.loads(base64.urlsafe_b64decode(cursor[len(prefix) :].encode("ascii"))))
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as exc:
        raise InvalidConfigError(
            f"not a change-feed cursor of the {backend} store: {cursor!r:.80}", field="cursor"
        ) from exc


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: exact, for stores whose date types keep less."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2026-01-02T03:04:05.000006+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(value: object, name: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp; naive ones (the original system wrote those) are taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ImportFormatError(f"{name} is not an ISO 8601 timestamp: {value!r}") from exc
    else:
        raise ImportFormatError(f"{name} must be an ISO 8601 string, got {type(value).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    if moment.tzinfo is UTC:  # as every export writes them: nothing to convert
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-01:00 is after the last datetime
        raise ImportFormatError(f"{name} is out of range in UTC: {value!r}") from exc


def _require(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise ImportFormatError(f"entry field {name!r} must be {kind.__name__}, got {value!r:.80}")
    return value


def _optional(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise ImportFormatError(f"entry field {name!r} must be {kind.__name__} or null")
    return value


def _parse_scope(value: object) -> ConfigScope:
    if isinstance(value, str) and value in ConfigScope._value2member_map_:
        return ConfigScope(value)
    raise ImportFormatError(f"unknown scope {value!r}")


def _parse_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImportFormatError(f"entry field 'version' must be a positive integer, got {value!r}")
    return value
