"""Parsing JSON that people and clients send: one meaning per document."""

from __future__ import annotations

from typing import Any


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: an object that names a key twice raises
    ValueError. Python's parser keeps the last one, other readers (a proxy, a validator, the
    client's own library) may keep the first: such a document means different things to each."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return obj
