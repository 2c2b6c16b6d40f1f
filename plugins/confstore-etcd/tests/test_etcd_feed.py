"""The change feed on etcd revisions: real compactions expire cursors and the manager resyncs;
another process's write reaches ConfigManager.watch() through the watch stream."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import textwrap
import uuid
from collections.abc import Callable

import pytest
from confstore_etcd import EtcdConfigStore
from confstore_etcd.cluster import EtcdCluster

from confstore import (
    ConfigChangeEvent,
    ConfigManager,
    ConfigResyncEvent,
    CursorExpiredError,
    SystemConfig,
    open_store,
)

TENANT = "feed"


async def _compact(store: EtcdConfigStore) -> int:
    """Compact the cluster's history up to its present revision (waiting until it is gone)."""
    revision = (await store.client.call("kv/range", {"key": "AA=="})).revision
    await store.client.call("kv/compaction", {"revision": str(revision), "physical": True})
    return revision


async def test_a_cursor_older_than_a_compaction_expires_and_a_new_one_works(
    own_cluster: EtcdCluster,
) -> None:
    url = own_cluster.store_url(prefix=f"compact-{uuid.uuid4().hex[:8]}/")
    async with open_store(url) as writer, open_store(url) as reader:
        assert isinstance(writer, EtcdConfigStore)
        await writer.set_config(TENANT, "system", "svc", "k", {"n": 1})
        cursor = await writer.current_cursor()
        await writer.set_config(TENANT, "system", "svc", "k", {"n": 2})
        await writer.set_config(TENANT, "system", "svc", "k", {"n": 3})
        await _compact(writer)  # the revision of version 2 is gone
        with pytest.raises(CursorExpiredError, match="compacted"):
            await reader.changes_since(cursor)
        with pytest.raises(CursorExpiredError):
            await reader.changes_since(None)
        fresh = await reader.current_cursor()
        await writer.set_config(TENANT, "system", "svc", "k", {"n": 4})
        changes = (await reader.changes_since(fresh)).changes
        assert [change.version for change in changes] == [4]


async def test_the_manager_resyncs_when_its_feed_was_compacted_away(
    own_cluster: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The manager's only member dies; meanwhile others write and compact; when the member is
    back, the manager's watch cannot resume, its cursor expires, and it starts over."""
    cluster = own_cluster
    prefix = f"resync-{uuid.uuid4().hex[:8]}/"
    names = list(cluster.members)
    lonely, others = names[0], names[1:]
    only_lonely = _url_of(cluster, [lonely], prefix)
    # Each store in the async with: one left open by a failing assertion would leak its
    # aiohttp session into a later test of the same worker.
    async with (
        open_store(_url_of(cluster, others, prefix)) as writer,
        open_store(only_lonely, timeout="1") as lonely_store,
        ConfigManager(lonely_store, poll_interval=0.2) as manager,
    ):
        await writer.set_config(TENANT, "system", "system", "system_config", {"llm_model": "one"})
        assert (await manager.get_system_config(TENANT)).llm_model == "one"
        watch = manager.watch(tenant_id=TENANT)
        cluster.kill(lonely)
        for model in ("two-a", "two"):
            await writer.set_config(
                TENANT, "system", "system", "system_config", {"llm_model": model}
            )
        await _compact(writer)
        caplog.set_level(logging.WARNING, logger="confstore.manager")
        cluster.start_member(lonely, wait=False)
        await cluster.wait_serving(lonely)
        await _eventually(lambda: "cursor expired" in caplog.text)
        assert (await manager.get_system_config(TENANT)).llm_model == "two"
        await writer.set_config(TENANT, "system", "system", "system_config", {"llm_model": "3"})
        seen: list[ConfigChangeEvent | ConfigResyncEvent] = []
        async with asyncio.timeout(30):
            async for event in watch:
                seen.append(event)
                if isinstance(event, ConfigChangeEvent) and event.version == 4:
                    break
        # The changes compacted away are replaced by one resync event, before the later change.
        assert ConfigResyncEvent("cursor_expired", 0, TENANT, None) in seen[:-1]
        assert (await manager.get_system_config(TENANT)).llm_model == "3"


async def test_a_write_by_another_process_reaches_the_managers_watch(
    etcd_url: str, etcd_prefix: str
) -> None:
    url = f"{etcd_url}{'&' if '?' in etcd_url else '?'}prefix={etcd_prefix}"
    # A poll interval of a minute: only the watch stream can deliver the change in time.
    async with ConfigManager(url=url, poll_interval=60) as manager:
        assert (await manager.get_system_config(TENANT)).llm_model != "from-another-process"
        watch = manager.watch(tenant_id=TENANT)
        await manager.refresh()
        script = textwrap.dedent(
            f"""
            import asyncio
            from confstore import SystemConfig, ConfigManager

            async def main():
                async with ConfigManager(url={url!r}) as writer:
                    await writer.set_system_config(
                        SystemConfig(llm_model="from-another-process"), tenant_id={TENANT!r}
                    )

            asyncio.run(main())
            """
        )
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
        assert await process.wait() == 0
        async with asyncio.timeout(10):
            event = await anext(aiter(watch))
        assert event.entry is not None
        assert event.entry.config_value["llm_model"] == "from-another-process"
        config = await manager.get_system_config(TENANT)
        assert isinstance(config, SystemConfig)
        assert config.llm_model == "from-another-process"


async def _eventually(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for something another process brings about (polled: it has no event to await)."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.05)


def _url_of(cluster: EtcdCluster, names: list[str], prefix: str) -> str:
    hosts = ",".join(f"127.0.0.1:{cluster.members[name].client_port}" for name in names)
    return f"etcd+http://{hosts}?prefix={prefix}"
