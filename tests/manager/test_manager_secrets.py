"""Secrets never leak: not through repr/str, logs, failing validation (every output) or diffs."""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest
from manager_stores import SwitchableStore

from confstore import (
    AgentConfig,
    ConfigManager,
    InvalidConfigError,
    ModuleConfig,
    SystemConfig,
)

SECRET = "sk-live-0123456789abcdef"
SYSTEM_KEY = ("default", "system", "system", "system_config")


def every_output(error: BaseException) -> str:
    """Everything an exception can show: message, repr, args, traceback and its whole chain."""
    parts = [str(error), repr(error), repr(error.args)]
    parts.extend(traceback.format_exception(error, chain=True))
    linked = error.__cause__ or error.__context__
    while linked is not None:
        parts.extend([str(linked), repr(linked), repr(linked.args)])
        linked = linked.__cause__ or linked.__context__
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_config_read_back_never_shows_the_secret(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    config = await manager.get_system_config()
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in config.model_dump_json()


async def test_failed_set_never_shows_the_secret(
    manager: ConfigManager, caplog: pytest.LogCaptureFixture
) -> None:
    bad = SystemConfig.model_construct(llm_api_key=SECRET, vespa_port=SECRET)
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_system_config(bad)
    assert caught.value.field == "vespa_port"
    assert SECRET not in every_output(caught.value)
    assert SECRET not in caplog.text


async def test_failed_set_of_a_secret_of_the_wrong_type_never_shows_it(
    manager: ConfigManager,
) -> None:
    bad = SystemConfig.model_construct(llm_api_key=[SECRET])
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_system_config(bad)
    assert caught.value.field == "llm_api_key"
    assert SECRET not in every_output(caught.value)


async def test_failed_read_of_a_bad_stored_config_never_shows_the_secret(
    manager: ConfigManager,
) -> None:
    await manager.store.set_config(*SYSTEM_KEY, {"llm_api_key": SECRET, "environment": SECRET})
    with pytest.raises(InvalidConfigError) as caught:
        await manager.get_system_config()
    assert caught.value.field == "environment"
    assert SECRET not in every_output(caught.value)


async def test_failed_nested_validation_never_shows_the_secret(manager: ConfigManager) -> None:
    value = {
        "agent_name": "a",
        "llm_api_key": SECRET,
        "module_config": {"module_type": SECRET, "signature": "S"},
    }
    await manager.store.set_config("default", "agent", "a", "agent_config", value)
    with pytest.raises(InvalidConfigError) as caught:
        await manager.get_agent_config("default", "a")
    assert caught.value.field == "module_config.module_type"
    assert SECRET not in every_output(caught.value)


async def test_failed_assignment_never_shows_the_secret(manager: ConfigManager) -> None:
    config = await manager.get_system_config()
    with pytest.raises(ValueError, match="search_backend") as caught:
        config.search_backend = SECRET  # type: ignore[assignment]
    assert SECRET not in every_output(caught.value)


async def test_diff_never_shows_the_secret(manager: ConfigManager) -> None:
    module = ModuleConfig(module_type="predict", signature="S")  # type: ignore[arg-type]
    first = AgentConfig(agent_name="a", module_config=module, llm_api_key=SECRET)  # type: ignore[arg-type]
    await manager.set_agent_config("default", "a", first)
    second = first.model_copy(update={"llm_api_key": None, "llm_model": "m"})
    await manager.set_agent_config("default", "a", second)
    changes = await manager.diff("default", "agent", "a", "agent_config", 1, 2)
    assert [(change.path, change.old, change.new) for change in changes] == [
        ("llm_api_key", "***", None),
        ("llm_model", None, "m"),  # stored overrides: v1 inherited the default model
    ]
    assert SECRET not in repr(changes)


async def test_logs_never_show_the_secret(
    switchable: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with ConfigManager(switchable, poll_interval=0.05) as manager:
        await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
        await manager.update(SystemConfig, "default", lambda config: None)
        await manager.refresh()
        switchable.down = True
        await switchable.wait_for_polls(2)
    assert "change feed" in caplog.text
    assert SECRET not in caplog.text


async def test_watch_event_repr_never_shows_the_secret(manager: ConfigManager) -> None:
    watch = manager.watch()
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    event = await asyncio.wait_for(anext(watch), 3)
    assert SECRET not in repr(event)
    assert SECRET not in str(event)


async def test_the_mask_under_a_secret_named_key_is_refused(manager: ConfigManager) -> None:
    """Also inside the free-form parts of a typed config, and nothing is written."""
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_system_config(SystemConfig(metadata={"db": {"private_key": "***"}}))
    assert caught.value.field == "metadata.db.private_key"
    assert await manager.store.get_config(*SYSTEM_KEY) is None
