"""Recognising and masking secrets in config values, wherever values are shown to people.

The rule (documented in the README): a value is a secret when it sits at a secret field of a
typed config (a ``SecretStr``, such as ``llm_api_key``) or under a key named like a secret:

- containing ``api_key``/``apikey``, ``private_key``, ``password``, ``passwd``, ``secret`` or
  ``credential`` (any case, ``_``/``-``/``.`` or nothing between the two words of a pair);
- ending in ``token`` (``access_token``, ``authToken``), or ending in ``tokens`` and holding
  anything but a number (a token list; ``max_tokens: 512`` stays visible);
- whose last word is ``auth`` or ``authorization`` (``auth``, ``basic_auth``, ``proxyAuth``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterator
from typing import Any

from ._errors import InvalidConfigError

SECRET_MASK = "***"
# What a masked secret looks like: ours, and pydantic's SecretStr's. Storing one in place of a
# secret would destroy the real one (the system confstore replaces lost users' API keys that way).
MASKED_SECRET_PLACEHOLDERS = frozenset({SECRET_MASK, "**********"})

_SECRET_NAME = re.compile(
    r"(?:api|private)[_.\-]?key|password|passwd|secret|credential|token$", re.IGNORECASE
)
_TOKEN_LIST_NAME = re.compile(r"tokens$", re.IGNORECASE)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_AUTH_WORDS = frozenset({"auth", "authorization"})


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key named ``name`` holds a secret whatever its value (see the module docstring)."""
    if _SECRET_NAME.search(name) is not None:
        return True
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in _AUTH_WORDS


def is_secret(name: str, value: Any) -> bool:
    """Whether ``value``, found under the key ``name``, is a secret: by its name, or as a token
    list (a key ending in ``tokens`` that holds anything but a number)."""
    if is_secret_name(name):
        return True
    return _TOKEN_LIST_NAME.search(name) is not None and not isinstance(value, int | float)


def mask_secrets(value: Any, secret_paths: Collection[str] = (), path: str = "") -> Any:
    """A copy of ``value`` with secrets replaced by ``***`` (unset secrets stay null).

    A secret is a field at one of ``secret_paths`` (dotted, lists as ``[i]``: ``llm_api_key``)
    or under any key named like a secret (see ``is_secret``).
    """
    if isinstance(value, dict):
        masked = {}
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            secret = item_path in secret_paths or is_secret(str(name), item)
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
    return (path for path, _ in _secret_items(value, "", ()))


def refuse_masked_secrets(value: Any, secret_paths: Collection[str] = ()) -> None:
    """InvalidConfigError if a secret of ``value`` holds a mask (``***``) instead of a secret.

    Secrets are what ``mask_secrets`` would mask: keys named like secrets, and ``secret_paths``
    (the secret fields of a typed config). Writing back a value copied from masked output would
    replace the secret with the mask. Every write path runs this check: stores (set and import),
    the manager and the CLI.
    """
    for path, item in _secret_items(value, "", secret_paths):
        masked_at = next(_mask_paths(item, path), None)
        if masked_at is not None:
            raise InvalidConfigError(
                f"{masked_at} holds the mask {SECRET_MASK}, not a secret; give the real value "
                "(see --show-secrets) or null",
                field=masked_at,
            )


def _secret_items(
    value: Any, path: str, secret_paths: Collection[str]
) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            if item_path in secret_paths or is_secret(str(name), item):
                yield item_path, item
            else:
                yield from _secret_items(item, item_path, secret_paths)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_items(item, f"{path}[{index}]", secret_paths)


def _mask_paths(value: Any, path: str) -> Iterator[str]:
    """Where in ``value`` (a secret, or a structure of secrets) a mask placeholder stands."""
    if isinstance(value, str) and value in MASKED_SECRET_PLACEHOLDERS:
        yield path
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _mask_paths(item, f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _mask_paths(item, f"{path}[{index}]")
