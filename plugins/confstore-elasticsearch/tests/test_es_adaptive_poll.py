"""Over real HTTP (the emulator on loopback): a write by another host reaches a ConfigManager
that polls every 10 minutes, because the store's adaptive poll wakes it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from confstore_elasticsearch import ElasticsearchConfigStore

from confstore import ConfigChangeEvent, ConfigManager
from confstore.docstore import PollBounds

StoreFactory = Callable[..., Awaitable[ElasticsearchConfigStore]]

WAIT = 10.0


async def test_another_hosts_write_reaches_the_manager_long_before_its_poll(
    make_es_store: StoreFactory,
) -> None:
    follower = await make_es_store(poll=PollBounds(min_interval=0.02, max_interval=0.2))
    writer = await make_es_store()
    async with ConfigManager(follower, poll_interval=600) as manager:
        watch = manager.watch(tenant_id="acme")
        await writer.set_config("acme", "system", "svc", "k", {"n": 1})
        event = await asyncio.wait_for(anext(watch), WAIT)
        assert isinstance(event, ConfigChangeEvent)
        assert (event.key.config_key, event.version) == ("k", 1)
