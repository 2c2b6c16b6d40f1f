"""What the confstore-remote tests share: the running server's handle and a fast retry policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from confstore_remote import RemoteConfigStore

from confstore.http import RetryPolicy
from confstore.server import TokenFile

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
RemoteFactory = Callable[..., Awaitable[RemoteConfigStore]]


@dataclass
class Server:
    """A running server: its base URL and tokens file, the secret of its admin token for every
    tenant, and the secrets of the TOKENS."""

    url: str
    tokens: TokenFile
    admin_token: str
    database: Path
    secrets: dict[str, str]  # of the TOKENS, by name


# Made before the server starts, besides "admin" (admin, every tenant): name -> (role, tenants).
TOKENS = {"acme-writer": ("write", ["acme"]), "dashboard": ("read", ["*"])}
