"""Document shapes, ids and the change-feed cursor of the Elasticsearch store (no I/O here).

Two indices, each with the strict mapping of ``mappings/{heads,versions}.json``:

- ``{prefix}-versions``: one document per stored version, id ``tenant/scope/service/key/N``
  (identifiers never contain ``/``, so the id is unambiguous), created only with
  ``_create``; plus purge markers (``kind: purge``) for the change feed.
- ``{prefix}-heads``: one document per key, id ``tenant/scope/service/key``, holding the latest
  version (number, value, deleted flag, timestamps), so a latest read is one real-time GET.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from confstore import (
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    decode_cursor,
    encode_cursor,
    epoch_micros,
)

HEADS = "heads"
VERSIONS = "versions"
_CURSOR_PREFIX = "es1."


def load_mapping(kind: str) -> dict[str, Any]:
    """The index body (settings and strict mappings) shipped with the package."""
    text = (
        resources.files("confstore_elasticsearch").joinpath("mappings", f"{kind}.json").read_text()
    )
    body: dict[str, Any] = json.loads(text)
    return body


def path_id(doc_id: str) -> str:
    """A document id as one percent-encoded path segment (``/`` becomes ``%2F``)."""
    return quote(doc_id, safe="")


def key_id(key: ConfigKey) -> str:
    return f"{key.tenant_id}/{key.scope.value}/{key.service}/{key.config_key}"


def version_id(key: ConfigKey, version: int) -> str:
    return f"{key_id(key)}/{version}"


def purge_marker_id(key: ConfigKey, write_id: str) -> str:
    return f"{key_id(key)}/purge:{write_id}"


def document(
    entry: ConfigEntry,
    *,
    write_id: str,
    written_micros: int,
    lineage: str,
    kind: str = "version",
) -> dict[str, Any]:
    """The version document of ``entry`` (timestamps as ISO strings and epoch microseconds).

    ``lineage`` names one life of a key, from its first version to its purge: a purge deletes
    only its own lineage's versions, never those of the key written again after it.
    """
    doc_id = version_id(entry.key, entry.version)
    if kind == "purge":
        doc_id = purge_marker_id(entry.key, write_id)
    return {
        "key_id": key_id(entry.key),
        "doc_id": doc_id,
        "kind": kind,
        "tenant_id": entry.tenant_id,
        "scope": entry.scope.value,
        "service": entry.service,
        "config_key": entry.config_key,
        "version": entry.version,
        "deleted": entry.deleted,
        "value": entry.config_value,
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "updated_at": entry.updated_at.isoformat(timespec="microseconds"),
        "created_micros": epoch_micros(entry.created_at),
        "updated_micros": epoch_micros(entry.updated_at),
        "written_micros": written_micros,
        "updated_by": entry.updated_by,
        "comment": entry.comment,
        "write_id": write_id,
        "lineage": lineage,
    }


def head_document(version_document: dict[str, Any], *, purging: bool = False) -> dict[str, Any]:
    """The head of a key pointing at ``version_document`` (the same fields, minus the doc kind)."""
    head = {
        name: value for name, value in version_document.items() if name not in ("kind", "doc_id")
    }
    head["purging"] = purging
    if purging:
        head["deleted"] = True
    return head


def entry_from(source: dict[str, Any]) -> ConfigEntry:
    return ConfigEntry(
        tenant_id=source["tenant_id"],
        scope=ConfigScope(source["scope"]),
        service=source["service"],
        config_key=source["config_key"],
        config_value=source.get("value") or {},
        version=int(source["version"]),
        created_at=datetime.fromisoformat(source["created_at"]),
        updated_at=datetime.fromisoformat(source["updated_at"]),
        updated_by=source.get("updated_by"),
        comment=source.get("comment"),
        deleted=bool(source.get("deleted", False)),
    )


def change_from(source: dict[str, Any]) -> ConfigChange:
    key = ConfigKey(
        source["tenant_id"], ConfigScope(source["scope"]), source["service"], source["config_key"]
    )
    if source.get("kind") == "purge":
        return ConfigChange(key, ChangeKind.PURGE, int(source["version"]))
    kind = ChangeKind.DELETE if source.get("deleted") else ChangeKind.SET
    return ConfigChange(key, kind, int(source["version"]))


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """Where a reader of the change feed stands.

    ``high`` is the largest ``written_micros`` delivered (None: nothing yet, start at the
    beginning); ``seen`` the documents already delivered whose ``written_micros`` lies within the
    re-scan window below ``high``, as (micros, token) pairs, so late arrivals inside the window
    are delivered once and nothing is delivered twice.
    """

    high: int | None
    seen: frozenset[tuple[int, str]]

    def encode(self) -> str:
        return encode_cursor(_CURSOR_PREFIX, {"h": self.high, "s": sorted(self.seen)})

    @classmethod
    def decode(cls, cursor: str | None) -> FeedCursor:
        if cursor is None:
            return cls(None, frozenset())
        return decode_cursor(
            cursor, prefix=_CURSOR_PREFIX, backend="Elasticsearch", parse=cls._from_state
        )

    @classmethod
    def _from_state(cls, state: Any) -> FeedCursor:
        high = state["h"]
        if high is not None and (isinstance(high, bool) or not isinstance(high, int)):
            raise ValueError("bad high-water mark")
        return cls(high, frozenset((int(micros), str(token)) for micros, token in state["s"]))

    def advanced(self, delivered: list[tuple[int, str]], window_micros: int) -> FeedCursor:
        high = max(
            [micros for micros, _ in delivered] + ([self.high] if self.high is not None else []),
            default=None,
        )
        if high is None:
            return self
        floor = high - window_micros
        seen = frozenset(item for item in self.seen | set(delivered) if item[0] >= floor)
        return FeedCursor(high, seen)


def feed_token(source: dict[str, Any]) -> tuple[int, str]:
    """Identifies one stored feed document: its micros and a short hash of id and write."""
    micros = int(source["written_micros"])
    digest = hashlib.blake2b(
        f"{source['doc_id']}|{source['write_id']}".encode(), digest_size=9
    ).digest()
    return micros, base64.urlsafe_b64encode(digest).decode("ascii")
