"""Typed configs through the CLI (validation, schema) and the masking of secrets in its output."""

from __future__ import annotations

import json

from cli_harness import Cli

SYSTEM = ("system", "system", "system_config")
API_KEY = "sk-live-0123456789"


def test_value_at_a_typed_placement_is_validated(cli: Cli) -> None:
    result = cli("set", *SYSTEM, '{"vespa_port": 0}')
    assert result.exit_code == 6
    assert "vespa_port" in result.stderr
    assert cli("get", *SYSTEM).exit_code == 4


def test_validation_error_does_not_echo_the_secret(cli: Cli) -> None:
    result = cli("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY, "vespa_port": "x"}))
    assert result.exit_code == 6
    assert API_KEY not in result.stderr


def test_typed_value_is_stored_as_the_tenants_overrides(cli: Cli) -> None:
    assert cli("set", "--tenant", "acme", *SYSTEM, '{"llm_model": "gpt-4o"}').exit_code == 0
    stored = cli("get", "--tenant", "acme", *SYSTEM, "--json").json()["config_value"]
    # Only what was given (and the tenant): the other fields stay inherited.
    assert stored == {"llm_model": "gpt-4o", "tenant_id": "acme"}


def test_type_option_validates_a_value_stored_elsewhere(cli: Cli) -> None:
    result = cli(
        "set", "system", "system", "staging_copy", '{"environment": "moon"}', "--type", "system"
    )
    assert result.exit_code == 6
    assert "environment" in result.stderr


def test_untyped_placement_stores_the_value_as_given(cli: Cli) -> None:
    cli.seed("set", "system", "system", "flags", '{"anything": [1, 2]}')
    assert cli("get", "system", "system", "flags", "--json").json()["config_value"] == {
        "anything": [1, 2]
    }


def test_unknown_type_name_exits_4(cli: Cli) -> None:
    result = cli("set", *SYSTEM, "{}", "--type", "nosuch")
    assert result.exit_code == 4
    assert "nosuch" in result.stderr


def test_schema_lists_the_typed_configs(cli: Cli) -> None:
    rows = {row["name"]: row for row in cli("schema", "--json").json()}
    assert {"system", "agent", "routing", "telemetry"} <= rows.keys()
    assert rows["routing"] == {
        "name": "routing",
        "scope": "routing",
        "service": "routing_agent",
        "config_key": "routing_config",
    }


def test_schema_prints_a_typed_configs_json_schema(cli: Cli) -> None:
    schema = cli("schema", "telemetry").json()
    assert schema["type"] == "object"
    assert schema["properties"]["level"]["default"] == "detailed"


def test_schema_of_an_unknown_name_exits_4(cli: Cli) -> None:
    assert cli("schema", "nosuch").exit_code == 4


def test_get_masks_a_typed_secret(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    result = cli("get", *SYSTEM)
    assert API_KEY not in result.stdout
    assert '"llm_api_key": "***"' in result.stdout


def test_get_with_show_secrets_reveals_the_secret(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    value = cli("get", *SYSTEM, "--json", "--show-secrets").json()["config_value"]
    assert value["llm_api_key"] == API_KEY


def test_keys_named_like_secrets_are_masked_in_untyped_values(cli: Cli) -> None:
    value = {
        "db_password": "hunter2",
        "openai_api_key": "k",
        "client_secret": "s",
        "nested": [{"access_token": "t"}],
        "max_tokens": 512,
        "unset_password": None,
    }
    cli.seed("set", "agent", "bot", "settings", json.dumps(value))
    shown = cli("get", "agent", "bot", "settings", "--json").json()["config_value"]
    assert shown == {
        "db_password": "***",
        "openai_api_key": "***",
        "client_secret": "***",
        "nested": [{"access_token": "***"}],
        "max_tokens": 512,
        "unset_password": None,
    }


def test_list_and_history_mask_secrets(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    assert API_KEY not in cli("list", "--json").stdout
    assert API_KEY not in cli("history", *SYSTEM, "--json").stdout


def test_diff_masks_a_rotated_secret_but_reports_it(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": "sk-rotated"}))
    result = cli("diff", *SYSTEM)
    assert '~ llm_api_key: "***" -> "***"' in result.stdout
    assert "sk-" not in result.stdout


def test_diff_with_show_secrets_reveals_secrets(cli: Cli) -> None:
    cli.seed("set", "agent", "bot", "settings", '{"db_password": "a"}')
    cli.seed("set", "agent", "bot", "settings", '{"db_password": "b"}')
    changes = cli("diff", "agent", "bot", "settings", "--json", "--show-secrets").json()["changes"]
    assert changes == [{"path": "db_password", "old": "a", "new": "b", "kind": "changed"}]


def test_export_keeps_secrets_so_it_can_be_restored(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    document = cli("export").json()
    assert document["configs"][0]["config_value"]["llm_api_key"] == API_KEY


def test_writing_back_a_masked_secret_is_refused(cli: Cli) -> None:
    result = cli("set", "agent", "bot", "settings", '{"db_password": "***"}')
    assert result.exit_code == 6
    assert "db_password holds the mask" in result.stderr


def test_writing_back_a_masked_typed_secret_is_refused(cli: Cli) -> None:
    cli.seed("set", *SYSTEM, json.dumps({"llm_api_key": API_KEY}))
    shown = cli("get", *SYSTEM, "--json").json()["config_value"]
    assert cli("set", *SYSTEM, json.dumps(shown)).exit_code == 6
    revealed = cli("get", *SYSTEM, "--json", "--show-secrets").json()["config_value"]
    assert revealed["llm_api_key"] == API_KEY
