"""Recognising and masking secrets in config values, wherever values are shown to people."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

from ._errors import InvalidConfigError

SECRET_MASK = "***"

# Keys whose values are secrets whatever schema they belong to. "token" only as the end of a
# name (access_token, authToken) so that counters such as max_tokens stay visible.
_SECRET_NAME = re.compile(r"api_?key|password|passwd|secret|token$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def mask_secrets(value: Any, secret_paths: Collection[str] = (), path: str = "") -> Any:
    """A copy of ``value`` with secrets replaced by ``***`` (unset secrets stay null).

    A secret is a field at one of ``secret_paths`` (dotted, lists as ``[i]``: ``llm_api_key``)
    or any key named like a secret (``*api_key*``, ``*password*``, ``*secret*``, ``*token``).
    """
    if isinstance(value, dict):
        masked = {}
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            secret = item_path in secret_paths or is_secret_name(str(name))
            masked[name] = (
                SECRET_MASK
                if secret and item is not None
                else mask_secrets(item, secret_paths, item_path)
            )
        return masked
    if isinstance(value, list):
        return [mask_secrets(item, secret_paths, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def secret_name_paths(value: Any) -> Iterator[str]:
    """The paths (as ``mask_secrets`` writes them) of the keys in ``value`` named like secrets."""
    return (path for path, _ in _secret_named_items(value, ""))


def refuse_masked_secrets(value: Any) -> None:
    """InvalidConfigError if a key named like a secret holds ``***``, the mask confstore prints.

    Writing back a value copied from masked output would replace the secret with the mask:
    the system confstore replaces lost users' API keys that way.
    """
    for path, item in _secret_named_items(value, ""):
        if item == SECRET_MASK:
            raise InvalidConfigError(
                f"{path} holds the mask {SECRET_MASK}, not a secret; give the real value "
                "(see --show-secrets) or null",
                field=path,
            )


def _secret_named_items(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            if is_secret_name(str(name)):
                yield item_path, item
            else:
                yield from _secret_named_items(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_named_items(item, f"{path}[{index}]")
