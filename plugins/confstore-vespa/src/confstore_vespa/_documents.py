"""Document shapes and ids of the Vespa store (no I/O here).

One document type (``config_metadata``) in one namespace; ids are joined with ``/``, which no
identifier contains, and every segment is percent-encoded in paths (``_client``)::

    h/<tenant>/<scope>/<service>/<key>                         the head of a key
    v/<tenant>/<scope>/<service>/<key>/<generation>/<version>  a version record
    p/<tenant>/<scope>/<service>/<key>/<generation>            a purge marker

Fields are confstore.docstore's flat document fields (``kind`` is ``head`` for heads), plus the
entry: ``payload`` (the value's JSON text), ``audit`` (updated_by and comment as one JSON text,
because Vespa treats an empty string as an unset field) and ``created_at``/``updated_at`` in
epoch microseconds. Summaries (scans for counting and the change feed) leave the entry out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confstore import BackendError, ConfigEntry, ConfigKey, epoch_micros, from_epoch_micros
from confstore.docstore import (
    Head,
    Record,
    RecordKind,
    document_fields,
    head_from_fields,
    key_from_fields,
    record_from_fields,
)


def head_id(key: ConfigKey) -> tuple[str, ...]:
    return ("h", *_key_parts(key))


def version_id(key: ConfigKey, generation: int, version: int) -> tuple[str, ...]:
    return ("v", *_key_parts(key), str(generation), str(version))


def record_id(record: Record) -> tuple[str, ...]:
    if record.kind is RecordKind.PURGE:
        return ("p", *_key_parts(record.key), str(record.generation))
    return version_id(record.key, record.generation, record.version)


def fields_of(document: Head | Record) -> dict[str, Any]:
    """The Vespa fields of a head or record."""
    fields = {**document_fields(document), **_entry_fields(document.entry)}
    if isinstance(document, Head):
        fields["kind"] = "head"
    return fields


def head_of(fields: Mapping[str, Any]) -> Head:
    """A head as read; its compare-and-set token is its ``write_id`` (unique per head write)."""
    return head_from_fields(fields, entry=_entry_of(fields), token=fields.get("write_id"))


def record_of(fields: Mapping[str, Any]) -> Record:
    return record_from_fields(fields, entry=_entry_of(fields))


def _key_parts(key: ConfigKey) -> tuple[str, ...]:
    return (key.tenant_id, key.scope.value, key.service, key.config_key)


def _entry_fields(entry: ConfigEntry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    audit = {"updated_by": entry.updated_by, "comment": entry.comment}
    return {
        "payload": json.dumps(entry.config_value, ensure_ascii=False, separators=(",", ":")),
        "audit": json.dumps(audit, ensure_ascii=False),
        "created_at": epoch_micros(entry.created_at),
        "updated_at": epoch_micros(entry.updated_at),
    }


def _entry_of(fields: Mapping[str, Any]) -> ConfigEntry | None:
    """The entry a head or version document holds; None for summaries and empty heads."""
    if "payload" not in fields:
        return None
    key = key_from_fields(fields)
    try:
        audit = json.loads(fields.get("audit") or "{}")
        return ConfigEntry(
            tenant_id=key.tenant_id,
            scope=key.scope,
            service=key.service,
            config_key=key.config_key,
            config_value=json.loads(fields["payload"]),
            version=int(fields["version"]),
            created_at=from_epoch_micros(int(fields["created_at"])),
            updated_at=from_epoch_micros(int(fields["updated_at"])),
            updated_by=audit.get("updated_by"),
            comment=audit.get("comment"),
            deleted=bool(fields.get("deleted", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendError(f"malformed config document in Vespa: {exc!r}") from exc
