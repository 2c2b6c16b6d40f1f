"""A base-tenant change made by another process (a real subprocess on the same SQLite file)
reaches this process's cached inheriting tenant and its watch, at the default poll interval;
the other process's base write that would break this tenant is refused there."""

from __future__ import annotations

import asyncio
import textwrap
import time

from python_process import run_python

from confstore import AgentConfig, ConfigManager, ModuleConfig, OptimizerConfig, SystemConfig

PROPAGATION_LIMIT_SECONDS = 3.0

OPERATOR = textwrap.dedent(
    """
    import asyncio, sys, time
    from confstore import AgentConfig, ConfigManager, InheritanceError, SystemConfig

    async def main(url: str) -> None:
        async with ConfigManager(url=url) as manager:
            try:
                await manager.patch(AgentConfig, "default", {"optimizer_config": None}, "bot")
            except InheritanceError as exc:
                print("refused", sorted(exc.tenants))
            await manager.patch(SystemConfig, "default", {"llm_model": "new-default"})
            print(time.time())

    asyncio.run(main(sys.argv[1]))
    """
)


async def run_operator(url: str) -> tuple[str, float]:
    """Run the other process; what it reported about the refused write, and when it committed."""
    exit_code, stdout, stderr = await run_python(OPERATOR, url)
    assert exit_code == 0, stderr
    refused, committed_at = stdout.splitlines()
    return refused, float(committed_at)


async def test_base_change_in_another_process_reaches_an_inheriting_tenant(
    sqlite_url: str,
) -> None:
    async with ConfigManager(url=sqlite_url) as manager:
        bot = AgentConfig(
            agent_name="bot",
            module_config=ModuleConfig(module_type="react", signature="S"),  # type: ignore[arg-type]
            optimizer_config=OptimizerConfig(optimizer_type="copro"),  # type: ignore[arg-type]
        )
        await manager.set_agent_config("default", "bot", bot)
        await manager.patch(AgentConfig, "acme", {"optimizer_config": {"num_trials": 3}}, "bot")
        await manager.patch(SystemConfig, "acme", {"vespa_port": 9})
        assert (await manager.get_system_config("acme")).llm_model == "gpt-4"
        await manager.refresh()
        watch = manager.watch(tenant_id="acme", scope="system")
        refused, committed_at = await run_operator(sqlite_url)
        event = await asyncio.wait_for(anext(watch), PROPAGATION_LIMIT_SECONDS)
        seen_after = time.time() - committed_at
        assert refused == "refused ['acme']"
        assert (event.tenant_id, event.inherited_from) == ("acme", "default")
        config = await manager.get_system_config("acme")
        assert (config.llm_model, config.vespa_port) == ("new-default", 9)
        assert seen_after < PROPAGATION_LIMIT_SECONDS
        history = await manager.store.get_config_history("default", "agent", "bot", "agent_config")
        assert len(history) == 1
