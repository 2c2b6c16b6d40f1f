"""``ConfigManager.patch``: an RFC 7396 merge patch of the tenant's stored overrides."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from confstore import (
    ConfigManager,
    InvalidConfigError,
    RoutingConfig,
    SystemConfig,
    VersionConflictError,
)

SYSTEM = ("system", "system", "system_config")


async def overrides(manager: ConfigManager, tenant_id: str = "acme") -> dict[str, Any]:
    entry = await manager.store.get_config(tenant_id, *SYSTEM)
    assert entry is not None
    return {name: value for name, value in entry.config_value.items() if name != "tenant_id"}


@pytest.mark.parametrize(
    ("stored", "patch", "result"),
    [
        ({"llm_model": "a"}, {"llm_model": "b"}, {"llm_model": "b"}),
        ({"llm_model": "a"}, {"base_url": "http://b"}, {"llm_model": "a", "base_url": "http://b"}),
        ({"llm_model": "a", "base_url": "http://b"}, {"llm_model": None}, {"base_url": "http://b"}),
        (
            {"metadata": {"a": 1, "b": 2}},
            {"metadata": {"b": None, "c": 3}},
            {"metadata": {"a": 1, "c": 3}},
        ),
        (
            {"video_processing_profiles": ["x", "y"]},
            {"video_processing_profiles": ["z"]},
            {"video_processing_profiles": ["z"]},
        ),
        ({"metadata": {"k": [1, 2]}}, {"metadata": {"k": {"n": 1}}}, {"metadata": {"k": {"n": 1}}}),
        ({}, {"metadata": {"a": {"b": None}}}, {"metadata": {"a": {}}}),
    ],
)
async def test_patch_merges_into_the_stored_overrides(
    manager: ConfigManager,
    stored: dict[str, Any],
    patch: dict[str, Any],
    result: dict[str, Any],
) -> None:
    await manager.store.set_config("acme", *SYSTEM, stored)
    await manager.patch(SystemConfig, "acme", patch)
    assert await overrides(manager) == result


async def test_null_drops_the_override_so_the_field_is_inherited_again(
    manager: ConfigManager,
) -> None:
    await manager.patch(SystemConfig, "default", {"llm_model": "base"})
    await manager.patch(SystemConfig, "acme", {"llm_model": "own"})
    assert (await manager.get_system_config("acme")).llm_model == "own"
    await manager.patch(SystemConfig, "acme", {"llm_model": None})
    assert (await manager.get_system_config("acme")).llm_model == "base"


async def test_a_patch_of_a_tenant_with_nothing_stored_creates_its_overrides(
    manager: ConfigManager,
) -> None:
    entry = await manager.patch(RoutingConfig, "acme", {"routing_mode": "ensemble"})
    assert (entry.version, entry.config_value) == (
        1,
        {"routing_mode": "ensemble", "tenant_id": "acme"},
    )


async def test_a_patch_the_schema_rejects_writes_nothing(manager: ConfigManager) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        await manager.patch(SystemConfig, "acme", {"vespa_port": 0})
    assert caught.value.field == "vespa_port"
    assert await manager.store.get_config("acme", *SYSTEM) is None


@pytest.mark.parametrize("changes", [["llm_model"], "x", None])
async def test_a_patch_that_is_not_an_object_is_refused(
    manager: ConfigManager, changes: Any
) -> None:
    with pytest.raises(InvalidConfigError, match="JSON object"):
        await manager.patch(SystemConfig, "acme", changes)


async def test_a_masked_secret_in_a_patch_is_refused(manager: ConfigManager) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        await manager.patch(SystemConfig, "acme", {"llm_api_key": "***"})
    assert caught.value.field == "llm_api_key"


async def test_expected_version_makes_a_patch_compare_and_set(manager: ConfigManager) -> None:
    await manager.patch(SystemConfig, "acme", {"llm_model": "a"})
    with pytest.raises(VersionConflictError):
        await manager.patch(SystemConfig, "acme", {"llm_model": "b"}, expected_version=0)
    entry = await manager.patch(SystemConfig, "acme", {"llm_model": "b"}, expected_version=1)
    assert entry.version == 2


async def test_concurrent_patches_all_apply(manager: ConfigManager) -> None:
    await asyncio.gather(
        *(manager.patch(SystemConfig, "acme", {"metadata": {f"k{n}": n}}) for n in range(12))
    )
    assert (await manager.get_system_config("acme")).metadata == {f"k{n}": n for n in range(12)}


async def test_patched_values_are_stored_in_the_form_the_schema_gives_them(
    manager: ConfigManager,
) -> None:
    await manager.patch(SystemConfig, "acme", {"vespa_port": "9090", "llm_model": "m"})
    assert await overrides(manager) == {"vespa_port": 9090, "llm_model": "m"}
