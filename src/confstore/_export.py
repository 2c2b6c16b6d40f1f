"""The export document: building it, and validating one before an import writes anything."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from itertools import count, islice
from operator import itemgetter
from typing import Any, Final, Literal, TypeVar

from ._diff import secret_paths_for
from ._errors import ConfigStoreError, ImportConflictError, ImportFormatError
from ._models import ConfigEntry, ConfigKey, ConfigScope, format_timestamp, utc_now
from ._secrets import refuse_masked_secrets
from ._typed import TypedConfigSpec, load_stored, typed_config_specs
from ._validation import (
    MAX_TEXT_LENGTH,
    MAX_VERSION,
    encode_json,
    encode_value,
    parsed_value_text,
    validate_identifier,
    validate_optional_text,
    validate_version,
)

EXPORT_FORMAT = "confstore-export"
EXPORT_FORMAT_VERSION = 1

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

ImportMode = Literal["restore", "append"]
IMPORT_MODES: tuple[ImportMode, ...] = ("restore", "append")

# A checked entry as text, in the order of a stored row: tenant_id, scope, service, config_key,
# the value's canonical JSON text, version, created_at and updated_at (``format_timestamp``),
# updated_by, comment, deleted (0 or 1).
EntryRow = tuple[str, str, str, str, str, int, str, str, str | None, str | None, int]
# Entries checked per step of ``checked_row_chunks`` when the source gives them one at a time.
ROW_CHUNK: Final = 1000
# Bounds on what the checks remember between entries (a few MB at most).
_MEMO_LIMIT: Final = 10_000
_SCOPE_VALUES: Final = frozenset(scope.value for scope in ConfigScope)
# The members of an entry that the quick check reads, in the order it reads them.
_ENTRY_MEMBER_NAMES: Final = (
    "scope",
    "service",
    "config_key",
    "version",
    "config_value",
    "created_at",
    "updated_at",
    "updated_by",
    "comment",
    "deleted",
)
_ENTRY_MEMBERS: Final = itemgetter(*_ENTRY_MEMBER_NAMES)
# A timestamp as ``format_timestamp`` writes it, if its minute (group 1) exists: the pattern
# checks the seconds, ``datetime.fromisoformat`` the rest.
_CANONICAL_TIMESTAMP: Final = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d):[0-5]\d\.\d{6}\+00:00", re.ASCII
)


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


def import_document_rows(
    tenant_id: str, document: object, *, max_value_bytes: int
) -> list[EntryRow]:
    """``parse_import_document`` as rows (see ``EntryRow``): the same checks, in the same order,
    with the same errors, and the rows of its entries in its order, without a ConfigEntry per
    entry or a second encoding of each value."""
    raw_entries = _raw_entries(document)
    checks = ImportChecks(tenant_id, max_value_bytes)
    rows = _in_version_order(
        ((row[0], row[1], row[2], row[3], row[5]), row)
        for row in map(checks.row, raw_entries, count())
    )
    checks.finish()
    return rows


class ImportChecks:
    """The checks every import path makes: each entry as it comes (``entry``; ``row`` and
    ``rows`` for one or a list of them as rows), then, once all have been seen, the newest
    version of each typed config against its schema (``finish``).

    Raises ImportFormatError naming the entry. Memory: one entry per typed config, and bounded
    memos of the identifiers and timestamps seen.
    """

    def __init__(self, tenant_id: str, max_value_bytes: int) -> None:
        self.tenant_id = tenant_id
        self.max_value_bytes = max_value_bytes
        self._typed = {
            (spec.scope, spec.config_key): spec for spec in typed_config_specs().values()
        }
        self._newest_typed: dict[ConfigKey, tuple[int, ConfigEntry]] = {}
        self._valid_names: set[tuple[str, str, str]] = set()
        self._timestamps = TimestampMemo()

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

    def rows(self, raws: list[Any], first_position: int, *, parsed: bool) -> list[EntryRow]:
        """``row`` for each of ``raws`` (at ``first_position`` on)."""
        quick_row, entry, timestamps = self._quick_row, self.entry, self._timestamps
        return [
            quick_row(raw, parsed) or entry_row(entry(raw, position), timestamps)
            for position, raw in enumerate(raws, first_position)
        ]

    def row(self, raw: Any, position: int, parsed: bool = False) -> EntryRow:
        """``entry`` as a row.

        ``parsed``: the value was just parsed from JSON text (see ``parsed_value_text``).
        An entry of the common shape is checked here in a few dict lookups and comparisons;
        anything else (a typed config, non-ASCII audit text, an error) takes ``entry``, which
        accepts and rejects exactly what this does, so both give the same rows and errors.
        """
        return self._quick_row(raw, parsed) or entry_row(
            self.entry(raw, position), self._timestamps
        )

    def _quick_row(self, raw: Any, parsed: bool) -> EntryRow | None:
        """The row of a well-formed entry of an untyped config; None: ``entry`` must decide."""
        if type(raw) is not dict:
            return None
        try:
            members = _ENTRY_MEMBERS(raw)  # one call for an entry as exports write it
        except KeyError:
            members = tuple(map(raw.get, _ENTRY_MEMBER_NAMES))
        (scope, service, config_key, version, value, created, updated, updated_by, comment,
         deleted) = members  # fmt: skip
        if not (
            type(scope) is str
            and type(service) is str
            and type(config_key) is str
            and type(version) is int
            and 0 < version <= MAX_VERSION
            and type(value) is dict
            and type(created) is str
            and type(updated) is str
            and (deleted is None or deleted is False or (deleted is True and not value))
            and (updated_by is None or _plain_text(updated_by))
            and (comment is None or _plain_text(comment))
            and (
                (scope, service, config_key) in self._valid_names
                or self._known_name(scope, service, config_key)
            )
        ):
            return None
        timestamps = self._timestamps
        known = timestamps.known
        created_at = known.get(created) or timestamps.canonical(created)
        updated_at = known.get(updated) or timestamps.canonical(updated)
        if created_at is None or updated_at is None or updated_at < created_at:
            return None
        try:
            if parsed:
                text = parsed_value_text(value, self.max_value_bytes)
            else:
                text = encode_value(value, self.max_value_bytes)[1]
        except ConfigStoreError:
            return None
        return (
            self.tenant_id,
            scope,
            service,
            config_key,
            text,
            version,
            created_at,
            updated_at,
            updated_by,
            comment,
            1 if deleted else 0,
        )

    def _known_name(self, scope: str, service: str, config_key: str) -> bool:
        """True if (scope, service, config_key) are valid and name no typed config."""
        name = (scope, service, config_key)
        if name in self._valid_names:
            return True
        if scope not in _SCOPE_VALUES or (scope, config_key) in self._typed:
            return False
        try:
            validate_identifier("service", service)
            validate_identifier("config_key", config_key)
        except ConfigStoreError:
            return False
        if len(self._valid_names) >= _MEMO_LIMIT:
            self._valid_names.clear()
        self._valid_names.add(name)
        return True

    def finish(self) -> None:
        for position, entry in self._newest_typed.values():
            try:
                _check_typed(self._typed[entry.scope, entry.config_key], entry)
            except ConfigStoreError as exc:
                raise ImportFormatError(
                    f"configs[{position}] ({entry.key} version {entry.version}): {exc}"
                ) from exc


class ParsedEntries:
    """Raw entries that confstore's own reader parses from JSON text, a list at a time.

    ``read_chunk()`` blocks: it reads and parses the next piece and returns the entries it
    completed (maybe none), or None after the last. An async iterable of the entries, like any
    other source of ``import_entries``, which runs ``read_chunk`` on a worker thread. A store
    may instead call it on a thread of its own (``CheckedRows``): SQLite's writer thread reads,
    checks and writes each piece in one job. The import checks skip the value's JSON round trip
    (see ``parsed_value_text``), so only values that came out of the ``json`` module belong here.
    """

    def __init__(self, read_chunk: Callable[[], list[Any] | None]) -> None:
        self.read_chunk = read_chunk

    async def chunks(self) -> AsyncIterator[list[Any]]:
        while (chunk := await asyncio.to_thread(self.read_chunk)) is not None:
            if chunk:
                yield chunk

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for chunk in self.chunks():
            for raw in chunk:
                yield raw


class CheckedRows:
    """``ImportChecks`` applied to ``ParsedEntries`` by blocking calls: each call reads the next
    piece and returns its entries' rows (maybe none), or None after the last, once the final
    checks (``ImportChecks.finish``) passed. For a store that writes on a thread of its own."""

    def __init__(self, tenant_id: str, entries: ParsedEntries, max_value_bytes: int) -> None:
        self._read_chunk = entries.read_chunk
        self._checks = ImportChecks(tenant_id, max_value_bytes)
        self._position = 0

    def __call__(self) -> list[EntryRow] | None:
        chunk = self._read_chunk()
        if chunk is None:
            self._checks.finish()
            return None
        rows = self._checks.rows(chunk, self._position, parsed=True)
        self._position += len(chunk)
        return rows


async def checked_row_chunks(
    tenant_id: str, raw_entries: Iterable[Any] | AsyncIterable[Any], max_value_bytes: int
) -> AsyncIterator[list[EntryRow]]:
    """``ImportChecks`` applied to raw entries as they come, a list of rows at a time."""
    checks = ImportChecks(tenant_id, max_value_bytes)
    position = 0
    async for chunk, parsed in _raw_chunks(raw_entries):
        yield checks.rows(chunk, position, parsed=parsed)
        position += len(chunk)
    checks.finish()


async def _raw_chunks(
    raw_entries: Iterable[Any] | AsyncIterable[Any],
) -> AsyncIterator[tuple[list[Any], bool]]:
    """Lists of raw entries, each with whether its values were parsed from JSON text."""
    if isinstance(raw_entries, ParsedEntries):
        async for chunk in raw_entries.chunks():
            yield chunk, True
    elif isinstance(raw_entries, AsyncIterable):
        async for chunk in chunked(raw_entries, ROW_CHUNK):
            yield chunk, False
    else:
        iterator = iter(raw_entries)
        while chunk := list(islice(iterator, ROW_CHUNK)):
            yield chunk, False


async def chunked(items: AsyncIterable[_T], size: int) -> AsyncIterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one may be shorter)."""
    chunk: list[_T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def entry_row(entry: ConfigEntry, timestamps: TimestampMemo) -> EntryRow:
    """A checked entry as a row (see ``EntryRow``)."""
    return (
        entry.tenant_id,
        entry.scope.value,
        entry.service,
        entry.config_key,
        encode_json(entry.config_value),
        entry.version,
        timestamps.format(entry.created_at),
        timestamps.format(entry.updated_at),
        entry.updated_by,
        entry.comment,
        int(entry.deleted),
    )


class TimestampMemo:
    """Formats each distinct timestamp once: an import repeats a key's created_at on every version.

    ``canonical`` checks timestamp text the same way: exports write every timestamp in the form
    ``format_timestamp`` gives (checked here by a pattern and a remembered minute), and a key's
    created_at comes again with each of its versions, whatever its form: a text accepted
    recently is one lookup in ``known``.
    """

    def __init__(self) -> None:
        self._formatted: dict[datetime, str] = {}
        self._rejected: set[str] = set()
        self._valid_minutes: dict[str, bool] = {}
        # Texts ``canonical`` accepted recently, each with its canonical form (itself when it was
        # written that way): one lookup for a key's created_at, which comes again with each version.
        self.known: dict[str, str] = {}

    def format(self, moment: datetime) -> str:
        text = self._formatted.get(moment)
        if text is None:
            text = _remember(self._formatted, moment, format_timestamp(moment))
        return text

    def canonical(self, text: object) -> str | None:
        """The timestamp ``text`` as ``format_timestamp`` writes it, if it is an ISO 8601 time
        with a zero UTC offset; None for anything else (the full check says what is wrong)."""
        if type(text) is not str:
            return None
        canonical = self.known.get(text)
        if canonical is not None:
            return canonical
        written = _CANONICAL_TIMESTAMP.fullmatch(text)
        if written is not None:
            minute = written.group(1)
            valid = self._valid_minutes.get(minute)
            if valid is None:
                valid = _remember(
                    self._valid_minutes, minute, _canonical_timestamp(f"{minute}+00:00") is not None
                )
            canonical = text if valid else None
        elif text not in self._rejected:
            canonical = _canonical_timestamp(text)
        if canonical is None:
            if len(self._rejected) >= _MEMO_LIMIT:
                self._rejected.clear()
            self._rejected.add(text)
            return None
        return _remember(self.known, text, canonical)


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> _V:
    """Store ``value`` under ``key`` in a memo that is emptied when it holds _MEMO_LIMIT items."""
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value


def _canonical_timestamp(text: str) -> str | None:
    """``format_timestamp`` of an ISO 8601 time with a zero UTC offset, else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not UTC:
        return None
    return moment.isoformat(timespec="microseconds")


def _plain_text(text: object) -> bool:
    """ASCII audit text within the length limit (other text takes the full check)."""
    return type(text) is str and len(text) <= MAX_TEXT_LENGTH and text.isascii()


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
    return _in_version_order(((entry.key, entry.version), entry) for entry in entries)


def _in_version_order(items: Iterable[tuple[tuple[Any, ...], _T]]) -> list[_T]:
    """Items of an import ordered by their identity (the key's parts, then the version);
    ImportFormatError naming the position of the first identity given twice."""
    found: dict[tuple[Any, ...], _T] = {}
    for position, (identity, item) in enumerate(items):
        if identity in found:
            *key, version = identity
            name = "/".join(map(str, key))
            raise ImportFormatError(
                f"configs[{position}]: version {version} of {name} appears twice"
            )
        found[identity] = item
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
