"""A write by another process (a real subprocess on the same SQLite file) reaches this process's
manager and its watch within 3 s, at the default poll interval."""

from __future__ import annotations

import asyncio
import textwrap
import time

from python_process import run_python

from confstore import ChangeKind, ConfigChangeEvent, ConfigManager

PROPAGATION_LIMIT_SECONDS = 3.0

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from confstore import SystemConfig, open_store

    async def main(url: str, llm_model: str) -> None:
        async with open_store(url) as store:
            value = SystemConfig(llm_model=llm_model).model_dump(mode="json")
            await store.set_config("default", "system", "system", "system_config", value)
        print(time.time())

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def write_in_another_process(url: str, llm_model: str) -> float:
    """Run the writer and return the wall-clock time right after its write committed."""
    exit_code, stdout, stderr = await run_python(WRITER, url, llm_model)
    assert exit_code == 0, stderr
    return float(stdout)


async def test_other_process_write_reaches_cache_and_watch(sqlite_url: str) -> None:
    async with ConfigManager(url=sqlite_url) as manager:
        assert (await manager.get_system_config()).llm_model == "gpt-4"
        watch = manager.watch()
        committed_at = await write_in_another_process(sqlite_url, "from-another-process")
        event = await asyncio.wait_for(anext(watch), PROPAGATION_LIMIT_SECONDS)
        seen_after = time.time() - committed_at
        assert event.kind is ChangeKind.SET
        assert event.entry is not None
        assert event.entry.config_value["llm_model"] == "from-another-process"
        assert (await manager.get_system_config()).llm_model == "from-another-process"
        assert seen_after < PROPAGATION_LIMIT_SECONDS


async def test_on_sqlite_a_commit_wakes_the_manager_long_before_its_poll(sqlite_url: str) -> None:
    # Polling every 10 minutes: the write can only arrive this soon because it woke the follower.
    async with ConfigManager(url=sqlite_url, poll_interval=600) as manager:
        assert (await manager.get_system_config()).llm_model == "gpt-4"
        watch = manager.watch(tenant_id="default")
        await write_in_another_process(sqlite_url, "woken")
        event = await asyncio.wait_for(anext(watch), PROPAGATION_LIMIT_SECONDS)
        assert isinstance(event, ConfigChangeEvent)
        assert event.entry is not None
        assert event.entry.config_value["llm_model"] == "woken"
        assert (await manager.get_system_config()).llm_model == "woken"
