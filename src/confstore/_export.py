"""The export document: building it, and validating one before an import writes anything."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any, Literal

from ._diff import secret_paths_for
from ._errors import ConfigStoreError, ImportConflictError, ImportFormatError
from ._models import ConfigEntry, ConfigKey, format_timestamp, utc_now
from ._secrets import refuse_masked_secrets
from ._typed import TypedConfigSpec, load_stored, typed_config_specs
from ._validation import (
    encode_value,
    validate_identifier,
    validate_optional_text,
    validate_version,
)

EXPORT_FORMAT = "confstore-export"
EXPORT_FORMAT_VERSION = 1

ImportMode = Literal["restore", "append"]
IMPORT_MODES: tuple[ImportMode, ...] = ("restore", "append")


def export_header(tenant_id: str, include_history: bool) -> dict[str, Any]:
    """The export document without its ``configs`` list."""
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "tenant_id": tenant_id,
        "include_history": include_history,
        "exported_at": format_timestamp(utc_now()),
    }


def build_export_document(
    tenant_id: str, include_history: bool, entries: Iterable[ConfigEntry]
) -> dict[str, Any]:
    document = export_header(tenant_id, include_history)
    document["configs"] = [entry.to_dict() for entry in entries]
    return document


def parse_import_document(
    tenant_id: str, document: object, *, max_value_bytes: int
) -> list[ConfigEntry]:
    """Validate a whole import document and return its entries, moved into ``tenant_id``.

    Accepts the confstore export format, the original system's shape (a mapping with ``configs``
    and no ``format`` key) and a bare list of entries. Entries come back ordered by key, then version.
    Each entry is checked as a write would be (identifiers, value, version, audit text), and the
    newest version of each typed config (``system_config``...) must validate against its schema,
    as on a typed set. Raises ImportFormatError for anything malformed, naming the entry, so
    callers write nothing on failure.
    """
    raw_entries = _raw_entries(document)
    checks = ImportChecks(tenant_id, max_value_bytes)
    entries = ordered_entries(
        checks.entry(raw, position) for position, raw in enumerate(raw_entries)
    )
    checks.finish()
    return entries


class ImportChecks:
    """The checks every import path makes: each entry as it comes (``entry``), then, once all
    have been seen, the newest version of each typed config against its schema (``finish``).

    Raises ImportFormatError naming the entry. Memory: one entry per typed config.
    """

    def __init__(self, tenant_id: str, max_value_bytes: int) -> None:
        self.tenant_id = tenant_id
        self.max_value_bytes = max_value_bytes
        self._typed = {
            (spec.scope, spec.config_key): spec for spec in typed_config_specs().values()
        }
        self._newest_typed: dict[ConfigKey, tuple[int, ConfigEntry]] = {}

    def entry(self, raw: object, position: int) -> ConfigEntry:
        """Validate the entry at ``position`` of ``configs`` and move it into the tenant."""
        try:
            entry = _checked_entry(self.tenant_id, raw, self.max_value_bytes)
        except ConfigStoreError as exc:
            label = _label(self.tenant_id, raw)
            raise ImportFormatError(f"configs[{position}]{label}: {exc}") from exc
        if (entry.scope, entry.config_key) in self._typed:
            newest = self._newest_typed.get(entry.key)
            if newest is None or newest[1].version < entry.version:
                self._newest_typed[entry.key] = (position, entry)
        return entry

    def finish(self) -> None:
        for position, entry in self._newest_typed.values():
            try:
                _check_typed(self._typed[entry.scope, entry.config_key], entry)
            except ConfigStoreError as exc:
                raise ImportFormatError(
                    f"configs[{position}] ({entry.key} version {entry.version}): {exc}"
                ) from exc


async def checked_entries(
    tenant_id: str, raw_entries: Iterable[Any] | AsyncIterable[Any], max_value_bytes: int
) -> AsyncIterator[ConfigEntry]:
    """``ImportChecks`` applied to an iterable or async iterable of entries, as they come."""
    checks = ImportChecks(tenant_id, max_value_bytes)
    if isinstance(raw_entries, AsyncIterable):
        position = 0
        async for raw in raw_entries:
            yield checks.entry(raw, position)
            position += 1
    else:
        for position, raw in enumerate(raw_entries):
            yield checks.entry(raw, position)
    checks.finish()


def ordered_entries(entries: Iterable[ConfigEntry]) -> list[ConfigEntry]:
    """Entries ordered by key, then version; ImportFormatError if a version appears twice."""
    found: dict[tuple[Any, ...], ConfigEntry] = {}
    for position, entry in enumerate(entries):
        identity = (entry.key, entry.version)
        if identity in found:
            raise ImportFormatError(
                f"configs[{position}]: version {entry.version} of {entry.key} appears twice"
            )
        found[identity] = entry
    return [found[identity] for identity in sorted(found)]


def check_header(header: Mapping[str, Any]) -> None:
    """Check the members beside ``configs``: a ``format``, if present, must be this one."""
    if "format" not in header:
        return
    if header["format"] != EXPORT_FORMAT:
        raise ImportFormatError(f"unknown format {header['format']!r}; expected {EXPORT_FORMAT!r}")
    if header.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ImportFormatError(
            f"unsupported format_version {header.get('format_version')!r}; "
            f"this confstore reads version {EXPORT_FORMAT_VERSION}"
        )


def plan_restore(
    incoming: Iterable[ConfigEntry], existing: Mapping[int, ConfigEntry]
) -> list[ConfigEntry]:
    """For one key: the incoming versions a restore must write, given the versions already stored.

    A stored version equal in value and deletion to the incoming one is skipped (so re-importing an
    export writes nothing); a stored version that differs raises ImportConflictError.
    """
    to_write = []
    for entry in incoming:
        stored = existing.get(entry.version)
        if stored is None:
            to_write.append(entry)
        elif stored.config_value != entry.config_value or stored.deleted != entry.deleted:
            raise ImportConflictError(
                f"version {entry.version} of {entry.key} is already stored with a different value",
                key=entry.key,
                version=entry.version,
            )
    return to_write


def _raw_entries(document: object) -> list[Any]:
    if isinstance(document, list):
        return document
    if not isinstance(document, Mapping):
        raise ImportFormatError(
            f"an import document must be a JSON object, got {type(document).__name__}"
        )
    check_header(document)
    configs = document.get("configs")
    if not isinstance(configs, list):
        raise ImportFormatError("an import document needs a 'configs' list")
    return configs


def _checked_entry(tenant_id: str, raw: object, max_value_bytes: int) -> ConfigEntry:
    if not isinstance(raw, Mapping):
        raise ImportFormatError(f"an entry must be a JSON object, got {type(raw).__name__}")
    value, _ = encode_value(raw.get("config_value"), max_value_bytes)
    entry = ConfigEntry.from_dict({**raw, "tenant_id": tenant_id, "config_value": value})
    validate_identifier("service", entry.service)
    validate_identifier("config_key", entry.config_key)
    validate_version(entry.version)
    validate_optional_text("updated_by", entry.updated_by)
    validate_optional_text("comment", entry.comment)
    if entry.deleted and value:
        raise ImportFormatError(f"version {entry.version} is a tombstone but has a value")
    if entry.updated_at < entry.created_at:
        raise ImportFormatError(f"version {entry.version} has updated_at before created_at")
    return entry


def _check_typed(spec: TypedConfigSpec, entry: ConfigEntry) -> None:
    """InvalidConfigError if ``entry`` is a live version of ``spec``'s typed config that its
    schema rejects, or whose secret fields hold the mask: reading it would fail."""
    if not entry.deleted:
        load_stored(spec, entry.tenant_id, entry.config_value)
        refuse_masked_secrets(entry.config_value, secret_paths_for(spec.model))


def _label(tenant_id: str, raw: object) -> str:
    """`` (tenant/scope/service/key version N)`` for a raw entry, as far as it is readable."""
    if not isinstance(raw, Mapping):
        return ""
    parts = [tenant_id]
    for name in ("scope", "service", "config_key"):
        part = raw.get(name)
        parts.append(part if isinstance(part, str) and len(part) <= 128 else "?")
    version = raw.get("version")
    shown = f" version {version}" if type(version) is int and version.bit_length() <= 64 else ""
    return f" ({'/'.join(parts)}{shown})"
