"""Where a store keeps what in etcd's key space, and the JSON documents stored there.

Every key of a store starts with its prefix ``P`` (default ``confstore/``)::

    P heads                                       the feed marker: put by every write
    P heads/{tenant},{scope},{service},{key}      the head: latest version, created_at, writer
    P versions/{tenant},{scope},{service},{key},{inverted version}   one version (the entry)

Identifiers hold only ``A-Z a-z 0-9 _ - . :``, so ``,`` separates them unambiguously, and since
``,`` sorts below every identifier character, byte order of the keys is (scope, service,
config_key) order. Version numbers are written inverted (``ffff...`` minus the version, 16 hex
digits) so that the newest version of a key is the first key of its range: a latest read is a
range with ``limit: 1`` and history a range with ``limit: n``, with no sort (etcd loads a whole
range to sort it). The marker and the heads share the range ``[P heads, P heads0)``, which is
what the change feed watches.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from confstore import ConfigEntry, ConfigKey, ConfigScope, InvalidConfigError

_SEPARATOR = ","
_MAX_VERSION = (1 << 64) - 1
_VERSION_DIGITS = 16


def b64(data: bytes) -> str:
    """etcd's JSON gateway takes ``bytes`` fields as standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\0"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The keys of one store (one prefix)."""

    prefix: bytes

    @classmethod
    def for_prefix(cls, prefix: str) -> KeySpace:
        if not isinstance(prefix, str) or not prefix or not prefix.isprintable():
            raise InvalidConfigError(
                f"prefix must be a non-empty printable string, got {prefix!r}", field="prefix"
            )
        return cls(prefix.encode())

    @property
    def marker(self) -> bytes:
        return self.prefix + b"heads"

    @property
    def feed_range(self) -> tuple[bytes, bytes]:
        """The marker and every head: what the change feed watches."""
        return self.marker, prefix_end(self.marker)

    @property
    def all_heads(self) -> tuple[bytes, bytes]:
        start = self.marker + b"/"
        return start, prefix_end(start)

    @property
    def all_versions(self) -> tuple[bytes, bytes]:
        start = self.prefix + b"versions/"
        return start, prefix_end(start)

    def head(self, key: ConfigKey) -> bytes:
        return self.marker + b"/" + _identity(key)

    def heads_of(
        self, tenant_id: str, scope: ConfigScope | None = None, service: str | None = None
    ) -> tuple[bytes, bytes]:
        """The heads of a tenant, of one scope of it, or of one service in a scope (a service
        without a scope is no prefix: the range is then the tenant's)."""
        parts = [tenant_id]
        if scope is not None:
            parts.append(scope.value)
            if service is not None:
                parts.append(service)
        start = self.marker + b"/" + (_SEPARATOR.join(parts) + _SEPARATOR).encode()
        return start, prefix_end(start)

    def version(self, key: ConfigKey, version: int) -> bytes:
        inverted = format(_MAX_VERSION - version, f"0{_VERSION_DIGITS}x")
        return self.versions_prefix(key) + inverted.encode()

    def versions_prefix(self, key: ConfigKey) -> bytes:
        return self.prefix + b"versions/" + _identity(key) + _SEPARATOR.encode()

    def versions_of(self, key: ConfigKey) -> tuple[bytes, bytes]:
        start = self.versions_prefix(key)
        return start, prefix_end(start)

    def versions_between(self, key: ConfigKey, low: int, high: int) -> tuple[bytes, bytes]:
        """The range of versions ``low..high`` of ``key`` (newest first, like every version range)."""
        return self.version(key, high), self.version(key, low) + b"\0"

    def key_of_head(self, raw: bytes) -> ConfigKey | None:
        """The config a head key belongs to; None for the marker or a foreign key."""
        start = self.marker + b"/"
        if not raw.startswith(start):
            return None
        parts = raw[len(start) :].decode("utf-8", "replace").split(_SEPARATOR)
        if len(parts) != 4 or parts[1] not in ConfigScope._value2member_map_:
            return None
        return ConfigKey(parts[0], ConfigScope(parts[1]), parts[2], parts[3])

    def version_number(self, raw: bytes) -> int:
        return _MAX_VERSION - int(raw[-_VERSION_DIGITS:], 16)


def _identity(key: ConfigKey) -> bytes:
    return _SEPARATOR.join((key.tenant_id, key.scope.value, key.service, key.config_key)).encode()


@dataclass(frozen=True, slots=True)
class Head:
    """A key's head as stored, with the revision it was last written at.

    ``version`` is the latest version (0 after a purge: the head stays as a purge marker so a
    write that is sent again can never recreate what the purge removed). ``written`` lists the
    (version, deleted) pairs the last transaction wrote, which is what the change feed reports.
    """

    version: int
    deleted: bool
    created_at: str
    write_id: str
    written: tuple[tuple[int, bool], ...]
    mod_revision: int = 0
    purged: int = 0

    @property
    def live(self) -> bool:
        return self.version > 0 and not self.deleted

    @property
    def exists(self) -> bool:
        """The key has stored versions (it may be a tombstone)."""
        return self.version > 0

    def encode(self) -> bytes:
        """The stored form (``mod_revision`` is etcd's, not stored)."""
        document: dict[str, Any] = {
            "v": self.version,
            "d": self.deleted,
            "c": self.created_at,
            "w": self.write_id,
            "ch": [[version, deleted] for version, deleted in self.written],
        }
        if self.purged:
            document["p"] = self.purged
        return _dumps(document)

    @classmethod
    def from_kv(cls, kv: dict[str, Any]) -> Head:
        document = json.loads(unb64(kv.get("value")))
        return cls(
            version=int(document["v"]),
            deleted=bool(document.get("d")),
            created_at=str(document.get("c", "")),
            write_id=str(document.get("w", "")),
            written=tuple((int(v), bool(d)) for v, d in document.get("ch", [])),
            mod_revision=int(kv["mod_revision"]),
            purged=int(document.get("p", 0)),
        )


def version_value(entry: ConfigEntry, write_id: str) -> bytes:
    return _dumps({**entry.to_dict(), "w": write_id})


def entry_from_kv(kv: dict[str, Any]) -> tuple[ConfigEntry, str]:
    """The entry stored in a version key, and the id of the write that stored it."""
    document = json.loads(unb64(kv.get("value")))
    return ConfigEntry.from_dict(document), str(document.get("w", ""))


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
