"""Environment overrides (CONFSTORE_<SCOPE>__<FIELD>[__<NESTED>]): above everything stored, for
every tenant, converted and validated by the schema, and a bad one an error at startup."""

from __future__ import annotations

import textwrap

import pytest
from python_process import run_python

from confstore import (
    AgentConfig,
    ConfigManager,
    InvalidConfigError,
    MemoryConfigStore,
    ModuleConfig,
    SystemConfig,
    get_config_manager,
)

SECRET = "sk-live-0123456789abcdef"


async def read_system(environ: dict[str, str], tenant_id: str = "acme") -> SystemConfig:
    async with ConfigManager(MemoryConfigStore(), environ=environ) as manager:
        await manager.set_system_config(SystemConfig(tenant_id=tenant_id, llm_model="stored"))
        return await manager.get_system_config(tenant_id)


async def test_an_override_beats_what_every_tenant_stores() -> None:
    environ = {"CONFSTORE_SYSTEM__LLM_MODEL": "from-env"}
    for tenant in ("default", "acme"):
        assert (await read_system(environ, tenant)).llm_model == "from-env"


async def test_values_are_converted_by_the_schema() -> None:
    config = await read_system(
        {
            "CONFSTORE_SYSTEM__VESPA_PORT": "9090",
            "CONFSTORE_SYSTEM__VIDEO_PROCESSING_PROFILES": '["a", "b"]',
            "CONFSTORE_SYSTEM__METADATA": '{"owner": "ops"}',
        }
    )
    assert (config.vespa_port, config.video_processing_profiles, config.metadata) == (
        9090,
        ["a", "b"],
        {"owner": "ops"},
    )


async def test_names_are_case_insensitive() -> None:
    assert (await read_system({"confstore_system__llm_model": "lower"})).llm_model == "lower"


async def test_a_nested_path_sets_one_field_of_a_nested_model() -> None:
    environ = {"CONFSTORE_AGENT__MODULE_CONFIG__SIGNATURE": "FromEnv"}
    async with ConfigManager(MemoryConfigStore(), environ=environ) as manager:
        module = ModuleConfig(module_type="react", signature="S")  # type: ignore[arg-type]
        await manager.set_agent_config(
            "t", "bot", AgentConfig(agent_name="bot", module_config=module)
        )
        config = await manager.get_agent_config("t", "bot")
        assert config is not None
        assert (config.module_config.signature, config.module_config.module_type) == (
            "FromEnv",
            "react",
        )
        # The environment alone does not make an agent exist.
        assert await manager.get_agent_config("t", "other") is None


async def test_a_secret_from_the_environment_is_used_and_masked() -> None:
    environ = {"CONFSTORE_SYSTEM__LLM_API_KEY": SECRET}
    async with ConfigManager(MemoryConfigStore(), environ=environ) as manager:
        config = await manager.get_system_config("acme")
        assert config.llm_api_key is not None
        assert config.llm_api_key.get_secret_value() == SECRET
        records = await manager.explain(SystemConfig, "acme")
    assert SECRET not in repr(records)


async def test_other_confstore_variables_are_not_overrides() -> None:
    environ = {"CONFSTORE_URL": "memory://", "CONFSTORE_DEBUG": "1", "CONFSTORE_SYSTEMX__A": "1"}
    assert (await read_system(environ)).llm_model == "stored"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("CONFSTORE_SYSTEM__VESPA_PORT", "0", "greater than or equal to 1"),
        ("CONFSTORE_SYSTEM__VESPA_PORT", "eighty", "valid integer"),
        ("CONFSTORE_SYSTEM__ENVIRONMENT", "moon", "development"),
        ("CONFSTORE_SYSTEM__LLM_MODLE", "x", "'llm_modle' is not a field of SystemConfig"),
        ("CONFSTORE_SYSTEM__METADATA", "{not json", "takes JSON"),
        ("CONFSTORE_SYSTEM__METADATA__OWNER", "ops", "metadata is not a nested model"),
        ("CONFSTORE_AGENT__MODULE_CONFIG__NOPE", "x", "'module_config.nope' is not a field"),
        ("CONFSTORE_SYSTEM__TENANT_ID", "x", "tenant_id"),
        ("CONFSTORE_ROUTING__", "x", "empty field name"),
        (
            "CONFSTORE_SYSTEM_LLM_MODEL",
            "x",
            "needs __ after the scope: CONFSTORE_SYSTEM__LLM_MODEL",
        ),
    ],
)
def test_a_bad_override_is_an_error_at_startup_naming_it(
    variable: str, value: str, problem: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ConfigManager(MemoryConfigStore(), environ={variable: value})
    assert variable in str(caught.value)
    assert problem in str(caught.value)


def test_the_same_field_set_twice_is_an_error() -> None:
    environ = {"CONFSTORE_SYSTEM__LLM_MODEL": "a", "confstore_system__llm_model": "b"}
    with pytest.raises(InvalidConfigError, match="sets the same field"):
        ConfigManager(MemoryConfigStore(), environ=environ)


def test_a_bad_value_is_never_echoed() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ConfigManager(MemoryConfigStore(), environ={"CONFSTORE_SYSTEM__VESPA_PORT": SECRET})
    assert SECRET not in str(caught.value)


def test_the_process_wide_manager_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFSTORE_SYSTEM__VESPA_PORT", "-1")
    with pytest.raises(InvalidConfigError, match="CONFSTORE_SYSTEM__VESPA_PORT"):
        get_config_manager("memory://")


SERVICE = textwrap.dedent(
    """
    import asyncio
    from confstore import get_config_manager

    async def main() -> None:
        manager = get_config_manager("memory://")
        print((await manager.get_system_config("acme")).vespa_port)
        await manager.close()

    asyncio.run(main())
    """
)


async def run_service(**environ: str) -> tuple[int, str, str]:
    return await run_python(SERVICE, env={**environ, "PATH": "/usr/bin:/bin"})


async def test_a_service_started_with_an_override_uses_it_and_one_with_a_bad_one_stops() -> None:
    code, stdout, _ = await run_service(CONFSTORE_SYSTEM__VESPA_PORT="9090")
    assert (code, stdout.strip()) == (0, "9090")
    code, _, stderr = await run_service(CONFSTORE_SYSTEM__VESPA_PORT="99999")
    assert code != 0
    assert "InvalidConfigError: environment variable CONFSTORE_SYSTEM__VESPA_PORT" in stderr
