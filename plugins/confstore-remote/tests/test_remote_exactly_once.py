"""Writes through the remote store happen once, as far as the client can see: a proxy loses the
server's answer after the server committed, the store sends the write again with the same
Idempotency-Key, and the server answers with the first result instead of writing twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confstore_remote import RemoteConfigStore
from remote_test_support import FAST_RETRY, Server

from confstore import (
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigManager,
    ConfigStoreError,
    MemoryConfigStore,
    SQLiteConfigStore,
)
from confstore.emulation import LossyProxy
from confstore.http import HttpClient
from confstore.server import running_server

KEY = ("acme", "system", "svc", "key")
PUT = b"PUT /v1/tenants/acme/configs/system/svc/key "


@dataclass
class Lossy:
    proxy: LossyProxy
    store: RemoteConfigStore
    server: Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def server_history(self, limit: int = 100) -> list[int]:
        """The versions stored on the server, read straight from its SQLite file."""
        async with SQLiteConfigStore(str(self.server.database)) as direct:
            history = await direct.get_config_history(*KEY, limit=limit)
        return [entry.version for entry in history]


@pytest.fixture
async def lossy(server: Server) -> AsyncIterator[Lossy]:
    """A remote store speaking to the server through a LossyProxy."""
    port = int(server.url.rsplit(":", 1)[1])
    async with LossyProxy(port) as proxy:
        store = RemoteConfigStore(
            f"http://127.0.0.1:{proxy.port}", token=server.admin_token, retry=FAST_RETRY
        )
        async with store:
            yield Lossy(proxy, store, server)


@pytest.mark.parametrize("losses", [1, 3])
async def test_a_put_whose_answer_is_lost_is_written_once_and_returns_its_version(
    lossy: Lossy, losses: int
) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    lossy.proxy.lose_answer_to(PUT, times=losses)
    entry = await lossy.store.set_config(*KEY, {"n": 2}, comment="lost answer")
    assert (lossy.proxy.losses, lossy.proxy.seen) == (losses, losses + 1)
    assert (entry.version, entry.config_value, entry.comment) == (2, {"n": 2}, "lost answer")
    assert await lossy.server_history() == [2, 1]


async def test_a_conditional_put_whose_answer_is_lost_is_not_reported_as_a_conflict(
    lossy: Lossy,
) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    lossy.proxy.lose_answer_to(PUT, times=2)
    entry = await lossy.store.set_config(*KEY, {"n": 2}, expected_version=1)
    assert entry.version == 2
    assert await lossy.server_history() == [2, 1]


async def test_a_delete_whose_answer_is_lost_reports_the_deletion_once(lossy: Lossy) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    lossy.proxy.lose_answer_to(PUT.replace(b"PUT", b"DELETE"), times=2)
    assert await lossy.store.delete_config(*KEY) is True
    assert lossy.proxy.losses == 2
    assert await lossy.server_history() == [2, 1]
    assert await lossy.store.get_config(*KEY) is None


async def test_an_import_whose_answer_is_lost_is_imported_once(lossy: Lossy) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    document = await lossy.store.export_configs("acme")
    lossy.proxy.lose_answer_to(b"POST /v1/tenants/acme/import", times=1)
    written = await lossy.store.import_configs("acme", document, mode="append")
    assert written == 1
    assert (lossy.proxy.losses, lossy.proxy.seen) == (1, 2)
    assert await lossy.server_history() == [2, 1]


async def test_a_rollback_through_the_manager_whose_answer_is_lost_writes_once(
    lossy: Lossy,
) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    await lossy.store.set_config(*KEY, {"n": 2})
    manager = ConfigManager(store=lossy.store)
    lossy.proxy.lose_answer_to(PUT, times=2)
    entry = await manager.rollback(*KEY, 1)
    await manager.close()
    assert (entry.version, entry.config_value) == (3, {"n": 1})
    assert await lossy.server_history() == [3, 2, 1]


async def test_the_rollback_endpoint_repeated_with_its_key_after_a_lost_answer_writes_once(
    lossy: Lossy,
) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    await lossy.store.set_config(*KEY, {"n": 2})
    lossy.proxy.lose_answer_to(b"POST /v1/tenants/acme/configs/system/svc/key/rollback")
    headers = {
        "Authorization": f"Bearer {lossy.server.admin_token}",
        "Idempotency-Key": uuid.uuid4().hex,
    }
    async with HttpClient(lossy.url, retry=FAST_RETRY) as client:
        answer = await client.request(
            "POST",
            "/v1/tenants/acme/configs/system/svc/key/rollback",
            json_body={"version": 1},
            headers=headers,
            idempotent=True,
        )
    assert (answer.status, answer.headers["Idempotent-Replayed"]) == (200, "true")
    assert answer.json()["version"] == 3
    assert await lossy.server_history() == [3, 2, 1]


async def test_a_write_whose_every_answer_is_lost_raises_timeout_but_is_written_once(
    lossy: Lossy,
) -> None:
    await lossy.store.set_config(*KEY, {"n": 1})
    lossy.proxy.lose_answer_to(PUT, times=100)
    with pytest.raises(BackendTimeoutError, match="outcome is unknown"):
        await lossy.store.set_config(*KEY, {"n": 2})
    assert lossy.proxy.seen > FAST_RETRY.attempts  # aiohttp's re-sends and ours
    assert await lossy.server_history() == [2, 1]


async def test_two_writes_of_the_same_value_are_two_versions(lossy: Lossy) -> None:
    first = await lossy.store.set_config(*KEY, {"n": 1})
    second = await lossy.store.set_config(*KEY, {"n": 1})
    assert (first.version, second.version) == (1, 2)


async def test_the_cli_run_as_a_subprocess_writes_once_through_a_lost_answer(
    lossy: Lossy,
) -> None:
    lossy.proxy.lose_answer_to(PUT, times=2)
    environment = {**os.environ, "CONFSTORE_TOKEN": lossy.server.admin_token}
    environment.pop("CONFSTORE_URL", None)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "confstore.cli", "--url", f"confstore+{lossy.url}"),
        *("set", "system", "svc", "key", '{"n": 7}', "--tenant", "acme", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["version"] == 1
    assert lossy.proxy.losses == 2
    assert await lossy.server_history() == [1]


class FlakyStore(MemoryConfigStore):
    """A store whose writes first fail with the given errors, counting every write it is asked."""

    def __init__(self, *errors: ConfigStoreError) -> None:
        super().__init__()
        self.errors = list(errors)
        self.writes = 0

    async def _set_config(self, key: Any, value: Any, value_json: str, **fields: Any) -> Any:
        self.writes += 1
        if self.errors:
            raise self.errors.pop(0)
        return await super()._set_config(key, value, value_json, **fields)


async def test_a_write_refused_with_503_is_sent_again_with_its_key(
    server: Server, tmp_path: Path
) -> None:
    store = FlakyStore(BackendUnavailableError("down (injected)"))
    async with (
        running_server(store, server.tokens.path) as url,
        RemoteConfigStore(url, token=server.admin_token, retry=FAST_RETRY) as remote,
    ):
        entry = await remote.set_config(*KEY, {"n": 1})
    assert (entry.version, store.writes) == (1, 2)


async def test_a_write_answered_504_is_not_sent_again(server: Server, tmp_path: Path) -> None:
    # 504: the server's own backend timed out, so the server cannot know what happened and
    # remembers nothing; sending the write again could write it twice.
    store = FlakyStore(BackendTimeoutError("timed out (injected)"))
    async with (
        running_server(store, server.tokens.path) as url,
        RemoteConfigStore(url, token=server.admin_token, retry=FAST_RETRY) as remote,
    ):
        with pytest.raises(BackendTimeoutError, match="injected"):
            await remote.set_config(*KEY, {"n": 1})
    assert store.writes == 1
