"""Heads and records as flat documents, for stores whose documents are flat field maps.

``document_fields`` gives the protocol's fields of a head or record under fixed names::

    tenant_id, scope, service, config_key     the key
    generation, version, deleted              where it stands
    written_micros, write_id                  the writer's clock and identity
    purging (heads) / kind (records)          a purge in progress / version or purge marker

and ``head_from_fields`` / ``record_from_fields`` read them back (a missing number or flag reads
as 0 or False, as stores that leave unset fields out return them). How an entry is stored (the
value, timestamps, audit fields) is the backend's choice; it passes the decoded entry in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import BackendError
from .._models import ConfigEntry, ConfigKey, ConfigScope
from ._primitives import Head, Record, RecordKind

#: Every field ``document_fields`` may produce: what a summary (no entry) holds.
SUMMARY_FIELDS = (
    "tenant_id",
    "scope",
    "service",
    "config_key",
    "generation",
    "version",
    "deleted",
    "written_micros",
    "write_id",
    "purging",
    "kind",
)


def document_fields(document: Head | Record) -> dict[str, Any]:
    """The flat fields of a head or record, without its entry."""
    key = document.key
    fields: dict[str, Any] = {
        "tenant_id": key.tenant_id,
        "scope": key.scope.value,
        "service": key.service,
        "config_key": key.config_key,
        "generation": document.generation,
        "version": document.version,
        "deleted": document.deleted,
        "written_micros": document.written_micros,
        "write_id": document.write_id,
    }
    if isinstance(document, Head):
        fields["purging"] = document.purging
    else:
        fields["kind"] = document.kind.value
    return fields


def key_from_fields(fields: Mapping[str, Any]) -> ConfigKey:
    """The key a flat document names; BackendError when it names none."""
    try:
        return ConfigKey(
            _text(fields, "tenant_id"),
            ConfigScope(fields["scope"]),
            _text(fields, "service"),
            _text(fields, "config_key"),
        )
    except (KeyError, ValueError) as exc:
        raise BackendError(f"malformed config document: {exc!r:.200}") from exc


def head_from_fields(
    fields: Mapping[str, Any], *, entry: ConfigEntry | None, token: Any = None
) -> Head:
    key = key_from_fields(fields)
    return Head(
        key,
        generation=_number(fields, "generation"),
        version=_number(fields, "version"),
        deleted=_flag(fields, "deleted"),
        purging=_flag(fields, "purging"),
        written_micros=_number(fields, "written_micros"),
        write_id=_text(fields, "write_id"),
        entry=entry,
        token=token,
    )


def record_from_fields(fields: Mapping[str, Any], *, entry: ConfigEntry | None) -> Record:
    key = key_from_fields(fields)
    try:
        kind = RecordKind(str(fields.get("kind")))
    except ValueError as exc:
        raise BackendError(f"malformed config document of {key}: {exc}") from exc
    return Record(
        kind,
        key,
        _number(fields, "generation"),
        _number(fields, "version"),
        _flag(fields, "deleted"),
        _number(fields, "written_micros"),
        _text(fields, "write_id"),
        entry,
    )


def _number(fields: Mapping[str, Any], name: str) -> int:
    value = fields.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackendError(f"malformed config document: {name}={value!r:.40}")
    return value


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise BackendError(f"malformed config document: {name}={value!r:.40}")
    return value


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise BackendError(f"malformed config document: {name}={value!r:.40}")
    return value
