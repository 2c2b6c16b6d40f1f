"""Fixtures of the confstore-remote tests: a real ``confstore serve`` app on a free loopback port,
backed by a fresh SQLite file, and remote stores speaking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from confstore_remote import RemoteConfigStore
from remote_test_support import FAST_RETRY, TOKENS, RemoteFactory, Server

from confstore import SQLiteConfigStore
from confstore.server import ServerSettings, TokenFile, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    tokens = TokenFile(tmp_path / "tokens.json")
    admin_token, _ = tokens.create("admin", "admin", ["*"])
    secrets = {
        name: tokens.create(name, role, tenants)[0] for name, (role, tenants) in TOKENS.items()
    }
    database = tmp_path / "server.db"
    store = SQLiteConfigStore(str(database))
    async with running_server(store, tokens.path, ServerSettings()) as url:
        yield Server(url, tokens, admin_token, database, secrets)


@pytest.fixture
async def make_remote(server: Server) -> AsyncIterator[RemoteFactory]:
    """Open initialised remote stores on the server (admin token unless given); closes them all."""
    opened: list[RemoteConfigStore] = []

    async def make(**options: Any) -> RemoteConfigStore:
        options.setdefault("token", server.admin_token)
        options.setdefault("retry", FAST_RETRY)
        store = RemoteConfigStore(server.url, **options)
        await store.initialize()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
