"""Layered typed configs through the installed command: explain, set --patch, check, and base
writes refused when they would break an inheriting tenant."""

from __future__ import annotations

import json

from cli_harness import Cli, confstore_command

from confstore import ConfigStore

SYSTEM = ("system", "system", "system_config")
BOT = ("agent", "bot", "agent_config")
API_KEY = "sk-live-0123456789"


def seed_base_and_acme(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_model": "gpt-4o", "llm_api_key": API_KEY}))
    cli.seed("set", *SYSTEM, '{"vespa_port": 9090}', "--tenant", "acme")


def test_explain_prints_each_field_with_its_source_and_origin(cli: Cli) -> None:
    seed_base_and_acme(cli)
    argv = [*confstore_command(), "--url", cli.url, "explain", *SYSTEM, "--tenant", "acme"]
    result = cli.run_raw(argv, CONFSTORE_SYSTEM__ENVIRONMENT="production")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["llm_model"] == ['"gpt-4o"', "base", "default", "v1"]
    assert rows["vespa_port"] == ["9090", "tenant", "acme", "v1"]
    assert rows["environment"] == ['"production"', "env", "CONFSTORE_SYSTEM__ENVIRONMENT"]
    assert rows["base_url"] == ['"http://localhost:11434"', "schema", "-"]
    assert rows["llm_api_key"] == ['"***"', "base", "default", "v1"]
    assert API_KEY not in result.stdout


def test_explain_json_gives_records(cli: Cli) -> None:
    seed_base_and_acme(cli)
    records = {r["path"]: r for r in cli("explain", *SYSTEM, "--tenant", "acme", "--json").json()}
    assert records["vespa_port"] == {
        "path": "vespa_port",
        "value": 9090,
        "source": "tenant",
        "tenant_id": "acme",
        "version": 1,
        "variable": None,
    }


def test_explain_of_a_place_no_typed_config_lives_exits_4(cli: Cli) -> None:
    assert cli("explain", "system", "system", "flags").exit_code == 4


def test_a_bad_environment_override_exits_6_naming_it(cli: Cli) -> None:
    argv = [*confstore_command(), "--url", cli.url, "check"]
    result = cli.run_raw(argv, CONFSTORE_SYSTEM__VESPA_PORT="none")
    assert result.exit_code == 6
    assert "CONFSTORE_SYSTEM__VESPA_PORT" in result.stderr


def test_set_patch_merges_into_the_stored_overrides(cli: Cli) -> None:
    seed_base_and_acme(cli)
    patch = '{"vespa_port": null, "metadata": {"team": "a"}}'
    result = cli("set", *SYSTEM, patch, "--patch", "--tenant", "acme", "--by", "alice")
    assert result.exit_code == 0, result.stderr
    assert "patched acme/system/system/system_config version 2" in result.stdout
    entry = cli.call(lambda store: store.get_config("acme", *SYSTEM))
    assert entry is not None
    assert (entry.config_value, entry.updated_by) == (
        {"metadata": {"team": "a"}, "tenant_id": "acme"},
        "alice",
    )


def test_set_patch_of_an_untyped_config_merges_into_its_value(cli: Cli) -> None:
    cli.seed("set", "system", "system", "flags", '{"a": 1, "b": {"c": 2}}')
    result = cli("set", "system", "system", "flags", '{"a": null, "b": {"d": 3}}', "--patch")
    assert result.exit_code == 0, result.stderr
    entry = cli.call(lambda store: store.get_config("default", "system", "system", "flags"))
    assert entry is not None
    assert entry.config_value == {"b": {"c": 2, "d": 3}}


def test_base_write_that_breaks_a_tenant_exits_6_listing_it_and_writes_nothing(cli: Cli) -> None:
    bot = {
        "agent_name": "bot",
        "module_config": {"module_type": "react", "signature": "S"},
        "optimizer_config": {"optimizer_type": "copro"},
    }
    cli.seed("set", *BOT, json.dumps(bot))
    cli.seed("set", *BOT, '{"optimizer_config": {"num_trials": 3}}', "--tenant", "acme")
    result = cli("set", *BOT, '{"optimizer_config": null}', "--patch")
    assert result.exit_code == 6
    assert "acme (optimizer_config.optimizer_type)" in result.stderr

    async def versions(store: ConfigStore) -> int:
        return len(await store.get_config_history("default", *BOT))

    assert cli.call(versions) == 1


def test_check_exits_1_naming_a_broken_tenant(cli: Cli) -> None:
    cli.seed(
        "set",
        *BOT,
        '{"agent_name": "bot", "module_config": {"module_type": "react", "signature": "S"}}',
    )
    cli.seed("set", *BOT, '{"llm_model": "m"}', "--tenant", "acme")
    cli.seed("check")
    cli.call(lambda store: store.delete_config("default", *BOT))
    result = cli("check", "--json")
    assert result.exit_code == 1
    [problem] = result.json()["problems"]
    assert (problem["tenant_id"], problem["config_key"], problem["field"]) == (
        "acme",
        "agent_config",
        "agent_name",
    )
